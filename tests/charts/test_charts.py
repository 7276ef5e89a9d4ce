"""The chart module: SVG a page or a PDF can embed (no script, no inline style) and the
table of the same numbers beside it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from qms import charts

SVG = "{http://www.w3.org/2000/svg}"


def _parsed(chart: charts.Chart) -> ET.Element:
    root = ET.fromstring(chart.svg)
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    assert "style=" not in chart.svg and "<script" not in chart.svg and " on" not in chart.svg
    return root


def test_bar_chart_draws_one_bar_per_value_and_tabulates_them():
    chart = charts.bar_chart(
        "Findings per rule",
        ["2026-09", "2026-10"],
        [("window", [3, 0]), ("order", [1, 2])],
        category_header="Month",
    )
    root = _parsed(chart)
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 3  # a zero draws no bar
    heights = sorted(float(b.get("height")) for b in bars)
    assert heights[0] * 3 == heights[2]  # 1 and 3 on the same scale
    assert chart.headers == ["Month", "window", "order"]
    assert chart.rows == [["2026-09", "3", "1"], ["2026-10", "0", "2"]]
    assert root.find(f"{SVG}title").text == "Findings per rule"


def test_stacked_bars_stack():
    chart = charts.bar_chart("Open", ["<7d"], [("critical", [2]), ("major", [2])], stacked=True)
    bars = _parsed(chart).findall(f".//{SVG}rect[@class='bar']")
    (low, high) = sorted(bars, key=lambda b: -float(b.get("y")))
    assert float(high.get("y")) + float(high.get("height")) == float(low.get("y"))


def test_histogram_counts_values_against_the_limit():
    chart = charts.histogram(
        "thaw to infusion", [5, 12, 14, 28, 45], limit=30, bins=10, unit="m", limit_label="limit"
    )
    root = _parsed(chart)
    assert sum(int(count) for _range, count in chart.rows) == 5
    assert dict(chart.rows)["10–15m"] == "2"
    limit = root.find(f".//{SVG}line[@class='limit']")
    assert limit is not None and "limit 30m" in chart.svg
    over = [b for b in root.findall(f".//{SVG}rect[@class='bar']") if b.get("fill") == "#D55E00"]
    assert len(over) == 1  # the bin past the limit


def test_line_chart_skips_empty_periods_and_escapes_labels():
    chart = charts.line_chart("Compliance <all>", ["a", "b", "c"], [("k&y", [100, None, 50])])
    root = _parsed(chart)
    assert len(root.findall(f".//{SVG}circle")) == 2
    assert chart.rows == [["a", "100%"], ["b", ""], ["c", "50%"]]
    assert re.search(r"Compliance &lt;all&gt;", chart.svg) and "k&amp;y" in chart.svg
