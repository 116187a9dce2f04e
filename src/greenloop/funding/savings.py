"""Daily accrual of the interest a facility saves against its benchmark.

Each day saves drawn * (benchmark rate - facility rate) / day count. Days are
booked in whole fen by rounding the running total, so the booked days add up
to the rounded exact total and no fraction of a fen is lost or made up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from greenloop.funding.config import FacilityConfig
from greenloop.lending.money import round_fen


@dataclass(frozen=True, slots=True)
class DailySaving:
    """The interest saved on one day, in whole fen, and the amount drawn that day."""

    day: date
    drawn_fen: Decimal
    savings_fen: Decimal


def accrue_savings(facility: FacilityConfig, through: date) -> Iterator[DailySaving]:
    """Yield one saving per day from the first drawdown to `through` or maturity."""
    spread = facility.benchmark_rate - facility.facility_rate
    last_day = min(through, facility.maturity_date)
    day = facility.first_drawdown
    exact_total = Decimal(0)
    booked_total = Decimal(0)
    while day <= last_day:
        drawn = facility.drawn_fen(day)
        exact_total += drawn * spread / facility.day_count
        booked = round_fen(exact_total) - booked_total
        booked_total += booked
        yield DailySaving(day, drawn, booked)
        day += timedelta(days=1)
