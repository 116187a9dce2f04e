"""Figures of many fee-based installment plans at once, with NumPy.

`fee_plan` in `greenloop.lending.plans` builds one plan with Decimal
arithmetic. The functions here compute the same figures for an array of
principals that share a number of periods and a fee rate. They give the fee,
the regular and the last installment, the principal repaid after k
installments, the installments due by a date, the APR and the funding cost of
the interest-free plan. Amounts use int64 fen with integer half-up rounding,
which gives the same results as `round_fen`. Rates and present values come from float
arithmetic. A result that lies too close to a rounding boundary for float
arithmetic to decide is flagged in `exact`, and the caller prices that loan
with the Decimal code instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from greenloop.lending.money import ZERO
from greenloop.lending.rates import RATE_PLACES, AnnualRate

Fen = NDArray[np.int64]
Mask = NDArray[np.bool_]

# The largest principal priced here. With it, every product below stays under
# 2**62, so int64 arithmetic cannot overflow.
MAX_PRINCIPAL_FEN = 10**9
# Largest numerator or denominator of a fee rate accepted here, for the same
# reason.
_MAX_RATE_TERM = 10**8
# Rates are quantized to millionths. A float rate is trusted only when its
# scaled value is at least this far from a half, far above the float error
# (about 1e-8 in millionths for these plans).
_RATE_MARGIN = 1e-5
# A float present value is trusted only when the fen amount is at least this
# far from a half fen. Its error is below 1e-5 fen for principals up to
# MAX_PRINCIPAL_FEN.
_FEN_MARGIN = 1e-3
_NEWTON_STEPS = 60
_ZERO_RATE = AnnualRate.from_monthly(ZERO)


@dataclass(frozen=True, slots=True)
class FeePlans:
    """The amounts of fee plans sharing a number of periods and a fee rate."""

    principal: Fen
    periods: int
    fee: Fen
    regular: Fen
    last: Fen

    @property
    def total(self) -> Fen:
        """Principal plus fee, the sum of all installments."""
        return self.principal + self.fee


def supports(fee_rate: Decimal, periods: int) -> bool:
    """Tell whether `fee_plans` can price this rate and number of periods."""
    if periods < 1 or not ZERO <= fee_rate < 1:
        return False
    numerator, denominator = fee_rate.as_integer_ratio()
    return numerator <= _MAX_RATE_TERM and denominator <= _MAX_RATE_TERM


def fee_plans(principal: Fen, periods: int, fee_rate: Decimal) -> FeePlans:
    """Compute the installments of `fee_plan(principal, periods, fee_rate)`.

    Every principal must be positive and at most MAX_PRINCIPAL_FEN, and
    `supports(fee_rate, periods)` must hold; otherwise ValueError.
    """
    if not supports(fee_rate, periods):
        raise ValueError(
            f"invalid fee rate {fee_rate} or periods {periods} for batch pricing;"
            " use greenloop.lending.plans.fee_plan"
        )
    if principal.size and (principal.min() <= 0 or principal.max() > MAX_PRINCIPAL_FEN):
        raise ValueError(
            f"invalid principal for batch pricing: expected 1 to {MAX_PRINCIPAL_FEN}"
            " fen; use greenloop.lending.plans.fee_plan"
        )
    numerator, denominator = fee_rate.as_integer_ratio()
    fee = _round_half_up(principal * numerator, denominator)
    total = principal + fee
    regular = _round_half_up(total, periods)
    # As in `split_evenly`: round down when rounding up leaves the last part
    # negative.
    regular = np.where(regular * (periods - 1) > total, total // periods, regular)
    last = total - regular * (periods - 1)
    return FeePlans(principal, periods, fee, regular, last)


def repaid_principal(plans: FeePlans, paid: Fen) -> Fen:
    """Return the principal repaid by the first `paid` installments (0 to n).

    As in `split_in_proportion`, the fee part of the first k installments is
    the rounded share fee / total of the amount paid by then.
    """
    paid = np.clip(paid, 0, plans.periods)
    total = plans.total
    amount = np.where(paid >= plans.periods, total, paid * plans.regular)
    fee_part = _round_half_up(amount * plans.fee, total)
    return amount - fee_part


def installments_due(starts: NDArray[np.int64], periods: int, on: date) -> Fen:
    """Count the installments due on or before `on` for plans starting on `starts`.

    `starts` contains dates as year * 10000 + month * 100 + day. Installment k
    falls due `add_months(start, k)`: the same day k months later, clipped to
    the end of a shorter month.
    """
    year = starts // 10000
    month = starts // 100 % 100
    day = starts % 100
    months_between = (on.year * 12 + on.month) - (year * 12 + month)
    due_day = np.minimum(day, _days_in_month(on.year, on.month))
    count = months_between - (due_day > on.day)
    return np.clip(count, 0, periods)


def date_numbers(days: list[date]) -> NDArray[np.int64]:
    """Encode dates as year * 10000 + month * 100 + day, for `installments_due`."""
    return np.fromiter(
        (day.year * 10000 + day.month * 100 + day.day for day in days),
        dtype=np.int64,
        count=len(days),
    )


@dataclass(frozen=True, slots=True)
class AnnualRates:
    """APR and effective annual rate in millionths, and the loans to price exactly."""

    nominal_micro: Fen
    effective_micro: Fen
    exact: Mask


def annual_rates(plans: FeePlans) -> AnnualRates:
    """Compute `InstallmentPlan.annual_rate()` of each plan, in millionths.

    Plans without a fee have rate zero. A plan whose rate could round either way
    at float precision, or whose solve failed, is flagged in `exact`.
    """
    principal = plans.principal.astype(np.float64)
    regular = plans.regular.astype(np.float64)
    last = plans.last.astype(np.float64)
    periods = plans.periods
    # Newton's method from rate 0, as `internal_rate_of_return` does: the
    # present value falls and is convex in the rate, so the steps approach
    # the root from below.
    rate = np.zeros_like(principal)
    step = np.zeros_like(principal)
    converged = False
    for _ in range(_NEWTON_STEPS):
        value, slope = _present_value(regular, last, periods, rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = (value - principal) / slope
        rate = rate - step
        if converged:
            break
        # Convergence is quadratic, so one more step after a step of 1e-14
        # leaves only float rounding error.
        converged = not np.any(np.abs(step) > 1e-14)
    with np.errstate(invalid="ignore"):
        nominal = rate * 12e6
        effective = np.expm1(12 * np.log1p(rate)) * 1e6
        monthly = rate * 1e6
    exact = ~np.isfinite(rate) | (rate <= -0.99) | (rate >= 1)
    exact |= _near_half(nominal, _RATE_MARGIN) | _near_half(effective, _RATE_MARGIN)
    exact |= _near_half(monthly, _RATE_MARGIN)
    exact |= np.abs(step) > 1e-12
    free = plans.fee == 0
    exact &= ~free
    safe_nominal = np.where(exact | free, 0.0, nominal)
    safe_effective = np.where(exact | free, 0.0, effective)
    return AnnualRates(
        nominal_micro=np.rint(safe_nominal).astype(np.int64),
        effective_micro=np.rint(safe_effective).astype(np.int64),
        exact=exact,
    )


def interest_free_funding_cost(
    principal: Fen, periods: int, funding_rate: Decimal
) -> tuple[Fen, Mask]:
    """Compute `interest_free_cost(...).funding_cost_fen` for each principal.

    Returns the costs and a mask of the loans whose cost lies too close to a
    half fen for float arithmetic, which the caller prices exactly.
    """
    plans = fee_plans(principal, periods, ZERO)
    rate = np.full(principal.shape, float(funding_rate) / 12)
    value, _ = _present_value(
        plans.regular.astype(np.float64), plans.last.astype(np.float64), periods, rate
    )
    cost = principal.astype(np.float64) - value
    exact = _near_half(cost, _FEN_MARGIN) | ~np.isfinite(cost)
    rounded = np.floor(np.where(exact, 0.0, cost) + 0.5).astype(np.int64)
    return rounded, exact


def rate_decimal(micro: int) -> Decimal:
    """Return a rate in millionths as the Decimal that `AnnualRate` stores."""
    return Decimal(micro).scaleb(-6).quantize(RATE_PLACES)


def zero_rate() -> AnnualRate:
    """Return the annual rate of a plan without fee or interest."""
    return _ZERO_RATE


def _present_value(
    regular: NDArray[np.float64],
    last: NDArray[np.float64],
    periods: int,
    rate: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return the present value at monthly `rate` and its derivative by the rate."""
    discount = 1 / (1 + rate)
    factor = np.ones_like(rate)
    value = np.zeros_like(rate)
    slope = np.zeros_like(rate)
    for month in range(1, periods + 1):
        factor = factor * discount
        amount = regular if month < periods else last
        discounted = amount * factor
        value += discounted
        slope -= month * discounted * discount
    return value, slope


def _round_half_up(numerator: Fen, denominator: Fen | int) -> Fen:
    """Divide non-negative integers, rounding halves up."""
    return (2 * numerator + denominator) // (2 * denominator)


def _near_half(values: NDArray[np.float64], margin: float) -> Mask:
    with np.errstate(invalid="ignore"):
        fraction = values - np.floor(values)
        return np.abs(fraction - 0.5) < margin


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days
