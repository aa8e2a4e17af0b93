"""A client's questionnaire scores over one episode, drawn server-side as SVG.

Severity bands are shaded behind the line, the caseness threshold is a dashed line, sessions are
ticks along the foot of the chart, discharge a vertical line, and follow-up scores (after
discharge) are drawn as diamonds rather than circles, so they read without colour. The geometry
is computed here; outcomes/_trajectory_chart.html only writes it out (no JavaScript, no inline
styles), and a data table carries the same numbers for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from relisten.clients.models import Episode
from relisten.lib.outcomes.instruments import ScoringRules, load_questionnaire
from relisten.outcomes.models import Instrument, Response, TimePoint

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 44, 20, 16, 56
LINE = "#0072B2"
# Light to darker greys-blue: bands differ in lightness, and each is labelled.
BAND_FILLS = ("#f3f6f9", "#e6edf3", "#d9e3ec", "#ccd9e5", "#bfcfde")
FOLLOW_UPS = {TimePoint.FOLLOW_UP_1, TimePoint.FOLLOW_UP_3, TimePoint.FOLLOW_UP_6,
              TimePoint.FOLLOW_UP_12}

@dataclass(frozen=True)
class Score:
    when: dt.date
    total: int
    band: str
    time_point: str


@dataclass(frozen=True)
class BandArea:
    y: float
    height: float
    label: str
    fill: str
    label_y: float


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    when: dt.date
    total: int
    band: str
    time_point: str
    follow_up: bool
    time_label: str
    label: str

    @property
    def diamond(self) -> str:
        s = 6.0
        return (f"M{self.x:.1f},{self.y - s:.1f}L{self.x + s:.1f},{self.y:.1f}"
                f"L{self.x:.1f},{self.y + s:.1f}L{self.x - s:.1f},{self.y:.1f}z")


@dataclass(frozen=True)
class Marker:
    x: float
    when: dt.date
    label: str


@dataclass(frozen=True)
class TrajectoryChart:
    key: str
    title: str
    description: str
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    max_score: int
    bands: tuple[BandArea, ...]
    caseness_y: float | None
    caseness: int | None
    points: tuple[ChartPoint, ...]
    sessions: tuple[Marker, ...]
    discharge: Marker | None
    y_ticks: tuple[tuple[float, int], ...]
    x_ticks: tuple[tuple[float, str], ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def plot_width(self) -> int:
        return self.plot_right - self.plot_left


def _scoring(instrument: Instrument) -> ScoringRules:
    return load_questionnaire(instrument.questionnaire, instrument.scoring or None).scoring


def _spaced(ticks: list[tuple[float, str]], gap: float = 72) -> tuple[tuple[float, str], ...]:
    """Date labels far enough apart not to overlap (about 9 characters at 12 px)."""
    kept: list[tuple[float, str]] = []
    for x, label in ticks:
        if not kept or x - kept[-1][0] >= gap:
            kept.append((x, label))
    return tuple(kept)


def _point(score: Score, x: float, y: float) -> ChartPoint:
    labels = dict(TimePoint.choices)
    time_label = str(labels.get(score.time_point, ""))
    band = f" ({score.band})" if score.band else ""
    return ChartPoint(x, y, score.when, score.total, score.band, score.time_point,
                      score.time_point in FOLLOW_UPS, time_label,
                      f"{score.when:%-d %b %Y}: {score.total}{band}, {time_label.lower()}")


def trajectory(
    key: str, name: str, *, max_score: int, bands: Sequence[tuple[int, int, str]],
    caseness: int | None, scores: Sequence[Score], sessions: Sequence[tuple[dt.date, int]],
    discharge: dt.date | None,
) -> TrajectoryChart:
    """Lay out `scores` (any order) on a date axis from 0 to `max_score`."""
    plot_left, plot_right, plot_top, plot_bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    days = [s.when for s in scores] + [d for d, _ in sessions] + ([discharge] if discharge else [])
    first = min(days).toordinal() if days else 0
    last = max(days).toordinal() if days else 0

    def x_of(when: dt.date) -> float:
        if last == first:
            return (plot_left + plot_right) / 2
        return plot_left + (when.toordinal() - first) / (last - first) * (plot_right - plot_left)

    def y_of(value: float) -> float:
        return plot_bottom - value / max_score * (plot_bottom - plot_top)

    areas = []
    for index, (low, high, label) in enumerate(bands):
        top, bottom = y_of(min(high + 0.5, max_score)), y_of(max(low - 0.5, 0))
        areas.append(BandArea(top, bottom - top, label, BAND_FILLS[index % len(BAND_FILLS)],
                              (top + bottom) / 2))
    points = tuple(_point(s, x_of(s.when), y_of(s.total))
                   for s in sorted(scores, key=lambda s: s.when))
    step = 5
    y_ticks = tuple((y_of(v), v) for v in range(0, max_score + 1, step))
    shown = sorted({s.when for s in scores})
    if len(shown) > 6:
        shown = [shown[round(i * (len(shown) - 1) / 5)] for i in range(6)]
    x_ticks = _spaced([(x_of(day), f"{day:%-d %b %y}") for day in shown])
    return TrajectoryChart(
        key=key, title=f"{name} scores over time",
        description=(f"{len(points)} score{'s' if len(points) != 1 else ''} from 0 to "
                     f"{max_score}; higher means more symptoms."
                     + (f" The dashed line at {caseness} marks caseness." if caseness else "")),
        width=WIDTH, height=HEIGHT, plot_left=plot_left, plot_right=plot_right,
        plot_top=plot_top, plot_bottom=plot_bottom, max_score=max_score, bands=tuple(areas),
        caseness_y=y_of(caseness) if caseness is not None else None, caseness=caseness,
        points=points,
        sessions=tuple(Marker(x_of(d), d, f"Session {n}") for d, n in sessions),
        discharge=Marker(x_of(discharge), discharge, "Discharge") if discharge else None,
        y_ticks=y_ticks, x_ticks=x_ticks,
    )


def trajectory_for_episode(
    episode: Episode, instrument: Instrument, *, for_client: bool = False
) -> TrajectoryChart:
    """One instrument's scores in one episode (two queries). `for_client`: the client's own
    view, which leaves out the sessions that have not happened yet."""
    found = Response.objects.filter(episode=episode, instrument=instrument).only(
        "answered_at", "total", "band", "time_point")
    local = timezone.localtime
    scores = [Score(local(r.answered_at).date(), r.total, r.band, r.time_point) for r in found]
    sessions = episode.sessions.all()
    if for_client:
        sessions = sessions.filter(scheduled_at__lte=timezone.now())
    session_days = [(local(s.scheduled_at).date(), s.number) for s in sessions.only(
        "scheduled_at", "number")]
    rules = _scoring(instrument)
    bands = [(band.low, band.high, band.label) for band in rules.bands]
    max_score = max(rules.total_max, *(s.total for s in scores), 1)
    return trajectory(
        f"trajectory-{instrument.code}", instrument.name, max_score=max_score, bands=bands,
        caseness=rules.caseness_at_least, scores=scores, sessions=session_days,
        discharge=episode.end_date,
    )


def trajectories_for_episode(episode: Episode) -> list[TrajectoryChart]:
    """A chart per instrument the client has answered in this episode."""
    instruments = Instrument.objects.filter(responses__episode=episode).distinct()
    return [trajectory_for_episode(episode, instrument) for instrument in instruments]
