"""Inline SVG charts for the console: drawn on the server, no script, no chart library.

Each chart is an `<svg role="img">` with a title and a description for screen readers, and
the page shows the same numbers as a table beside it. Values are escaped; sizes are in the
SVG's own units and the chart scales to its container's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36
PALETTE = ("#0b5cad", "#c2571a", "#2e7d32", "#6a1b9a", "#00838f")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


def _frame(chart_id: str, kind: str, title: str, description: str, body: str, points: int) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" data-kind="{kind}" data-points="{points}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'preserveAspectRatio="xMidYMid meet"><title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(description)}</desc>{body}</svg>'
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return float(step * magnitude)
    return value


def _y_axis(top_value: float, fmt: str) -> str:
    parts = []
    plot_height = HEIGHT - TOP - BOTTOM
    for i in range(5):
        value = top_value * i / 4
        y = HEIGHT - BOTTOM - plot_height * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{format(value, fmt)}</text>'
        )
    return "".join(parts)


def bar_chart(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, fmt: str = ".4g"
) -> Markup:
    """Grouped bars: one group per label, one bar per series."""
    top = _nice_max(max((v for s in series for v in s.values), default=0.0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_width / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    body = [_y_axis(top, fmt)]
    bars = 0
    for i, label in enumerate(labels):
        x0 = LEFT + i * group + group * 0.1
        for j, one in enumerate(series):
            value = one.values[i] if i < len(one.values) else 0.0
            height = plot_height * value / top
            body.append(
                f'<rect class="bar" x="{x0 + j * bar:.1f}" y="{HEIGHT - BOTTOM - height:.1f}" width="{bar * 0.92:.1f}" '
                f'height="{height:.1f}" fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(one.name)}, '
                f"{escape(label)}: {format(value, fmt)}</title></rect>"
            )
            bars += 1
        body.append(
            f'<text x="{x0 + group * 0.4:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">'
            f"{escape(label[:18])}</text>"
        )
    body.append(_legend(series))
    description = "; ".join(
        f"{one.name}: " + ", ".join(f"{label} {format(v, fmt)}" for label, v in zip(labels, one.values))
        for one in series
    )
    return _frame(chart_id, "bar", title, description, "".join(body), bars)


def line_chart(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, fmt: str = ".4g"
) -> Markup:
    """Lines over evenly spaced labels (e.g. minutes or weeks). A NaN value is a gap: nothing
    was measured there, which is not the same as zero."""
    top = _nice_max(max((v for s in series for v in s.values if math.isfinite(v)), default=0.0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_width / max(1, len(labels) - 1)
    body = [_y_axis(top, fmt)]
    points = 0
    for j, one in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(one.values):
            if not math.isfinite(value):
                runs.append([])
                continue
            runs[-1].append((LEFT + i * step, HEIGHT - BOTTOM - plot_height * value / top))
        for run in runs:
            if len(run) == 1:  # a lone value between gaps: a dot, or it would not show
                body.append(
                    f'<circle class="point" cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="3" '
                    f'fill="{PALETTE[j % len(PALETTE)]}"/>'
                )
            elif run:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                body.append(
                    f'<polyline class="line" fill="none" stroke="{PALETTE[j % len(PALETTE)]}" points="{path}"/>'
                )
            points += len(run)
    shown = {0, len(labels) // 2, len(labels) - 1}
    for i in sorted(shown):
        if 0 <= i < len(labels):
            body.append(
                f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">'
                f"{escape(labels[i])}</text>"
            )
    body.append(_legend(series))
    totals = ", ".join(
        f"{one.name} total {format(sum(v for v in one.values if math.isfinite(v)), fmt)}" for one in series
    )
    description = f"{len(labels)} points from {labels[0] if labels else ''} to {labels[-1] if labels else ''}; {totals}"
    return _frame(chart_id, "line", title, description, "".join(body), points)


@dataclass(frozen=True, slots=True)
class Trip:
    at: datetime
    lines: int
    spend: float


def timeline(chart_id: str, title: str, trips: Sequence[Trip], predicted_next: datetime | None) -> Markup:
    """A shopper's trips over time (dot size = order lines) and the predicted next trip."""
    moments = [t.at for t in trips] + ([predicted_next] if predicted_next else [])
    if not moments:
        return _frame(chart_id, "timeline", title, "No trips recorded.", "", 0)
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 86_400.0)
    plot_width = WIDTH - LEFT - RIGHT
    most_spend = _nice_max(max((t.spend for t in trips), default=1.0))
    plot_height = HEIGHT - TOP - BOTTOM

    def x_of(moment: datetime) -> float:
        return LEFT + plot_width * (moment - start).total_seconds() / span

    body = [_y_axis(most_spend, ".4g")]
    for trip in trips:
        y = HEIGHT - BOTTOM - plot_height * trip.spend / most_spend
        radius = 3 + min(9.0, trip.lines**0.5 * 1.5)
        body.append(
            f'<circle class="trip" cx="{x_of(trip.at):.1f}" cy="{y:.1f}" r="{radius:.1f}">'
            f"<title>{trip.at:%Y-%m-%d}: {trip.lines} lines, {trip.spend:.2f} spent</title></circle>"
        )
    if predicted_next is not None:
        x = x_of(predicted_next)
        body.append(
            f'<line class="predicted" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
            f'<text x="{min(x, WIDTH - RIGHT - 4):.1f}" y="{TOP + 10}" text-anchor="end" class="tick">'
            f"next trip {predicted_next:%Y-%m-%d}</text>"
        )
    for moment, anchor in ((start, "start"), (end, "end")):
        body.append(
            f'<text x="{x_of(moment):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="{anchor}" class="tick">'
            f"{moment:%Y-%m-%d}</text>"
        )
    description = f"{len(trips)} trips from {start:%Y-%m-%d} to {max(t.at for t in trips):%Y-%m-%d}" if trips else ""
    if predicted_next is not None:
        description += f"; next trip predicted on {predicted_next:%Y-%m-%d}"
    return _frame(chart_id, "timeline", title, description, "".join(body), len(trips))


