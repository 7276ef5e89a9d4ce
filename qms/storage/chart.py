"""A readings chart as SVG, drawn on the server: the line, the limits, excursions marked.

Presentation attributes and classes only (no inline style), so that a strict
Content-Security-Policy holds; the page shows the readings' table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 28
MAX_POINTS = 2000  # more readings than pixels are thinned to the extremes of each slot


def _thin(points: Sequence[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    size = len(points) / (MAX_POINTS / 2)
    out = []
    for i in range(MAX_POINTS // 2):
        chunk = points[int(i * size) : int((i + 1) * size)] or points[-1:]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def readings_chart(
    points: Sequence[tuple[datetime, float, bool]],
    *,
    start: datetime,
    end: datetime,
    low: float | None,
    high: float | None,
    title: str,
) -> Markup:
    """The SVG of readings between `start` and `end` (°C on the vertical axis); each point
    is (time, temperature, part of an excursion)."""
    marked = [(a, t) for a, t, out in points if out]
    points = _thin([(a, t) for a, t, _out in points])
    temps = [t for _a, t in points] + [v for v in (low, high) if v is not None]
    top = max(temps) if temps else 0.0
    bottom = min(temps) if temps else -1.0
    if top - bottom < 1:
        top, bottom = top + 1, bottom - 1
    pad = (top - bottom) * 0.08
    top, bottom = top + pad, bottom - pad
    span = (end - start).total_seconds() or 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + inner_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + inner_h * (top - value) / (top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#d5dbe3"/>',
    ]
    for value in (top - pad, (top + bottom) / 2, bottom + pad):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6776">{value:.0f} °C</text>'
        )
    for limit in (low, high):
        if limit is not None:
            parts.append(
                f'<line class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit):.1f}" '
                f'y2="{y(limit):.1f}" stroke="#a31515" stroke-dasharray="6 4"/>'
            )
    if points:
        path = " ".join(f"{x(a):.1f},{y(t):.1f}" for a, t in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b5fa5" stroke-width="1.5"/>')
        for a, t in marked[:MAX_POINTS]:
            parts.append(
                f'<circle class="excursion" cx="{x(a):.1f}" cy="{y(t):.1f}" r="3.5" fill="#a31515"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
