"""The self-contained HTML run report: inline CSS and SVG, no script, no network."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from greenloop.reports.charts import bar_chart, stacked_bar_chart

STATUSES = ("green", "needs_review", "not_green")

_environment = Environment(
    loader=PackageLoader("greenloop.reports", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


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
                    (f"{row['column']}: {row['reason']}", row["rows"])
                    for row in report["quarantine"]["by_reason"][:10]
                ],
            )
        ),
    }
    template = _environment.get_template("run_report.html.j2")
    return template.render(report=report, charts=charts, value_table=value_table)


def _verdict_chart(report: dict[str, Any]) -> str:
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for item in report["verdicts"]["by_category_status"]:
        rows[item["category"]][item["status"]] = float(item["purchases"])
    ordered = sorted(rows.items(), key=lambda pair: -sum(pair[1].values()))
    return stacked_bar_chart(
        "Verdicts by category and status (purchases)", ordered, STATUSES
    )


def value_table(value: Any, depth: int = 0) -> Markup:
    """Render any JSON value as nested HTML tables, for report sections of any shape."""
    from html import escape

    if isinstance(value, dict):
        if not value:
            return Markup("<em>none</em>")
        cells = "".join(
            f"<tr><th>{escape(str(key))}</th>"
            f"<td>{value_table(item, depth + 1)}</td></tr>"
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
            head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td>{value_table(item.get(c), depth + 1)}</td>" for c in columns
                )
                + "</tr>"
                for item in value
            )
            return Markup(f'<table class="rows"><tr>{head}</tr>{body}</table>')
        return Markup(", ".join(str(value_table(item, depth + 1)) for item in value))
    if isinstance(value, float):
        return Markup(escape(f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"))
    if value is None:
        return Markup("—")
    return Markup(escape(str(value)))
