"""Property tests of plans and the interest-free cost (Hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.lending import (
    UnearnedFeePolicy,
    apply_refund,
    fee_plan,
    interest_free_cost,
    interest_plan,
    repay_early,
)

principals = st.integers(min_value=1, max_value=10_000_000).map(Decimal)
periods = st.integers(min_value=1, max_value=36)
fee_rates = st.decimals(min_value=0, max_value=Decimal("0.3"), places=4)
annual_rates = st.decimals(min_value=0, max_value=Decimal("0.36"), places=4)


@settings(max_examples=150, deadline=None)
@given(principals, periods, fee_rates)
def test_installments_sum_to_principal_plus_fee(
    principal: Decimal, count: int, rate: Decimal
) -> None:
    plan = fee_plan(principal, count, rate)
    assert plan.total_fen == principal + plan.fee_fen
    assert sum(item.principal_fen for item in plan.installments) == principal


@settings(max_examples=150, deadline=None)
@given(principals, periods, fee_rates)
def test_no_installment_part_is_negative(
    principal: Decimal, count: int, rate: Decimal
) -> None:
    plan = fee_plan(principal, count, rate)
    for item in plan.installments:
        assert item.amount_fen >= 0
        assert item.principal_fen >= 0
        assert item.fee_fen >= 0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=10_000, max_value=10_000_000).map(Decimal),
    st.integers(min_value=2, max_value=24),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.2"), places=3),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.1"), places=3),
)
def test_apr_rises_with_fee_rate(
    principal: Decimal, count: int, rate: Decimal, step: Decimal
) -> None:
    lower = fee_plan(principal, count, rate).annual_rate()
    higher = fee_plan(principal, count, rate + step).annual_rate()
    assert higher.nominal_annual > lower.nominal_annual
    assert higher.effective_annual >= higher.nominal_annual


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=10_000, max_value=10_000_000).map(Decimal),
    st.integers(min_value=2, max_value=36),
    annual_rates,
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.05"), places=3),
)
def test_subsidy_cost_falls_with_funding_rate(
    principal: Decimal, count: int, rate: Decimal, cut: Decimal
) -> None:
    higher = interest_free_cost(principal, count, rate + cut).funding_cost_fen
    lower = interest_free_cost(principal, count, rate).funding_cost_fen
    assert lower <= higher
    assert lower >= 0


@settings(max_examples=100, deadline=None)
@given(principals, periods, annual_rates)
def test_interest_plan_repays_principal(
    principal: Decimal, count: int, rate: Decimal
) -> None:
    plan = interest_plan(principal, count, rate)
    assert sum(item.principal_fen for item in plan.installments) == principal
    assert plan.installments[-1].balance_fen == 0
    assert all(item.amount_fen >= 0 for item in plan.installments)


@settings(max_examples=100, deadline=None)
@given(
    principals,
    st.integers(min_value=2, max_value=24),
    fee_rates,
    st.data(),
)
def test_early_repayment_keeps_principal(
    principal: Decimal, count: int, rate: Decimal, data: st.DataObject
) -> None:
    plan = fee_plan(principal, count, rate)
    paid = data.draw(st.integers(min_value=1, max_value=count - 1))
    for policy in UnearnedFeePolicy:
        early = repay_early(plan, paid, policy)
        assert early.plan.total_fen == principal + early.plan.fee_fen
        assert early.plan.fee_fen + early.waived_fee_fen == plan.fee_fen


@settings(max_examples=100, deadline=None)
@given(principals, periods, fee_rates, st.data())
def test_refund_keeps_plan_consistent(
    principal: Decimal, count: int, rate: Decimal, data: st.DataObject
) -> None:
    plan = fee_plan(principal, count, rate)
    paid = data.draw(st.integers(min_value=0, max_value=count))
    refund_fen = Decimal(data.draw(st.integers(min_value=1, max_value=int(principal))))
    refund = apply_refund(plan, refund_fen, paid)
    if refund.plan is None:
        assert refund_fen == principal
        return
    assert refund.plan.total_fen == refund.plan.principal_fen + refund.plan.fee_fen
    assert refund.principal_reduction_fen + refund.cash_back_fen == refund_fen
    assert all(item.amount_fen >= 0 for item in refund.plan.installments)
