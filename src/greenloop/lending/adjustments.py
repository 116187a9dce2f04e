"""Changes to a running plan: early repayment and full or partial refunds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from greenloop.lending.money import ZERO, round_fen
from greenloop.lending.plans import (
    Installment,
    InstallmentPlan,
    PlanKind,
    interest_plan,
    split_evenly,
    split_in_proportion,
)


class UnearnedFeePolicy(StrEnum):
    """Treatment of the fee of installments not yet due when a plan ends early."""

    CHARGE = "charge"  # the consumer still pays the whole fee
    WAIVE = "waive"  # the fee of installments not yet due is dropped


@dataclass(frozen=True, slots=True)
class EarlyRepayment:
    """The payoff after installment `paid_installments`, and the shortened plan."""

    plan: InstallmentPlan
    payoff_fen: Decimal
    waived_fee_fen: Decimal


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund applied to a plan: the new plan (None when cancelled) and cash back."""

    plan: InstallmentPlan | None
    principal_reduction_fen: Decimal
    cash_back_fen: Decimal
    fee_refunded_fen: Decimal
    fee_waived_fen: Decimal


def repay_early(
    plan: InstallmentPlan, paid_installments: int, fee_policy: UnearnedFeePolicy
) -> EarlyRepayment:
    """Pay off the plan together with installment `paid_installments`.

    The payoff is the outstanding principal after that installment, plus the fee
    of later installments when `fee_policy` is CHARGE. Interest stops accruing.
    """
    _check_paid(plan, paid_installments)
    paid_part = plan.installments[:paid_installments]
    later = plan.installments[paid_installments:]
    principal_left = paid_part[-1].balance_fen
    fee_left = sum((item.fee_fen for item in later), ZERO)
    fee_charged = fee_left if fee_policy is UnearnedFeePolicy.CHARGE else ZERO
    last = paid_part[-1]
    merged = Installment(
        number=last.number,
        principal_fen=last.principal_fen + principal_left,
        fee_fen=last.fee_fen + fee_charged,
        interest_fen=last.interest_fen,
        balance_fen=ZERO,
        due_on=last.due_on,
    )
    new_plan = InstallmentPlan(
        kind=plan.kind,
        principal_fen=plan.principal_fen,
        installments=(*paid_part[:-1], merged),
        fee_rate=plan.fee_rate,
        interest_rate=plan.interest_rate,
        start=plan.start,
        notes=(*plan.notes, f"repaid early with installment {paid_installments}"),
    )
    return EarlyRepayment(
        plan=new_plan,
        payoff_fen=principal_left + fee_charged,
        waived_fee_fen=fee_left - fee_charged,
    )


def apply_refund(
    plan: InstallmentPlan, refund_fen: Decimal, paid_installments: int
) -> Refund:
    """Apply a merchant refund of `refund_fen` after `paid_installments` payments.

    A refund of the whole principal cancels the plan and returns everything paid,
    fee included. A partial refund reduces the outstanding principal, and the fee
    of the remaining installments falls in the same proportion. A refund larger
    than the outstanding principal pays the difference back as cash.
    """
    if refund_fen <= 0:
        raise ValueError(f"invalid refund {refund_fen} fen: expected > 0")
    if not 0 <= paid_installments <= plan.periods:
        raise ValueError(
            f"invalid paid installments {paid_installments}: expected 0 to"
            f" {plan.periods}"
        )
    paid_part = plan.installments[:paid_installments]
    later = plan.installments[paid_installments:]
    paid_total = sum((item.amount_fen for item in paid_part), ZERO)
    paid_fee = sum((item.fee_fen for item in paid_part), ZERO)
    if refund_fen >= plan.principal_fen:
        return Refund(
            plan=None,
            principal_reduction_fen=plan.principal_fen,
            cash_back_fen=paid_total + refund_fen - plan.principal_fen,
            fee_refunded_fen=paid_fee,
            fee_waived_fen=sum((item.fee_fen for item in later), ZERO),
        )
    # The principal parts, not the stored balances: an earlier refund in the
    # same period lowered `principal_fen` but left the paid balances as they were.
    outstanding = plan.principal_fen - sum(
        (item.principal_fen for item in paid_part), ZERO
    )
    reduction = min(refund_fen, outstanding)
    cash_back = refund_fen - reduction
    remaining = outstanding - reduction
    if not later or remaining == 0:
        return Refund(
            plan=_replace_tail(plan, paid_part, (), reduction),
            principal_reduction_fen=reduction,
            cash_back_fen=cash_back,
            fee_refunded_fen=ZERO,
            fee_waived_fen=sum((item.fee_fen for item in later), ZERO),
        )
    tail = _rebuild_tail(plan, later, outstanding, remaining)
    fee_before = sum((item.fee_fen for item in later), ZERO)
    fee_after = sum((item.fee_fen for item in tail), ZERO)
    return Refund(
        plan=_replace_tail(plan, paid_part, tail, reduction),
        principal_reduction_fen=reduction,
        cash_back_fen=cash_back,
        fee_refunded_fen=ZERO,
        fee_waived_fen=fee_before - fee_after,
    )


def _rebuild_tail(
    plan: InstallmentPlan,
    later: tuple[Installment, ...],
    outstanding: Decimal,
    remaining: Decimal,
) -> tuple[Installment, ...]:
    """Spread the reduced principal over the installments not yet paid."""
    count = len(later)
    first_number = later[0].number
    if plan.kind is PlanKind.INTEREST:
        fresh = interest_plan(remaining, count, plan.interest_rate)
        fee_left = sum((item.fee_fen for item in later), ZERO)
        fee = round_fen(fee_left * remaining / outstanding)
        fee_parts = split_evenly(fee, count) if fee else [ZERO] * count
        return tuple(
            Installment(
                number=first_number + index,
                principal_fen=item.principal_fen,
                fee_fen=fee_parts[index],
                interest_fen=item.interest_fen,
                balance_fen=item.balance_fen,
                due_on=later[index].due_on,
            )
            for index, item in enumerate(fresh.installments)
        )
    fee_left = sum((item.fee_fen for item in later), ZERO)
    fee = round_fen(fee_left * remaining / outstanding)
    amounts = split_evenly(remaining + fee, count)
    fee_parts = split_in_proportion(amounts, fee, remaining + fee)
    balance = remaining
    tail = []
    for index, (amount, fee_part) in enumerate(zip(amounts, fee_parts, strict=True)):
        balance -= amount - fee_part
        tail.append(
            Installment(
                number=first_number + index,
                principal_fen=amount - fee_part,
                fee_fen=fee_part,
                interest_fen=ZERO,
                balance_fen=balance,
                due_on=later[index].due_on,
            )
        )
    return tuple(tail)


def _replace_tail(
    plan: InstallmentPlan,
    paid_part: tuple[Installment, ...],
    tail: tuple[Installment, ...],
    reduction: Decimal,
) -> InstallmentPlan:
    # The plan's principal falls by the refunded amount, so the installments
    # still add up to principal plus fee plus interest.
    return InstallmentPlan(
        kind=plan.kind,
        principal_fen=plan.principal_fen - reduction,
        installments=(*paid_part, *tail),
        fee_rate=plan.fee_rate,
        interest_rate=plan.interest_rate,
        start=plan.start,
        notes=(*plan.notes, f"refund of {reduction} fen applied to the principal"),
    )


def _check_paid(plan: InstallmentPlan, paid_installments: int) -> None:
    if not 1 <= paid_installments < plan.periods:
        raise ValueError(
            f"invalid paid installments {paid_installments}: an early repayment comes"
            f" with installment 1 to {plan.periods - 1}"
        )
