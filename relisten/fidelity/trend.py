"""Fidelity over time: each finished rating's main score, session by session, for one episode
of care or for one therapist or trainee; charted (server-rendered SVG) and exported as CSV.

Only ratings the viewer may open one by one appear (access.ratings_for_user). Pages and files
show sessions by date and number, never a client's name; the CSV carries public ids so later
analyses can relate fidelity to the same clients' outcomes inside the clinic.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from relisten import access
from relisten.accounts.models import User
from relisten.audit.log import record_event_now, record_read
from relisten.clients.models import Episode
from relisten.fidelity.chart import LineChart, Observation, line_chart
from relisten.fidelity.models import RaterRole, Rating, RatingState, Scale
from relisten.lib.fidelity.scale import ScaleDef, ScaleError, scale_from_definition
from relisten.web import signed_in_user as _user

# A page or file lists at most this many ratings (the most recent); years of weekly sessions
# rated by two people stay well below it.
MAX_RATINGS = 2000

ROLE_WORDS = {
    RaterRole.SELF: "Self-rating",
    RaterRole.SUPERVISOR: "Supervisor",
    RaterRole.PEER: "Peer rater",
    RaterRole.REFERENCE: "Reference rating",
}
ROLE_ORDER = list(ROLE_WORDS)



def scale_definition(scale: Scale) -> ScaleDef | None:
    """The stored definition, or None if it no longer validates (shown without extras)."""
    try:
        return scale_from_definition(scale.definition)
    except (ScaleError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class TrendRow:
    rating_id: str
    session_id: str
    session_number: int
    session_date: dt.date
    episode_id: str
    therapist: str
    role: str
    role_words: str
    rater: str
    completed_at: dt.datetime | None
    total: float | None
    scores: dict[str, Any]


@dataclass(frozen=True)
class ScaleTrend:
    scale: Scale
    score_name: str
    rows: tuple[TrendRow, ...]
    chart: LineChart
    without_total: int  # finished ratings whose main score is not defined (not charted)
    guides: tuple[str, ...]  # thresholds drawn on the chart, in words


def trend_ratings(ratings: QuerySet[Rating]) -> list[Rating]:
    """Finished ratings, oldest session first, in one query (capped at MAX_RATINGS)."""
    newest = list(
        ratings.filter(state=RatingState.COMPLETE)
        .select_related("scale", "rater", "session__episode__therapist")
        .order_by("-session__scheduled_at", "-pk")[:MAX_RATINGS]
    )
    return newest[::-1]


def _row(rating: Rating) -> TrendRow:
    session = rating.session
    role = RaterRole(rating.role)
    values = rating.scores.get("values", {}) if isinstance(rating.scores, dict) else {}
    return TrendRow(
        rating_id=str(rating.public_id),
        session_id=str(session.public_id),
        session_number=session.number,
        session_date=timezone.localtime(session.scheduled_at).date(),
        episode_id=str(session.episode.public_id),
        therapist=session.episode.therapist.label(),
        role=role.value,
        role_words=ROLE_WORDS[role],
        rater=rating.rater.label(),
        completed_at=rating.completed_at,
        total=rating.total,
        scores=dict(values) if isinstance(values, dict) else {},
    )


def _scale_trend(scale: Scale, ratings: Sequence[Rating], key: str, subject: str) -> ScaleTrend:
    rows = tuple(_row(rating) for rating in ratings)
    definition = scale_definition(scale)
    score_name = (definition.score_name(definition.main_score) if definition is not None
                  else "Total")
    guides = [] if definition is None else [
        (threshold.value, threshold.describe(score_name))
        for threshold in definition.thresholds if threshold.score == definition.main_score
    ]
    series = []
    for role in ROLE_ORDER:
        observations = [
            Observation(row.session_date, row.total,
                        f"Session {row.session_number}, {row.session_date:%-d %b %Y}, "
                        f"{row.role_words.lower()} by {row.rater}: {row.total:g}")
            for row in rows if row.role == role.value and row.total is not None
        ]
        if observations:
            series.append((ROLE_WORDS[role], observations))
    totals = [row.total for row in rows if row.total is not None]
    described = (
        f"{score_name} of {len(totals)} finished rating{'s' if len(totals) != 1 else ''} "
        f"of {subject}, by session date; lines: "
        + ", ".join(name for name, _ in series) + "."
        if totals else f"No finished rating of {subject} has a {score_name.lower()} yet."
    )
    chart = line_chart(
        key, f"{scale.name} (version {scale.version}): {score_name} over time", described,
        series, guides=guides,
        y_floor=0.0 if totals and min(totals) >= 0 else None,
    )
    return ScaleTrend(scale, score_name, rows, chart,
                      sum(1 for row in rows if row.total is None),
                      tuple(label for _, label in guides))


def build_trends(ratings: Iterable[Rating], subject: str) -> list[ScaleTrend]:
    """One chart and table per scale version, in order of first use (totals of different
    scales or versions are not comparable, so they never share a line)."""
    by_scale: dict[int, list[Rating]] = {}
    scales: dict[int, Scale] = {}
    for rating in ratings:
        by_scale.setdefault(rating.scale_id, []).append(rating)
        scales[rating.scale_id] = rating.scale
    return [
        _scale_trend(scales[scale_id], group, f"trend-{index}", subject)
        for index, (scale_id, group) in enumerate(by_scale.items(), start=1)
    ]


# ---- CSV ---------------------------------------------------------------------------------

CSV_COLUMNS = [
    "session_date", "session_number", "session_id", "episode_id", "therapist", "scale",
    "scale_version", "scale_name", "rater_role", "rater", "completed_at", "rating_id", "total",
]


def _cell(value: object) -> object:
    """Text a spreadsheet would run as a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def trend_csv(trends: Sequence[ScaleTrend]) -> str:
    """One line per finished rating; every subscale and summary score in its own column."""
    score_ids = sorted({key for trend in trends for row in trend.rows for key in row.scores})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS + [f"score:{key}" for key in score_ids])
    for trend in trends:
        for row in trend.rows:
            completed = (timezone.localtime(row.completed_at).isoformat(timespec="seconds")
                         if row.completed_at else "")
            line: list[object] = [
                row.session_date.isoformat(), row.session_number, row.session_id,
                row.episode_id, row.therapist, trend.scale.slug, trend.scale.version,
                trend.scale.name, row.role, row.rater, completed, row.rating_id,
                "" if row.total is None else f"{row.total:g}",
            ]
            line += ["" if row.scores.get(key) is None else row.scores[key] for key in score_ids]
            writer.writerow([_cell(value) for value in line])
    return out.getvalue()


