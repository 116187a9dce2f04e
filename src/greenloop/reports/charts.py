"""Charts as inline SVG, so a report opens offline with no script or network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = {
    "green": "#2e7d32",
    "needs_review": "#f9a825",
    "not_green": "#9e9e9e",
}
SERIES_COLOURS = ("#2e7d32", "#1565c0", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457")
ROW_HEIGHT = 22
LABEL_WIDTH = 220
BAR_WIDTH = 420
VALUE_WIDTH = 110


def _format(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def bar_chart(title: str, rows: Sequence[tuple[str, float]], unit: str = "") -> str:
    """Return an SVG horizontal bar chart of (label, value) rows."""
    if not rows:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    largest = max(value for _, value in rows) or 1.0
    height = ROW_HEIGHT * len(rows) + 30
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" class="chart-title">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = 24 + index * ROW_HEIGHT
        length = max(BAR_WIDTH * value / largest, 1.0) if value > 0 else 0.0
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end" '
            f'class="label">{escape(_shorten(label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" '
            f'height="{ROW_HEIGHT - 6}" '
            f'fill="{SERIES_COLOURS[0]}"><title>{escape(label)}: {_format(value)} '
            f"{escape(unit)}</title></rect>"
            f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 14}" class="value">'
            f"{_format(value)} {escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar_chart(
    title: str, rows: Sequence[tuple[str, Mapping[str, float]]], series: Sequence[str]
) -> str:
    """Return an SVG horizontal stacked bar chart; each row maps series to values."""
    if not rows:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    largest = max(sum(values.values()) for _, values in rows) or 1.0
    height = ROW_HEIGHT * len(rows) + 54
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" class="chart-title">{escape(title)}</text>',
    ]
    for index, name in enumerate(series):
        colour = PALETTE.get(name, SERIES_COLOURS[index % len(SERIES_COLOURS)])
        legend_x = LABEL_WIDTH + index * 130
        parts.append(
            f'<rect x="{legend_x}" y="22" width="12" height="12" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="32" class="legend">{escape(name)}</text>'
        )
    for index, (label, values) in enumerate(rows):
        y = 44 + index * ROW_HEIGHT
        x = float(LABEL_WIDTH)
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end" '
            f'class="label">{escape(_shorten(label))}</text>'
        )
        for series_index, name in enumerate(series):
            value = values.get(name, 0.0)
            if value <= 0:
                continue
            length = BAR_WIDTH * value / largest
            colour = PALETTE.get(
                name, SERIES_COLOURS[series_index % len(SERIES_COLOURS)]
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" '
                f'height="{ROW_HEIGHT - 6}" fill="{colour}"><title>{escape(label)}, '
                f"{escape(name)}: {_format(value)}</title></rect>"
            )
            x += length
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 14}" class="value">'
            f"{_format(sum(values.values()))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _shorten(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
