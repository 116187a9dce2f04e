"""Installment plans: fee-based, interest-bearing and interest-free.

All amounts are whole fen as `Decimal`. A fee-based plan charges a total fee,
a share of the principal, and splits principal plus fee into n equal
installments rounded half up, with the rounding remainder on the last one. An
interest-bearing plan charges interest on the declining balance with equal
installments (an annuity) or equal principal parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from greenloop.lending.money import ZERO, add_months, round_fen
from greenloop.lending.rates import AnnualRate, internal_rate_of_return

MONTHS_PER_YEAR = 12


class PlanKind(StrEnum):
    """The pricing of the credit for the consumer."""

    FEE = "fee"
    INTEREST = "interest"
    INTEREST_FREE = "interest_free"


class Amortization(StrEnum):
    """The repayment profile of an interest-bearing plan."""

    EQUAL_INSTALLMENT = "equal_installment"
    EQUAL_PRINCIPAL = "equal_principal"


@dataclass(frozen=True, slots=True)
class Installment:
    """One payment: its parts and the principal still outstanding after it."""

    number: int
    principal_fen: Decimal
    fee_fen: Decimal
    interest_fen: Decimal
    balance_fen: Decimal
    due_on: date | None = None

    @property
    def amount_fen(self) -> Decimal:
        """The whole payment: principal, fee and interest."""
        return self.principal_fen + self.fee_fen + self.interest_fen


@dataclass(frozen=True, slots=True)
class InstallmentPlan:
    """A schedule of installments for one loan, with its pricing inputs."""

    kind: PlanKind
    principal_fen: Decimal
    installments: tuple[Installment, ...]
    fee_rate: Decimal = ZERO
    interest_rate: Decimal = ZERO
    start: date | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def periods(self) -> int:
        """The number of installments."""
        return len(self.installments)

    @property
    def fee_fen(self) -> Decimal:
        """The total fee over all installments."""
        return sum((item.fee_fen for item in self.installments), ZERO)

    @property
    def interest_fen(self) -> Decimal:
        """The total interest over all installments."""
        return sum((item.interest_fen for item in self.installments), ZERO)

    @property
    def total_fen(self) -> Decimal:
        """The sum of all installments."""
        return sum((item.amount_fen for item in self.installments), ZERO)

    def annual_rate(self) -> AnnualRate:
        """Compute the APR by internal rate of return over the installments.

        Raises ValueError when no monthly rate from -99 % to +100 % fits.
        NOTE: after a partial refund, `principal_fen` is the principal kept and
        the installments paid before the refund stay as they were, so the rate
        counts the refund as if it came at month 0. That can overstate the rate
        of a loan refunded after some installments.
        """
        if self.fee_fen + self.interest_fen == 0:
            return AnnualRate.from_monthly(ZERO)
        payments = [(item.number, item.amount_fen) for item in self.installments]
        return AnnualRate.from_monthly(
            internal_rate_of_return(self.principal_fen, payments)
        )

    def outstanding_fen(self, on: date) -> Decimal:
        """Return the principal outstanding on `on`, after installments due by then.

        Computed from the principal parts rather than the stored balances, so a
        refund that lowered `principal_fen` mid-plan counts from its date on.
        """
        if self.start is None:
            raise ValueError("the plan has no start date, so it has no due dates")
        repaid = sum(
            (
                item.principal_fen
                for item in self.installments
                if item.due_on is not None and item.due_on <= on
            ),
            ZERO,
        )
        return self.principal_fen - repaid


def fee_plan(
    principal_fen: Decimal, periods: int, fee_rate: Decimal, start: date | None = None
) -> InstallmentPlan:
    """Build a fee-based plan: (principal + fee) / n each, remainder on the last."""
    _check_inputs(principal_fen, periods)
    if not ZERO <= fee_rate < 1:
        raise ValueError(f"invalid fee rate {fee_rate}: expected 0 <= rate < 1")
    fee_fen = round_fen(principal_fen * fee_rate)
    amounts = split_evenly(principal_fen + fee_fen, periods)
    fee_parts = split_in_proportion(amounts, fee_fen, principal_fen + fee_fen)
    installments = _build(principal_fen, amounts, fee_parts, [ZERO] * periods, start)
    kind = PlanKind.FEE if fee_fen else PlanKind.INTEREST_FREE
    return InstallmentPlan(
        kind, principal_fen, installments, fee_rate=fee_rate, start=start
    )


def interest_free_plan(
    principal_fen: Decimal, periods: int, start: date | None = None
) -> InstallmentPlan:
    """Build a plan with no fee and no interest: principal / n each."""
    return fee_plan(principal_fen, periods, ZERO, start)


def interest_plan(
    principal_fen: Decimal,
    periods: int,
    annual_rate: Decimal,
    start: date | None = None,
    amortization: Amortization = Amortization.EQUAL_INSTALLMENT,
    fee_rate: Decimal = ZERO,
) -> InstallmentPlan:
    """Build a declining-balance plan at `annual_rate` (nominal, monthly compounding).

    A fee, if any, is a share of the principal spread evenly over the installments.
    """
    _check_inputs(principal_fen, periods)
    if not ZERO <= annual_rate < 10:
        raise ValueError(
            f"invalid interest rate {annual_rate}: expected a decimal annual rate such"
            " as 0.12 for 12 %"
        )
    monthly = annual_rate / MONTHS_PER_YEAR
    principal_parts, interest_parts = _amortize(
        principal_fen, periods, monthly, amortization
    )
    fee_fen = round_fen(principal_fen * fee_rate)
    fee_parts = split_evenly(fee_fen, periods) if fee_fen else [ZERO] * periods
    amounts = [p + f for p, f in zip(principal_parts, fee_parts, strict=True)]
    installments = _build(principal_fen, amounts, fee_parts, interest_parts, start)
    return InstallmentPlan(
        PlanKind.INTEREST,
        principal_fen,
        installments,
        fee_rate=fee_rate,
        interest_rate=annual_rate,
        start=start,
    )


def split_evenly(total_fen: Decimal, parts: int) -> list[Decimal]:
    """Split into `parts` equal amounts rounded half up, the remainder on the last.

    When rounding up would leave the last part negative (a tiny total over many
    parts), the equal parts are rounded down instead.
    """
    regular = round_fen(total_fen / parts)
    if regular * (parts - 1) > total_fen:
        regular = (total_fen / parts).quantize(Decimal(1), rounding=ROUND_FLOOR)
    return [regular] * (parts - 1) + [total_fen - regular * (parts - 1)]


def split_in_proportion(
    amounts: list[Decimal], part_fen: Decimal, whole_fen: Decimal
) -> list[Decimal]:
    """Split `part_fen` over `amounts` in the ratio part / whole, to the fen.

    Rounding the running total keeps every share between zero and its amount,
    and the shares add up to `part_fen` exactly.
    """
    shares = []
    paid = ZERO
    allotted = ZERO
    for amount in amounts:
        paid += amount
        running = round_fen(paid * part_fen / whole_fen) if whole_fen else ZERO
        shares.append(running - allotted)
        allotted = running
    return shares


def _amortize(
    principal_fen: Decimal, periods: int, monthly: Decimal, amortization: Amortization
) -> tuple[list[Decimal], list[Decimal]]:
    """Return principal and interest parts on the declining balance."""
    if amortization is Amortization.EQUAL_INSTALLMENT and monthly > 0:
        payment = round_fen(principal_fen * monthly / (1 - (1 + monthly) ** -periods))
    else:
        payment = ZERO
    regular_principal = split_evenly(principal_fen, periods)
    balance = principal_fen
    principal_parts: list[Decimal] = []
    interest_parts: list[Decimal] = []
    for index in range(periods):
        interest = round_fen(balance * monthly)
        if index == periods - 1:
            principal = balance
        elif payment:
            principal = min(max(payment - interest, ZERO), balance)
        else:
            principal = regular_principal[index]
        principal_parts.append(principal)
        interest_parts.append(interest)
        balance -= principal
    return principal_parts, interest_parts


def _build(
    principal_fen: Decimal,
    amounts: list[Decimal],
    fee_parts: list[Decimal],
    interest_parts: list[Decimal],
    start: date | None,
) -> tuple[Installment, ...]:
    """Assemble installments; `amounts` are principal plus fee, without interest."""
    balance = principal_fen
    installments = []
    for number, (amount, fee, interest) in enumerate(
        zip(amounts, fee_parts, interest_parts, strict=True), start=1
    ):
        principal = amount - fee
        balance -= principal
        due_on = add_months(start, number) if start else None
        installments.append(
            Installment(number, principal, fee, interest, balance, due_on)
        )
    return tuple(installments)


def _check_inputs(principal_fen: Decimal, periods: int) -> None:
    if principal_fen <= 0 or principal_fen != principal_fen.to_integral_value():
        raise ValueError(
            f"invalid principal {principal_fen} fen: expected a positive whole number"
            " of fen"
        )
    if periods < 1:
        raise ValueError(f"invalid periods {periods}: expected 1 or more installments")