def _legend(series: Sequence[Series]) -> str:
    parts = []
    x = LEFT
    for j, one in enumerate(series):
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 5}" class="tick">{escape(one.name)}</text>'
        )
        x += 24 + 7 * len(one.name)
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Estimate:
    label: str
    value: float
    low: float
    high: float


def interval_chart(chart_id: str, title: str, estimates: Sequence[Estimate], *, fmt: str = ".4g") -> Markup:
    """One row per estimate: a dot at the value, a whisker over its interval. The axis starts
    at zero (or below, for differences) so arms are compared on the same scale."""
    if not estimates:
        return _frame(chart_id, "interval", title, "No estimates yet.", "", 0)
    lowest = min(0.0, *(e.low for e in estimates))
    top = _nice_max(max(max(e.high, e.value) for e in estimates))
    bottom = -_nice_max(-lowest) if lowest < 0 else 0.0
    span = top - bottom
    label_width = 110
    x0, x1 = LEFT + label_width - 40, WIDTH - RIGHT
    row = (HEIGHT - TOP - BOTTOM) / len(estimates)

    def x_of(value: float) -> float:
        return x0 + (x1 - x0) * (value - bottom) / span

    body = []
    for i in range(5):
        value = bottom + span * i / 4
        x = x_of(value)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" class="grid"/>'
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">{format(value, fmt)}</text>'
        )
    if bottom < 0:
        body.append(f'<line class="zero" x1="{x_of(0):.1f}" x2="{x_of(0):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
    for i, one in enumerate(estimates):
        y = TOP + row * (i + 0.5)
        colour = PALETTE[i % len(PALETTE)]
        body.append(
            f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(one.label[:16])}</text>'
            f'<line class="interval" x1="{x_of(one.low):.1f}" x2="{x_of(one.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}"/>'
            f'<circle class="estimate" cx="{x_of(one.value):.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(one.label)}: {format(one.value, fmt)} "
            f"(95% interval {format(one.low, fmt)} to {format(one.high, fmt)})</title></circle>"
        )
    description = "; ".join(
        f"{e.label} {format(e.value, fmt)} ({format(e.low, fmt)} to {format(e.high, fmt)})" for e in estimates
    )
    return _frame(chart_id, "interval", title, description, "".join(body), len(estimates))
