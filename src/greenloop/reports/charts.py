"""Charts as inline SVG, so a report opens offline with no script or network."""

from __future__ import annotations

import unicodedata
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
CHART_WIDTH = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
# Estimated advance widths in pixels of one character at the charts' 12 px
# font: wide East Asian characters fill a full em, and 7 px is above the
# average Latin glyph, so a label shortened to fit does not spill over.
WIDE_CHARACTER_PX = 12.0
NARROW_CHARACTER_PX = 7.0
LABEL_GAP = 6


def _format(value: float) -> str:
    """Format a bar's value: with no decimals from 100 up or when it is whole,
    two decimals down to 0.01, and three significant digits below, so that a
    small value does not show 0."""
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 0.01:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, float]],
    unit: str = "",
    *,
    label_width: int = LABEL_WIDTH,
    colour: str = SERIES_COLOURS[0],
) -> str:
    """Return an SVG horizontal bar chart of (label, value) rows.

    Labels are shortened to fit `label_width` pixels, and each bar's tooltip
    shows the whole label.
    """
    if not rows:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    largest = max(value for _, value in rows) or 1.0
    height = ROW_HEIGHT * len(rows) + 30
    bar_width = CHART_WIDTH - label_width - VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" class="chart-title">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = 24 + index * ROW_HEIGHT
        length = max(bar_width * value / largest, 1.0) if value > 0 else 0.0
        shown_label = shorten(label, label_width - LABEL_GAP)
        parts.append(
            f'<text x="{label_width - LABEL_GAP}" y="{y + 14}" text-anchor="end" '
            f'class="label">{escape(shown_label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" '
            f'height="{ROW_HEIGHT - 6}" '
            f'fill="{colour}"><title>{escape(_isolated(label))}: {_format(value)} '
            f"{escape(unit)}</title></rect>"
            f'<text x="{label_width + length + 4:.1f}" y="{y + 14}" class="value">'
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
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}">',
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
        shown_label = shorten(label, LABEL_WIDTH - LABEL_GAP)
        parts.append(
            f'<text x="{LABEL_WIDTH - LABEL_GAP}" y="{y + 14}" text-anchor="end" '
            f'class="label">{escape(shown_label)}</text>'
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
                f'height="{ROW_HEIGHT - 6}" fill="{colour}">'
                f"<title>{escape(_isolated(label))}, "
                f"{escape(name)}: {_format(value)}</title></rect>"
            )
            x += length
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 14}" class="value">'
            f"{_format(sum(values.values()))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _isolated(label: str) -> str:
    """Return `label` between the Unicode isolate marks FSI and PDI.

    A tooltip is plain text, so the marks keep direction marks in the label,
    such as an unclosed right-to-left override, from reordering the value
    after it.
    """
    return f"\u2068{label}\u2069"


def shorten(label: str, width_px: float) -> str:
    """Return `label`, cut and ended with an ellipsis when its estimated width
    is over `width_px` pixels."""
    if _text_width(label) <= width_px:
        return label
    room = width_px - NARROW_CHARACTER_PX  # for the ellipsis
    kept_characters: list[str] = []
    for character in label:
        room -= _character_width(character)
        if room < 0:
            break
        kept_characters.append(character)
    return "".join(kept_characters).rstrip() + "…"


def _text_width(text: str) -> float:
    return sum(_character_width(character) for character in text)


def _character_width(character: str) -> float:
    if unicodedata.east_asian_width(character) in ("W", "F"):
        return WIDE_CHARACTER_PX
    return NARROW_CHARACTER_PX
