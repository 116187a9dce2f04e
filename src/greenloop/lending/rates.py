"""Annualised rates of an installment plan, by internal rate of return.

A lender must disclose an annualised rate covering all fees, computed on the
principal actually outstanding. With the principal P lent at month 0 and the
payments A_k made at month k, the monthly rate i solves
P = sum(A_k / (1 + i) ** k); the nominal APR is 12 * i and the effective annual
rate is (1 + i) ** 12 - 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

MONTHS_PER_YEAR = 12
RATE_PLACES = Decimal("0.000001")
# Bounds for the monthly rate: -99 % to +100 % a month covers every plan whose
# payments are positive, including refunds that return more than the fee paid.
_LOW_MONTHLY_RATE = Decimal("-0.99")
_HIGH_MONTHLY_RATE = Decimal(1)
_ITERATIONS = 90
_TOLERANCE = Decimal("1e-18")


@dataclass(frozen=True, slots=True)
class AnnualRate:
    """The internal rate of return per month, and its two annual forms."""

    monthly: Decimal
    nominal_annual: Decimal
    effective_annual: Decimal

    @classmethod
    def from_monthly(cls, monthly: Decimal) -> AnnualRate:
        """Build the nominal (12 i) and effective ((1 + i)^12 - 1) annual rates."""
        with localcontext() as context:
            context.prec = 34
            effective = (1 + monthly) ** MONTHS_PER_YEAR - 1
        return cls(
            monthly=monthly.quantize(RATE_PLACES),
            nominal_annual=(monthly * MONTHS_PER_YEAR).quantize(RATE_PLACES),
            effective_annual=effective.quantize(RATE_PLACES),
        )


def internal_rate_of_return(
    principal_fen: Decimal, payments: Sequence[tuple[int, Decimal]]
) -> Decimal:
    """Solve for the monthly rate that discounts `payments` to `principal_fen`.

    `payments` are (month, amount in fen) pairs with months >= 1. Raises
    ValueError when no rate between -99 % and +100 % a month fits, for example
    when there are no payments.
    """
    if principal_fen <= 0:
        raise ValueError(f"invalid principal {principal_fen} fen: expected > 0")
    if not payments or any(month < 1 for month, _ in payments):
        raise ValueError("invalid payments: expected at least one, each at month >= 1")
    with localcontext() as context:
        context.prec = 34
        if _present_value(payments, _LOW_MONTHLY_RATE) < principal_fen:
            raise ValueError("no internal rate of return: payments are too small")
        if _present_value(payments, _HIGH_MONTHLY_RATE) > principal_fen:
            raise ValueError("no internal rate of return: payments are too large")
        rate = _newton(principal_fen, payments)
        if rate is None:
            rate = _bisection(principal_fen, payments)
        return rate


def _newton(
    principal_fen: Decimal, payments: Sequence[tuple[int, Decimal]]
) -> Decimal | None:
    """Solve by Newton's method from rate 0; None if it fails to converge.

    With positive payments the present value is a convex, falling function of
    the rate, so every step after the first approaches the root from below.
    """
    rate = Decimal(0)
    for _ in range(_ITERATIONS):
        value = -principal_fen
        slope = Decimal(0)
        factor = 1 / (1 + rate)
        for month, amount in payments:
            discounted = amount * factor**month
            value += discounted
            slope -= month * discounted * factor
        if slope == 0:
            return None
        step = value / slope
        rate -= step
        if not _LOW_MONTHLY_RATE < rate < _HIGH_MONTHLY_RATE:
            return None
        if abs(step) < _TOLERANCE:
            return rate
    return None


def _bisection(
    principal_fen: Decimal, payments: Sequence[tuple[int, Decimal]]
) -> Decimal:
    low, high = _LOW_MONTHLY_RATE, _HIGH_MONTHLY_RATE
    for _ in range(_ITERATIONS):
        middle = (low + high) / 2
        if _present_value(payments, middle) > principal_fen:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _present_value(payments: Sequence[tuple[int, Decimal]], rate: Decimal) -> Decimal:
    factor = 1 + rate
    return sum((amount / factor**month for month, amount in payments), Decimal(0))
