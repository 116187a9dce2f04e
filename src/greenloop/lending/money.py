"""Money in fen (1/100 yuan) as integral `Decimal` values, rounded explicitly.

Every amount in the finance packages is a `Decimal` holding a whole number of
fen. Intermediate results (a share of a fee, a discounted payment) may carry
fractions of a fen and are brought back to whole fen only by `round_fen`, which
rounds half up, the convention of the fee tables.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = Decimal(100)
ONE_FEN = Decimal(1)
ZERO = Decimal(0)


def round_fen(amount: Decimal) -> Decimal:
    """Round an amount in fen to whole fen, half up."""
    return amount.quantize(ONE_FEN, rounding=ROUND_HALF_UP)


def floor_fen(amount: Decimal) -> Decimal:
    """Round an amount in fen down to whole fen."""
    return amount.quantize(ONE_FEN, rounding=ROUND_FLOOR)


def yuan_to_fen(yuan: Decimal | int | str) -> Decimal:
    """Convert yuan to whole fen; raise ValueError for a fraction of a fen."""
    try:
        value = Decimal(str(yuan)) * FEN_PER_YUAN
    except InvalidOperation as error:
        raise ValueError(
            f"invalid amount {yuan!r}: expected yuan as a decimal number such as 3000"
            " or 12.50"
        ) from error
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(
            f"invalid amount {yuan!r}: expected yuan with at most two decimals"
            " (whole fen), such as 12.50"
        )
    return value.quantize(ONE_FEN)


def fen_to_yuan(fen: Decimal | int) -> Decimal:
    """Convert whole fen to yuan with two decimals."""
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_yuan(fen: Decimal | int) -> str:
    """Format fen as yuan with thousands separators, for example `1,088.00`."""
    return f"{fen_to_yuan(fen):,.2f}"


def add_months(start: date, months: int) -> date:
    """Return the same day `months` later, clipped to the end of a shorter month."""
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, _days_in_month(year, month))
    return date(year, month, day)


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days
