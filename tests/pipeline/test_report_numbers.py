"""Numbers as the HTML run report shows them."""

from __future__ import annotations

import pytest

from greenloop.reports.run_report import format_tonnes


@pytest.mark.parametrize(
    ("kg", "shown"),
    [
        (0, "0.00"),
        (10, "0.01"),
        (123_456.7, "123.46"),
        (9.99, "0.00999"),
        (0.4741625, "0.000474"),
        (0.000_001, "0.00000000100"),
    ],
)
def test_format_tonnes_keeps_small_values(kg: float, shown: str) -> None:
    assert format_tonnes(kg) == shown
