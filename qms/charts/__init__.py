"""Charts drawn on the server as SVG, each with the table of its numbers (pages and PDFs).

Pure: no Flask, no database. A chart is made from plain numbers and returns a `Chart`:
its SVG text (presentation attributes and classes only: no inline style, no script, so
it passes a `default-src 'self'` policy and prints in WeasyPrint) and the table a screen
reader reads beside it. Labels are given already in the reader's language.

- `bar_chart(title, categories, series)`: grouped or stacked bars (counts per category).
- `line_chart(title, categories, series, maximum=100)`: a rate per period (compliance).
- `histogram(title, values, limit=..., bins=...)`: a distribution against its limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from unicodedata import east_asian_width

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 16, 48
# Colour-blind-safe palette (Okabe–Ito); series also differ by their legend and table.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


@dataclass
class Chart:
    title: str
    svg: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def __html__(self) -> str:  # rendered as the SVG in templates
        return self.svg


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _frame(title: str, body: list[str], desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>" + "".join(body) + "</svg>"
    )


def _axes(top_value: float, ticks: int = 4, suffix: str = "") -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#555" stroke-width="1"/>',
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="#555" stroke-width="1"/>',
    ]
    for i in range(ticks + 1):
        value = top_value * i / ticks
        y = HEIGHT - BOTTOM - plot_h * i / ticks
        out.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="9" '
            f'fill="#333">{_number(value)}{escape(suffix)}</text>'
        )
    return out


def _category_labels(categories: Sequence[str], step: float) -> list[str]:
    out = []
    for i, label in enumerate(categories):
        x = LEFT + step * (i + 0.5)
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 12}" text-anchor="middle" font-size="9" '
            f'fill="#333">{escape(str(label))}</text>'
        )
    return out


def _legend(labels: Sequence[str]) -> list[str]:
    out = []
    x = LEFT
    for i, label in enumerate(labels):
        colour = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{x}" y="{HEIGHT - 18}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 9}" font-size="9" fill="#333">{escape(label)}</text>'
        )
        # A Chinese character is about twice as wide as a Latin one at this size.
        x += 24 + 6 * sum(2 if east_asian_width(c) in "WF" else 1 for c in label)
    return out


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1
    for top in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= top:
            return top
    return float(value)


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    stacked: bool = False,
    category_header: str = "",
) -> Chart:
    """Bars per category, one per series (side by side), or stacked."""
    totals = [sum(values[i] for _l, values in series) for i in range(len(categories))]
    peak = max(totals if stacked else [v for _l, vs in series for v in vs] or [0], default=0)
    top = _nice_top(peak)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(categories))
    body = _axes(top)
    for i in range(len(categories)):
        base = 0.0
        for s, (label, values) in enumerate(series):
            value = values[i]
            colour = PALETTE[s % len(PALETTE)]
            h = plot_h * value / top
            if stacked:
                x, w = LEFT + step * i + step * 0.2, step * 0.6
                y = HEIGHT - BOTTOM - plot_h * base / top - h
                base += value
            else:
                w = step * 0.7 / max(1, len(series))
                x = LEFT + step * i + step * 0.15 + w * s
                y = HEIGHT - BOTTOM - h
            if value:
                body.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(str(categories[i]))}, {escape(label)}: '
                    f"{_number(value)}</title></rect>"
                )
    body += _category_labels(categories, step)
    body += _legend([label for label, _v in series])
    rows = [
        [str(c), *(_number(values[i]) for _l, values in series)] for i, c in enumerate(categories)
    ]
    return Chart(
        title,
        _frame(title, body, f"{len(categories)} categories"),
        [category_header, *(label for label, _v in series)],
        rows,
    )


def line_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    maximum: float = 100,
    suffix: str = "%",
    category_header: str = "",
) -> Chart:
    """A value per period for each series (None: nothing in that period)."""
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(categories))
    body = _axes(maximum, suffix=suffix)
    for s, (label, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        points = [
            (LEFT + step * (i + 0.5), HEIGHT - BOTTOM - plot_h * v / maximum)
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(
                f'<polyline class="line" points="{path}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for (x, y), v in zip(points, [v for v in values if v is not None], strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                f"{escape(label)}: {_number(v)}{escape(suffix)}</title></circle>"
            )
    body += _category_labels(categories, step)
    body += _legend([label for label, _v in series])
    rows = [
        [
            str(c),
            *("" if values[i] is None else _number(values[i]) + suffix for _l, values in series),
        ]
        for i, c in enumerate(categories)
    ]
    return Chart(
        title,
        _frame(title, body, f"{len(series)} series over {len(categories)} periods"),
        [category_header, *(label for label, _v in series)],
        rows,
    )


def histogram(
    title: str,
    values: Sequence[float],
    *,
    limit: float | None,
    bins: int = 10,
    unit: str = "",
    count_header: str = "",
    range_header: str = "",
    limit_label: str = "",
) -> Chart:
    """How many values fall in each bin, with the limit drawn as a line."""
    high = max([*values, limit or 0, 1])
    width = _nice_top(high) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, int(value // width)))] += 1
    top = _nice_top(max(counts, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / bins
    body = _axes(top)
    labels = []
    for i, count in enumerate(counts):
        low, up = width * i, width * (i + 1)
        labels.append(f"{_number(low)}–{_number(up)}{unit}")
        h = plot_h * count / top
        over = limit is not None and low >= limit
        colour = PALETTE[3] if over else PALETTE[0]
        if count:
            body.append(
                f'<rect class="bar" x="{LEFT + step * i + 1:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
                f'width="{step - 2:.1f}" height="{h:.1f}" fill="{colour}"><title>{labels[-1]}: '
                f"{count}</title></rect>"
            )
    body += _category_labels(labels, step)
    if limit is not None:
        x = LEFT + plot_w * limit / (width * bins)
        body.append(
            f'<line class="limit" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
            'stroke="#D55E00" stroke-width="2" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 9}" font-size="9" fill="#D55E00">'
            f"{escape(limit_label)} {_number(limit)}{escape(unit)}</text>"
        )
    rows = [[label, str(count)] for label, count in zip(labels, counts, strict=True)]
    return Chart(
        title,
        _frame(title, body, f"{len(values)} values in {bins} bins"),
        [range_header, count_header],
        rows,
    )
