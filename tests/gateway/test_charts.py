"""The console's inline SVG charts (gateway/charts.py): what they draw for given figures."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from omnix_recs.gateway import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


@pytest.mark.parametrize(
    ("values", "lines", "dots", "points"),
    [
        ([1.0, 2.0, 3.0, 4.0], 1, 0, 4),
        ([1.0, math.nan, 3.0, 4.0], 1, 1, 3),  # a gap, then a line
        ([1.0, 2.0, math.nan, 4.0], 1, 1, 3),
        ([math.nan, math.nan, math.nan, math.nan], 0, 0, 0),
    ],
)
def test_a_line_chart_leaves_gaps_where_nothing_was_measured(
    values: list[float], lines: int, dots: int, points: int
) -> None:
    svg = parse(charts.line_chart("c", "t", ["a", "b", "c", "d"], [charts.Series("s", values)]))
    assert len(svg.findall(f"{SVG}polyline")) == lines
    assert len(svg.findall(f"{SVG}circle")) == dots
    assert svg.get("data-points") == str(points)
    assert "nan" not in ET.tostring(svg, encoding="unicode").lower()


def test_an_interval_chart_draws_a_dot_and_a_whisker_per_estimate() -> None:
    estimates = [charts.Estimate("control", 0.05, 0.04, 0.06), charts.Estimate("<b>new</b>", -0.01, -0.03, 0.01)]
    markup = charts.interval_chart("i", "Difference", estimates, fmt=".1%")
    svg = parse(markup)
    whiskers = svg.findall(f"{SVG}line[@class='interval']")
    dots = svg.findall(f"{SVG}circle[@class='estimate']")
    assert len(whiskers) == len(dots) == 2 and svg.get("data-points") == "2"
    for whisker, dot in zip(whiskers, dots):
        assert float(whisker.get("x1")) < float(dot.get("cx")) < float(whisker.get("x2"))
    assert svg.findall(f"{SVG}line[@class='zero']")  # below zero: the zero line is drawn
    assert "<b>" not in markup and "&lt;b&gt;new" in markup
    assert svg.get("role") == "img" and svg.find(f"{SVG}title").text == "Difference"


def test_an_interval_chart_without_estimates_says_so() -> None:
    svg = parse(charts.interval_chart("i", "Nothing", []))
    assert svg.get("data-points") == "0" and svg.find(f"{SVG}desc").text == "No estimates yet."
