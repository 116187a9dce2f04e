"""The cost to the lender of an interest-free offer.

An interest-free plan is prepaid interest: the lender advances P and receives
P / n a month, so at funding rate r its cost is the present-value gap
P - sum((P / n) / (1 + r / 12) ** k), k = 1..n. At 3 % a year this is 1.61 yuan
per 100 yuan lent over 12 months. The formula prices funding only, not credit
loss or operating cost. The fee the consumer would have paid under the standard
schedule is the lender's forgone revenue; its present value is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from greenloop.lending.money import ZERO, round_fen
from greenloop.lending.plans import (
    InstallmentPlan,
    fee_plan,
    interest_free_plan,
)

MONTHS_PER_YEAR = 12


@dataclass(frozen=True, slots=True)
class InterestFreeCost:
    """The cost of an interest-free plan to the lender at its funding rate, in fen."""

    plan: InstallmentPlan
    funding_rate: Decimal
    funding_cost_fen: Decimal
    forgone_fee_fen: Decimal
    forgone_fee_present_value_fen: Decimal


def present_value_fen(plan: InstallmentPlan, annual_rate: Decimal) -> Decimal:
    """Discount the installments at `annual_rate` / 12 a month, unrounded."""
    with localcontext() as context:
        context.prec = 34
        factor = 1 + annual_rate / MONTHS_PER_YEAR
        return sum(
            (item.amount_fen / factor**item.number for item in plan.installments), ZERO
        )


def interest_free_cost(
    principal_fen: Decimal,
    periods: int,
    funding_rate: Decimal,
    standard_fee_rate: Decimal = ZERO,
    standard_plan: InstallmentPlan | None = None,
) -> InterestFreeCost:
    """Price an interest-free plan against the lender's funding rate.

    The consumer would otherwise pay the fee and interest of `standard_plan`, or
    of a fee plan at `standard_fee_rate` when no plan is given. Waiving them is
    reported as `forgone_fee_fen` and its present value.
    """
    if funding_rate < 0:
        raise ValueError(f"invalid funding rate {funding_rate}: expected >= 0")
    plan = interest_free_plan(principal_fen, periods)
    funding_cost = round_fen(principal_fen - present_value_fen(plan, funding_rate))
    standard = standard_plan or fee_plan(principal_fen, periods, standard_fee_rate)
    fee_only = [item.fee_fen + item.interest_fen for item in standard.installments]
    with localcontext() as context:
        context.prec = 34
        factor = 1 + funding_rate / MONTHS_PER_YEAR
        forgone_present = sum(
            (fee / factor**number for number, fee in enumerate(fee_only, start=1)),
            ZERO,
        )
    return InterestFreeCost(
        plan=plan,
        funding_rate=funding_rate,
        funding_cost_fen=funding_cost,
        forgone_fee_fen=standard.fee_fen + standard.interest_fen,
        forgone_fee_present_value_fen=round_fen(forgone_present),
    )