def _csv_response(body: str, filename: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/csv; charset=utf-8", headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
    })


def _capped(trends: Sequence[ScaleTrend]) -> bool:
    return sum(len(trend.rows) for trend in trends) >= MAX_RATINGS


def _short(public_id: object) -> str:
    return str(public_id).split("-")[0]


# ---- views -------------------------------------------------------------------------------

def _episode_trends(user: User, episode: Episode) -> list[ScaleTrend]:
    ratings = access.ratings_for_user(user).filter(session__episode=episode)
    return build_trends(trend_ratings(ratings), "this episode's sessions")


@login_required
@require_GET
def episode_trend(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id)
    client = episode.client
    record_read(actor=user, client=client, target=episode,
                role=access.relationship_to(user, client))
    trends = _episode_trends(user, episode)
    return render(request, "fidelity/trend.html", {
        "trends": trends, "episode": episode, "client": client,
        "heading": "Fidelity over time: this episode of care",
        "csv_url_name": "fidelity:episode_trend_csv", "csv_id": episode.public_id,
        "max_ratings": MAX_RATINGS, "capped": _capped(trends),
    })


@login_required
@require_GET
def episode_trend_csv(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id)
    client = episode.client
    trends = _episode_trends(user, episode)
    record_event_now(
        actor=user, event_type="fidelity.exported", target=episode, client=client,
        clinic=client.clinic, actor_role=access.relationship_to(user, client),
        changes={"scope": "episode", "ratings": sum(len(t.rows) for t in trends)},
    )
    day = timezone.localdate().isoformat()
    name = f"fidelity-episode-{_short(episode.public_id)}-{day}.csv"  # never the client's name
    return _csv_response(trend_csv(trends), name)


def _person_trends(user: User, person: User) -> list[ScaleTrend]:
    ratings = access.ratings_for_user(user).filter(session__episode__therapist=person)
    return build_trends(trend_ratings(ratings), f"sessions treated by {person.label()}")


@login_required
@require_GET
def person_trend(request: HttpRequest, user_id: str) -> HttpResponse:
    user = _user(request)
    person = access.get_trend_person_for_user(user, user_id)
    trends = _person_trends(user, person)
    # Scores of many clients' sessions, by date and number only: one row on the trail, about
    # the therapist whose work it shows.
    record_event_now(actor=user, event_type="fidelity.trend_viewed", target=person,
                     changes={"scope": "therapist"})
    own = person.pk == user.pk
    return render(request, "fidelity/trend.html", {
        "trends": trends, "person": person,
        "heading": ("Your fidelity over time" if own
                    else f"Fidelity over time: {person.label()}"),
        "csv_url_name": "fidelity:person_trend_csv", "csv_id": person.public_id,
        "max_ratings": MAX_RATINGS, "capped": _capped(trends), "show_sessions": True,
    })


@login_required
@require_GET
def person_trend_csv(request: HttpRequest, user_id: str) -> HttpResponse:
    user = _user(request)
    person = access.get_trend_person_for_user(user, user_id)
    trends = _person_trends(user, person)
    record_event_now(actor=user, event_type="fidelity.exported", target=person,
                     changes={"scope": "therapist",
                              "ratings": sum(len(t.rows) for t in trends)})
    day = timezone.localdate().isoformat()
    return _csv_response(trend_csv(trends),
                         f"fidelity-therapist-{_short(person.public_id)}-{day}.csv")


@login_required
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    """Where the fidelity reports start: one's own and one's supervisees' trends, and the
    calibration reports of clinics one supervises or administers."""
    user = _user(request)
    people = list(access.trend_people_for_user(user).order_by("display_name", "username"))
    return render(request, "fidelity/reports.html", {
        "me": next((p for p in people if p.pk == user.pk), None),
        "supervisees": [p for p in people if p.pk != user.pk],
        "clinics": list(access.calibration_clinics(user).order_by("name")),
    })
