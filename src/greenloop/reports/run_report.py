"""The self-contained HTML run report: inline CSS and SVG, no script, no network."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from greenloop.reports.charts import bar_chart, stacked_bar_chart

STATUSES = ("green", "needs_review", "not_green")
# Reasons and quarantine problems are sentences, so their charts give the
# labels more room than the bars.
SENTENCE_LABEL_WIDTH = 430
# Reasons lead to any status and quarantine is no success, so their bars are
# not painted in the green of green verdicts.
REASON_COLOUR = "#1565c0"
QUARANTINE_COLOUR = "#8d6e63"
# Text cells longer than this many characters get a minimum width.
LONG_TEXT_CHARACTERS = 40
# A number already formatted as text, such as an amount in CNY.
_NUMBER_TEXT = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?")

# The templates are named *.html.j2, which select_autoescape matches only
# with "html.j2" among its extensions. Without it, text such as the input's
# file name would reach the page unescaped.
_environment = Environment(
    loader=PackageLoader("greenloop.reports", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def format_tonnes(kg: float) -> str:
    """Format a mass in kg as tonnes, with two decimals or three significant digits.

    Below 0.01 t two decimals would show 0.00, as if nothing were avoided.
    """
    tonnes = kg / 1000
    if tonnes == 0 or abs(tonnes) >= 0.01:
        return f"{tonnes:,.2f}"
    decimals = 2 - math.floor(math.log10(abs(tonnes)))
    return f"{tonnes:.{decimals}f}"


_environment.filters["tonnes"] = format_tonnes


def render_html(report: dict[str, Any]) -> str:
    """Return the run report as one HTML page."""
    charts = {
        "verdicts": Markup(_verdict_chart(report)),
        "reasons": Markup(
            bar_chart(
                "Top reasons (purchases)",
                [
                    (r["reason"], r["purchases"])
                    for r in report["verdicts"]["top_reasons"]
                ],
                label_width=SENTENCE_LABEL_WIDTH,
                colour=REASON_COLOUR,
            )
        ),
        "avoided": Markup(
            bar_chart(
                "CO2 avoided by category (tCO2e per year)",
                [
                    (row["category"], row["t_co2e_per_year"])
                    for row in report.get("avoided_by_category", [])
                ],
                "t/yr",
            )
        ),
        "quarantine": Markup(
            bar_chart(
                "Quarantined rows by reason",
                [
                    (_quarantine_label(row["column"], row["reason"]), row["rows"])
                    for row in report["quarantine"]["by_reason"][:10]
                ],
                label_width=SENTENCE_LABEL_WIDTH,
                colour=QUARANTINE_COLOUR,
            )
        ),
    }
    charts["allocation"] = Markup(_allocation_chart(report.get("allocation")))
    charts["incentives"] = Markup(
        bar_chart(
            "Incentive budget used per category (CNY)",
            [
                (name, group.get("spent_fen", 0) / 100)
                for name, group in (report.get("incentives") or {})
                .get("groups", {})
                .items()
            ],
            "CNY",
        )
    )
    template = _environment.get_template("run_report.html.j2")
    return template.render(
        report=report,
        charts=charts,
        value_table=value_table,
        rows=keyed_rows,
        money=for_display,
        breakable=lambda text: Markup(_breakable(str(text))),
        exact_number=exact_number,
    )


def _quarantine_label(column: str, reason: str) -> str:
    """Return the reason, led by its column unless the reason names it already."""
    return reason if column in reason else f"{column}: {reason}"


def _allocation_chart(allocation: dict[str, Any] | None) -> str:
    rows: list[tuple[str, dict[str, float]]] = []
    for name, facility in ((allocation or {}).get("facilities") or {}).items():
        allocated = facility.get("allocated_fen", 0) / 100
        unallocated = facility.get("unallocated_fen", 0) / 100
        rows.append((name, {"allocated": allocated, "unallocated": unallocated}))
    return stacked_bar_chart(
        "Drawn amount per facility: allocated and unallocated (CNY)",
        rows,
        ("allocated", "unallocated"),
    )


def keyed_rows(mapping: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """Turn {name: {field: value}} into rows with the name as the first column."""
    if not mapping:
        return []
    return [
        {key: name, **(fields if isinstance(fields, dict) else {"value": fields})}
        for name, fields in mapping.items()
    ]


def for_display(value: Any) -> Any:
    """Show amounts in fen as CNY: a key `x_fen` becomes `x (CNY)` with two decimals."""
    if isinstance(value, dict):
        displayed: dict[str, Any] = {}
        for key, item in value.items():
            if key.endswith("_fen") and isinstance(item, int):
                displayed[f"{key[:-4]} (CNY)"] = f"{Decimal(item) / 100:,.2f}"
            elif key.endswith("_fen") and isinstance(item, dict):
                displayed[f"{key[:-4]} (CNY)"] = {
                    name: f"{Decimal(amount) / 100:,.2f}"
                    for name, amount in item.items()
                }
            else:
                displayed[key] = for_display(item)
        return displayed
    if isinstance(value, list):
        return [for_display(item) for item in value]
    return value


def _verdict_chart(report: dict[str, Any]) -> str:
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for item in report["verdicts"]["by_category_status"]:
        rows[item["category"]][item["status"]] = float(item["purchases"])
    ordered = sorted(rows.items(), key=lambda pair: -sum(pair[1].values()))
    return stacked_bar_chart(
        "Verdicts by category and status (purchases)", ordered, STATUSES
    )


def value_table(value: Any, depth: int = 0) -> Markup:
    """Render any JSON value as nested HTML tables, for report sections of any shape.

    A table at the top level sits in a box that scrolls sideways when it is
    wider than the page. Headings have spaces for underscores, and names in
    cells may break after an underscore. Numbers, also those formatted as
    text, are aligned right, and counts from 10,000 get thousands separators.
    Booleans show as yes and no, and a web address as a link named by its
    host.
    """
    table = _value_html(value, depth)
    if depth == 0 and isinstance(value, dict | list) and value:
        return Markup(f'<div class="table-box">{table}</div>')
    return table


def _value_html(value: Any, depth: int) -> Markup:
    from html import escape

    if isinstance(value, dict):
        if not value:
            return Markup("<em>none</em>")
        cells = "".join(
            f"<tr><th>{_heading(str(key))}</th>{_cell(item, depth + 1)}</tr>"
            for key, item in value.items()
        )
        return Markup(f'<table class="values">{cells}</table>')
    if isinstance(value, list):
        if not value:
            return Markup("<em>none</em>")
        if all(isinstance(item, dict) for item in value):
            columns: list[str] = []
            for item in value:
                columns += [key for key in item if key not in columns]
            head = "".join(f"<th>{_heading(str(c))}</th>" for c in columns)
            body = "".join(
                "<tr>"
                + "".join(_cell(item.get(c), depth + 1) for c in columns)
                + "</tr>"
                for item in value
            )
            return Markup(f'<table class="rows"><tr>{head}</tr>{body}</table>')
        # Each item is isolated, so direction marks in one item cannot reorder
        # the next.
        return Markup(
            ", ".join(f"<bdi>{_value_html(item, depth + 1)}</bdi>" for item in value)
        )
    if isinstance(value, float):
        return Markup(escape(f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"))
    if value is None:
        return Markup("—")
    if isinstance(value, bool):
        return Markup("yes" if value else "no")
    if isinstance(value, int) and abs(value) >= 10_000:
        # Four-digit numbers, such as years, keep no separator.
        return Markup(f"{value:,}")
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        # The host names the source, and the whole address is the link's
        # target and tooltip, so long addresses do not widen the table.
        host = urlsplit(value).netloc or value
        return Markup(
            f'<a href="{escape(value)}" title="{escape(value)}">{escape(host)}</a>'
        )
    return Markup(_breakable(str(value)))


def exact_number(value: Any) -> str:
    """Return a number with all its digits, and a whole float without ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _heading(key: str) -> str:
    """Return a field name as a column heading, with spaces for underscores."""
    from html import escape

    return escape(key.replace("_", " "))


def _breakable(text: str) -> str:
    """Return `text` escaped, with a line-break opportunity after each underscore."""
    from html import escape

    return escape(text).replace("_", "_<wbr>")


def _cell(value: Any, depth: int) -> str:
    """Return one table cell, aligned right when it shows a number."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(value, str) and _NUMBER_TEXT.fullmatch(value)):
        opening = '<td class="number">'
    elif isinstance(value, str) and len(value) > LONG_TEXT_CHARACTERS:
        # Without a minimum width, a wide table squeezes such a column until
        # each of its rows is many lines tall.
        opening = '<td class="long">'
    else:
        opening = "<td>"
    return f"{opening}{_value_html(value, depth)}</td>"
