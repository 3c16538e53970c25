"""Inline SVG charts of the Reports page (no script, no CDN): labels escaped, numbers formatted."""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

STATE_COLORS = {"COMPLETED": "#2e9d5b", "FAILED": "#d2453b", "CANCELLED": "#8a8f98", "FILTERED": "#b7a14a"}
OTHER_COLOR = "#3b7dd8"


def runs_per_day(days: list[dict[str, Any]], width: int = 720, height: int = 180) -> SafeString:
    """Stacked bars, one per day, a segment per state."""
    top = max([sum(d["counts"].values()) for d in days] + [1])
    slot = width / max(len(days), 1)
    parts = [f'<svg class="chart" data-chart="runs-per-day" viewBox="0 0 {width} {height + 20}" role="img" '
             f'aria-label="Runs per day by state" width="100%">']  # fmt: skip
    for i, day in enumerate(days):
        y = float(height)
        for state, n in sorted(day["counts"].items()):
            h = n / top * (height - 10)
            y -= h
            parts.append(f'<rect x="{i * slot + 2:.1f}" y="{y:.1f}" width="{max(slot - 4, 1):.1f}" height="{h:.1f}" '
                         f'fill="{STATE_COLORS.get(state, OTHER_COLOR)}"><title>{escape(day["day"])} '
                         f'{escape(state)}: {n}</title></rect>')  # fmt: skip
        if i % max(1, len(days) // 7) == 0:
            parts.append(
                f'<text x="{i * slot + 2:.1f}" y="{height + 14}" font-size="10">{escape(day["day"][5:])}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def horizontal_bars(name: str, rows: list[tuple[str, list[tuple[str, float | None, str]]]], unit: str,
                    width: int = 720) -> SafeString:  # fmt: skip
    """One group per label, one bar per (series, value, color); the scale is the largest value."""
    top = max([v for _, bars in rows for _, v, _ in bars if v is not None] + [1e-9])
    bar_h, label_w = 12, 180
    height = sum(len(bars) * bar_h + 8 for _, bars in rows) + 4
    parts = [f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(name)}" width="100%">']  # fmt: skip
    y = 2
    for label, bars in rows:
        parts.append(f'<text x="0" y="{y + bar_h}" font-size="11">{escape(label[:28])}</text>')
        for series, value, color in bars:
            w = (value or 0) / top * (width - label_w - 80)
            shown = "—" if value is None else f"{value:g}{unit}"
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                         f'<title>{escape(label)} {escape(series)}: {escape(shown)}</title></rect>'
                         f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" font-size="10">{escape(series)} '
                         f'{escape(shown)}</text>')  # fmt: skip
            y += bar_h
        y += 8
    parts.append("</svg>")
    return mark_safe("".join(parts))
