"""Numbers as the HTML run report shows them."""

from __future__ import annotations

import pytest

from greenloop.reports.charts import _format
from greenloop.reports.run_report import _quarantine_label, format_tonnes, value_table


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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (2_514.0, "2,514"),
        (13.274, "13.27"),
        (0.0022, "0.0022"),
        (0.000_474, "0.000474"),
    ],
)
def test_chart_value_keeps_small_values(value: float, shown: str) -> None:
    assert _format(value) == shown


PLACEMENT = "cash and central bank reserves, pending allocation"


def test_value_table_cells() -> None:
    html = str(
        value_table(
            [
                {
                    "unallocated_placement": PLACEMENT,
                    "pool_covers_drawn": True,
                    "reconciled": False,
                    "loans_allocated": 12,
                    "purchases": 10_713,
                    "allocated (CNY)": "2,824,321.71",
                }
            ]
        )
    )
    assert "<th>unallocated placement</th>" in html
    assert "<td>yes</td>" in html
    assert "<td>no</td>" in html
    assert '<td class="number">12</td>' in html
    assert '<td class="number">10,713</td>' in html
    assert '<td class="number">2,824,321.71</td>' in html
    assert '<td class="long">cash and central bank reserves' in html
    assert html.startswith('<div class="table-box">')


@pytest.mark.parametrize(
    ("column", "reason", "label"),
    [
        ("currency", "unknown currency: 'XYZ'", "unknown currency: 'XYZ'"),
        ("quantity", "impossible value 0", "quantity: impossible value 0"),
    ],
)
def test_quarantine_label_names_column_once(
    column: str, reason: str, label: str
) -> None:
    assert _quarantine_label(column, reason) == label
