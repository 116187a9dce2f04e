"""Installment plans: fee tables, rounding, interest, APR and adjustments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from greenloop.lending import (
    Amortization,
    UnearnedFeePolicy,
    apply_refund,
    fee_plan,
    interest_free_cost,
    interest_free_plan,
    interest_plan,
    internal_rate_of_return,
    load_fee_schedules,
    repay_early,
    yuan_to_fen,
)

# Huabei fee table on 1,000 yuan: periods, fee rate, first installment (fen),
# nominal APR and effective annual rate, both rounded to 0.1 %.
FEE_TABLE = [
    (3, "0.025", 34167, "0.149", "0.160"),
    (6, "0.045", 17417, "0.153", "0.164"),
    (9, "0.065", 11833, "0.153", "0.165"),
    (12, "0.088", 9067, "0.159", "0.171"),
]


@pytest.mark.parametrize(
    ("periods", "rate", "first", "nominal", "effective"), FEE_TABLE
)
def test_fee_table_matches_published_rates(
    periods: int, rate: str, first: int, nominal: str, effective: str
) -> None:
    plan = fee_plan(Decimal(100000), periods, Decimal(rate))
    annual = plan.annual_rate()
    assert plan.installments[0].amount_fen == first
    assert annual.nominal_annual.quantize(Decimal("0.001")) == Decimal(nominal)
    assert annual.effective_annual.quantize(Decimal("0.001")) == Decimal(effective)


def test_fee_plan_remainder_on_last() -> None:
    plan = fee_plan(Decimal(100000), 12, Decimal("0.088"))
    amounts = [item.amount_fen for item in plan.installments]
    assert amounts[:11] == [Decimal(9067)] * 11
    assert amounts[11] == Decimal(108800) - 11 * 9067
    assert plan.fee_fen == 8800


def test_fee_plan_balances_reach_zero() -> None:
    plan = fee_plan(Decimal(300000), 12, Decimal("0.088"))
    assert plan.installments[-1].balance_fen == 0
    assert plan.installments[0].balance_fen == 275000


def test_due_dates_clip_to_month_end() -> None:
    plan = fee_plan(Decimal(300000), 3, Decimal("0.025"), start=date(2026, 1, 31))
    assert [item.due_on for item in plan.installments] == [
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
    ]


def test_outstanding_follows_due_dates() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.088"), start=date(2026, 1, 10))
    assert plan.outstanding_fen(date(2026, 1, 10)) == 120000
    assert plan.outstanding_fen(date(2026, 3, 10)) == 100000
    assert plan.outstanding_fen(date(2027, 1, 10)) == 0


def test_interest_free_plan_has_zero_apr() -> None:
    plan = interest_free_plan(Decimal(100001), 3)
    assert plan.total_fen == 100001
    assert plan.annual_rate().nominal_annual == 0


def test_interest_plan_annuity_apr_equals_rate() -> None:
    plan = interest_plan(Decimal(300000), 12, Decimal("0.12"))
    assert plan.annual_rate().nominal_annual.quantize(Decimal("0.001")) == Decimal(
        "0.120"
    )
    assert plan.installments[0].interest_fen == 3000
    assert sum(item.principal_fen for item in plan.installments) == 300000


def test_interest_plan_equal_principal() -> None:
    plan = interest_plan(
        Decimal(120000),
        12,
        Decimal("0.12"),
        amortization=Amortization.EQUAL_PRINCIPAL,
    )
    assert {item.principal_fen for item in plan.installments} == {Decimal(10000)}
    assert plan.installments[0].interest_fen == 1200
    assert plan.installments[-1].interest_fen == 100


def test_interest_plan_with_fee_raises_apr() -> None:
    plain = interest_plan(Decimal(300000), 12, Decimal("0.06"))
    with_fee = interest_plan(
        Decimal(300000), 12, Decimal("0.06"), fee_rate=Decimal("0.01")
    )
    assert with_fee.fee_fen == 3000
    assert with_fee.annual_rate().nominal_annual > plain.annual_rate().nominal_annual


@pytest.mark.parametrize(
    ("principal", "periods", "rate"),
    [(Decimal(0), 3, "0.025"), (Decimal("10.5"), 3, "0.025"), (Decimal(100), 0, "0")],
)
def test_fee_plan_rejects_bad_input(
    principal: Decimal, periods: int, rate: str
) -> None:
    with pytest.raises(ValueError, match="invalid"):
        fee_plan(principal, periods, Decimal(rate))


def test_yuan_to_fen_rejects_fraction_of_fen() -> None:
    with pytest.raises(ValueError, match="at most two decimals"):
        yuan_to_fen("1.005")


def test_irr_rejects_empty_payments() -> None:
    with pytest.raises(ValueError, match="at least one"):
        internal_rate_of_return(Decimal(100), [])


# Cost per 100 yuan lent, in fen: funding rate, then 3, 6 and 12 months.
SUBSIDY_TABLE = [("0.03", 50, 87, 161), ("0.025", 42, 73, 134)]


@pytest.mark.parametrize(("rate", "three", "six", "twelve"), SUBSIDY_TABLE)
def test_interest_free_cost_matches_table(
    rate: str, three: int, six: int, twelve: int
) -> None:
    costs = [
        interest_free_cost(Decimal(10000), periods, Decimal(rate)).funding_cost_fen
        for periods in (3, 6, 12)
    ]
    assert costs == [three, six, twelve]


def test_interest_free_cost_reports_forgone_fee() -> None:
    cost = interest_free_cost(Decimal(100000), 12, Decimal("0.03"), Decimal("0.088"))
    assert cost.forgone_fee_fen == 8800
    assert cost.forgone_fee_present_value_fen < 8800
    assert cost.forgone_fee_present_value_fen > 8000


def test_early_repayment_charges_remaining_fee() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    result = repay_early(plan, 3, UnearnedFeePolicy.CHARGE)
    assert result.plan.periods == 3
    assert result.payoff_fen == 90000 + 10800
    assert result.plan.total_fen == plan.total_fen
    assert result.waived_fee_fen == 0


def test_early_repayment_waives_unearned_fee() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    result = repay_early(plan, 3, UnearnedFeePolicy.WAIVE)
    assert result.payoff_fen == 90000
    assert result.waived_fee_fen == 10800
    assert result.plan.fee_fen == 3600


def test_early_repayment_raises_apr_when_fee_charged() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.088"))
    early = repay_early(plan, 2, UnearnedFeePolicy.CHARGE).plan
    assert early.annual_rate().nominal_annual > plan.annual_rate().nominal_annual


def test_early_repayment_rejects_last_installment() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.088"))
    with pytest.raises(ValueError, match="installment 1 to 11"):
        repay_early(plan, 12, UnearnedFeePolicy.CHARGE)


def test_full_refund_cancels_plan() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    refund = apply_refund(plan, Decimal(120000), paid_installments=2)
    assert refund.plan is None
    assert refund.cash_back_fen == 2 * 11200
    assert refund.fee_refunded_fen == 2400


def test_partial_refund_reduces_fee_in_proportion() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    refund = apply_refund(plan, Decimal(50000), paid_installments=2)
    assert refund.plan is not None
    assert refund.principal_reduction_fen == 50000
    assert refund.plan.principal_fen == 70000
    # 100,000 fen outstanding falls to 50,000, so the 12,000 fen fee left halves.
    assert refund.fee_waived_fen == 6000
    assert refund.plan.total_fen == 70000 + 2400 + 6000
    assert refund.plan.installments[-1].balance_fen == 0


def test_refund_above_outstanding_pays_cash() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    refund = apply_refund(plan, Decimal(110000), paid_installments=2)
    assert refund.principal_reduction_fen == 100000
    assert refund.cash_back_fen == 10000
    assert refund.plan is not None
    assert refund.plan.periods == 2


def test_partial_refund_on_interest_plan() -> None:
    plan = interest_plan(Decimal(120000), 12, Decimal("0.12"))
    refund = apply_refund(plan, Decimal(30000), paid_installments=0)
    assert refund.plan is not None
    assert sum(item.principal_fen for item in refund.plan.installments) == 90000
    assert refund.plan.interest_fen < plan.interest_fen


def test_fee_schedule_file_loads() -> None:
    schedules = load_fee_schedules()
    assert schedules.get().fee_rate(12) == Decimal("0.088")


def test_fee_schedule_names_missing_periods() -> None:
    with pytest.raises(KeyError, match="no fee rate for 24 periods"):
        load_fee_schedules().get().fee_rate(24)


def test_outstanding_counts_refund_at_once() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"), start=date(2026, 1, 10))
    refund = apply_refund(plan, Decimal(40000), paid_installments=2)
    assert refund.plan is not None
    assert refund.plan.outstanding_fen(date(2026, 3, 10)) == 60000
    assert refund.plan.outstanding_fen(date(2027, 1, 10)) == 0


def test_second_refund_same_period_reduces_further() -> None:
    plan = fee_plan(Decimal(120000), 12, Decimal("0.12"))
    first = apply_refund(plan, Decimal(50000), paid_installments=2)
    assert first.plan is not None
    second = apply_refund(first.plan, Decimal(30000), paid_installments=2)
    assert second.plan is not None
    # 100,000 fen were outstanding after two installments, and the refunds
    # take 80,000 fen of it.
    assert second.principal_reduction_fen == 30000
    assert second.plan.principal_fen == 40000
    principal_parts = sum(item.principal_fen for item in second.plan.installments)
    assert principal_parts == 40000
    assert second.plan.installments[-1].balance_fen == 0


def test_second_refund_above_remaining_pays_cash() -> None:
    plan = interest_plan(Decimal(120000), 24, Decimal("0.035"))
    first = apply_refund(plan, Decimal(90000), paid_installments=3)
    assert first.plan is not None
    paid_principal = sum(item.principal_fen for item in plan.installments[:3])
    remaining = 120000 - paid_principal - 90000
    second = apply_refund(first.plan, Decimal(remaining + 500), paid_installments=3)
    assert second.principal_reduction_fen == remaining
    assert second.cash_back_fen == 500
    assert second.plan is not None
    assert second.plan.principal_fen == paid_principal
    assert second.plan.periods == 3
    # The paid interest was charged on the whole balance, so measured on the
    # principal kept the rate is above the plan's 3.5 %, but it exists.
    assert second.plan.annual_rate().nominal_annual > Decimal("0.035")
