"""Installment plans, APR by internal rate of return, and interest-free cost.

Pure domain code: amounts are whole fen as `Decimal`, never floats, and nothing
here touches a database or the network. The exception is `greenloop.lending.batch`,
which prices many fee plans at once in int64 fen with NumPy. Its float rates are
used only where they round to the same Decimal result, and it flags the rest.
"""

from greenloop.lending.adjustments import (
    EarlyRepayment,
    Refund,
    UnearnedFeePolicy,
    apply_refund,
    repay_early,
)
from greenloop.lending.money import fen_to_yuan, format_yuan, round_fen, yuan_to_fen
from greenloop.lending.plans import (
    Amortization,
    Installment,
    InstallmentPlan,
    PlanKind,
    fee_plan,
    interest_free_plan,
    interest_plan,
)
from greenloop.lending.rates import AnnualRate, internal_rate_of_return
from greenloop.lending.schedules import FeeSchedule, load_fee_schedules
from greenloop.lending.subsidy import InterestFreeCost, interest_free_cost

__all__ = [
    "Amortization",
    "AnnualRate",
    "EarlyRepayment",
    "FeeSchedule",
    "Installment",
    "InstallmentPlan",
    "InterestFreeCost",
    "PlanKind",
    "Refund",
    "UnearnedFeePolicy",
    "apply_refund",
    "fee_plan",
    "fen_to_yuan",
    "format_yuan",
    "interest_free_cost",
    "interest_free_plan",
    "interest_plan",
    "internal_rate_of_return",
    "load_fee_schedules",
    "repay_early",
    "round_fen",
    "yuan_to_fen",
]
