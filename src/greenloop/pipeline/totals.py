"""Totals of DOUBLE columns that come out the same in any row order.

DuckDB adds DOUBLE values in the order in which its threads meet the rows, so
a plain `sum()` can differ in its last digits between two runs on the same
input. `exact_sum` rounds each value to SUM_DECIMALS decimal places and adds
the rounded values as DECIMAL, which DuckDB adds exactly, so the total depends
only on the values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb

SUM_DECIMALS = 9
# DECIMAL(38, 9) keeps 29 digits before the point.
SUM_LIMIT = Decimal(10) ** (38 - SUM_DECIMALS)
ROUNDING_NOTE = (
    f"Totals of kgCO2e and of quantities round each purchase's value to "
    f"{SUM_DECIMALS} decimal places (for kgCO2e, to the microgram) and add the "
    "rounded values exactly, so they do not depend on the order of the rows."
)


class TotalOutOfRangeError(ValueError):
    """A value to total is not finite or too large for an exact total."""


def exact_sum(column: str) -> str:
    """Return SQL that totals `column` exactly after rounding each value.

    The total is a DECIMAL with SUM_DECIMALS places, or NULL without rows.
    """
    return f"sum(CAST({column} AS DECIMAL(38, {SUM_DECIMALS})))"


def fetch_totals(
    connection: duckdb.DuckDBPyConnection, query: str, what: str
) -> list[tuple[Any, ...]]:
    """Run a query whose totals come from `exact_sum` and return its rows.

    Raises TotalOutOfRangeError, naming `what`, when a value is NaN, infinite
    or a total reaches SUM_LIMIT.
    """
    try:
        return connection.execute(query).fetchall()
    except (duckdb.ConversionException, duckdb.OutOfRangeException) as error:
        raise TotalOutOfRangeError(
            f"total of {what} failed: a value is NaN or infinite, or a total "
            f"reaches {SUM_LIMIT:.0e} ({error}). Check the quantity and amount "
            "columns of the input for such values"
        ) from error


def to_float(total: Decimal | None, divisor: int = 1) -> float:
    """Return an exact total, divided by `divisor`, as the nearest float."""
    if total is None:
        return 0.0
    return float(total / divisor)
