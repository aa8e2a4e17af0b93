"""A server-rendered SVG line chart: scores over time, one line per series.

The geometry is computed here and the template (fidelity/_line_chart.html) only writes it out,
so the chart works without JavaScript and the page's CSP needs nothing inline. Series differ in
dash pattern and marker shape as well as colour, so they can be told apart without colour.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 640
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 52, 44, 16, 44  # margins around the plot, in SVG units

# (colour, dash pattern, marker) per series in order; colours from the Okabe–Ito palette.
STYLES: tuple[tuple[str, str, str], ...] = (
    ("#0072B2", "", "circle"),
    ("#D55E00", "6 4", "square"),
    ("#009E73", "2 3", "diamond"),
    ("#CC79A7", "8 3 2 3", "triangle"),
    ("#56B4E9", "4 2", "circle"),
    ("#E69F00", "1 2", "square"),
)


@dataclass(frozen=True)
class Observation:
    when: dt.date
    value: float
    label: str  # what a screen reader and the tooltip say about this point


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    when: dt.date
    value: float
    label: str
    marker_path: str  # for square/diamond/triangle markers


@dataclass(frozen=True)
class SeriesLine:
    name: str
    colour: str
    dash: str
    marker: str
    points: tuple[Point, ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Guide:
    """A horizontal reference line such as a competence threshold."""

    y: float
    label: str


@dataclass(frozen=True)
class LineChart:
    key: str  # unique on the page: ids for the SVG's <title> and <desc>
    title: str
    description: str
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    series: tuple[SeriesLine, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    guides: tuple[Guide, ...]

    @property
    def points(self) -> list[Point]:
        return [point for line in self.series for point in line.points]


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A 1, 2 or 5 × 10ⁿ step giving about `target_ticks` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * magnitude:
            return float(multiple * magnitude)
    return float(10 * magnitude)


def _y_range(values: Sequence[float], floor: float | None) -> tuple[float, float, float]:
    low = min(values) if floor is None else min(floor, *values)
    high = max(values)
    if high == low:
        low, high = low - 1, high + 1
    step = nice_step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _marker(kind: str, x: float, y: float, size: float = 4.5) -> str:
    if kind == "square":
        return (f"M{x - size:.1f},{y - size:.1f}h{2 * size:.1f}v{2 * size:.1f}"
                f"h{-2 * size:.1f}z")
    if kind == "diamond":
        return (f"M{x:.1f},{y - size - 1:.1f}L{x + size + 1:.1f},{y:.1f}L{x:.1f},"
                f"{y + size + 1:.1f}L{x - size - 1:.1f},{y:.1f}z")
    if kind == "triangle":
        return (f"M{x:.1f},{y - size - 1:.1f}L{x + size + 1:.1f},{y + size:.1f}"
                f"L{x - size - 1:.1f},{y + size:.1f}z")
    return ""  # circles are drawn as <circle>


def _format_number(value: float) -> str:
    return f"{value:g}"


def line_chart(
    key: str,
    title: str,
    description: str,
    series: Sequence[tuple[str, Sequence[Observation]]],
    *,
    guides: Sequence[tuple[float, str]] = (),
    y_floor: float | None = None,
) -> LineChart:
    """Lay out `series` (name, observations in any order) on a date axis.

    `guides` are horizontal lines (value, label), e.g. a competence threshold, kept in range;
    `y_floor` keeps the axis from starting above it (e.g. 0 for totals).
    """
    observations = [o for _, obs in series for o in obs]
    plot_left, plot_right = LEFT, WIDTH - RIGHT
    plot_top, plot_bottom = TOP, HEIGHT - BOTTOM
    if not observations:
        return LineChart(key, title, description, WIDTH, HEIGHT, plot_left, plot_right, plot_top,
                         plot_bottom, (), (), (), ())
    values = [o.value for o in observations] + [value for value, _ in guides]
    y_low, y_high, step = _y_range(values, y_floor)
    first = min(o.when for o in observations).toordinal()
    last = max(o.when for o in observations).toordinal()

    def x_of(when: dt.date) -> float:
        if last == first:
            return (plot_left + plot_right) / 2
        return plot_left + (when.toordinal() - first) / (last - first) * (plot_right - plot_left)

    def y_of(value: float) -> float:
        return plot_bottom - (value - y_low) / (y_high - y_low) * (plot_bottom - plot_top)

    lines = []
    for index, (name, obs) in enumerate(series):
        colour, dash, marker = STYLES[index % len(STYLES)]
        points = tuple(
            Point(x_of(o.when), y_of(o.value), o.when, o.value, o.label,
                  _marker(marker, x_of(o.when), y_of(o.value)))
            for o in sorted(obs, key=lambda o: o.when)
        )
        lines.append(SeriesLine(name, colour, dash, marker, points))
    count = round((y_high - y_low) / step)
    y_ticks = tuple(Tick(y_of(y_low + i * step), _format_number(round(y_low + i * step, 6)))
                    for i in range(count + 1))
    dates = sorted({o.when for o in observations})
    shown = dates if len(dates) <= 6 else [dates[round(i * (len(dates) - 1) / 5)]
                                           for i in range(6)]
    x_ticks = tuple(Tick(x_of(day), day.strftime("%-d %b %Y")) for day in shown)
    return LineChart(
        key, title, description, WIDTH, HEIGHT, plot_left, plot_right, plot_top, plot_bottom,
        tuple(lines), y_ticks, x_ticks,
        tuple(Guide(y_of(value), label) for value, label in guides),
    )
