"""Fidelity over time: the chart's points are the stored totals, the CSV holds the same rows
(and names no client), downloads are audited, and each page shows only what its viewer may see."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.core.personas import Cast
from relisten.fidelity.chart import Observation, line_chart
from relisten.fidelity.models import RaterRole, RatingState, Scale
from relisten.supervision.actions import end_assignment
from relisten.supervision.models import SupervisionAssignment
from tests.test_calibration import make_rating, make_scale, make_session

SignedIn = Callable[[User], HttpClient]

# (days ago, self-rating answers, supervisor answers or None)
PLAN = [
    (40, {"agenda": 2, "warmth": 3, "homework": 0, "questions": 5}, None),
    (30, {"agenda": 3, "warmth": 4, "homework": 1, "questions": 4},
     {"agenda": 2, "warmth": 3, "homework": 1, "questions": 4}),
    (20, {"agenda": 5, "warmth": 4, "homework": 1, "questions": 3},
     {"agenda": 4, "warmth": 5, "homework": 1, "questions": 3}),
]


@pytest.fixture
def rated_episode(cast: Cast) -> Scale:
    """Three of Cora's sessions self-rated by Tess, two also rated by her supervisor Sam."""
    scale = make_scale(cast.clinic)
    episode = cast.client_a.episodes.get()
    for days, own, theirs in PLAN:
        session = make_session(episode, timezone.now() - dt.timedelta(days=days))
        make_rating(session, scale, cast.therapist_a, RaterRole.SELF, own)
        if theirs is not None:
            make_rating(session, scale, cast.supervisor, RaterRole.SUPERVISOR, theirs)
    # A draft never appears.
    draft_session = make_session(episode, timezone.now() - dt.timedelta(days=10))
    make_rating(draft_session, scale, cast.therapist_a, RaterRole.SELF,
                {"agenda": 6, "warmth": 6}, state=RatingState.DRAFT)
    return scale


def chart_points(html: str) -> dict[str, list[float]]:
    """Series name → the data-value of each point drawn in it, left to right."""
    found: dict[str, list[float]] = {}
    for name, body in re.findall(r'<g class="chart-series" data-series="([^"]+)">(.*?)</g>',
                                 html, re.S):
        found[name] = [float(v) for v in re.findall(r'data-point data-value="([^"]+)"', body)]
    return found


def episode_url(cast: Cast, name: str = "fidelity:episode_trend") -> str:
    return reverse(name, args=[cast.client_a.episodes.get().public_id])


# ---- the chart -----------------------------------------------------------------------------

def test_episode_chart_points_are_the_stored_totals(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    response = signed_in(cast.therapist_a).get(episode_url(cast))
    assert response.status_code == 200
    html = response.content.decode()
    own_totals = [float(own["agenda"] + own["warmth"]) for _, own, _ in PLAN]
    their_totals = [float(t["agenda"] + t["warmth"]) for _, _, t in PLAN if t is not None]
    assert chart_points(html) == {"Self-rating": own_totals, "Supervisor": their_totals}
    # Accessible: the SVG names itself and is described; the table carries the same numbers.
    assert re.search(r'<svg class="line-chart"[^>]*role="img"[^>]*aria-labelledby="trend-1-title '
                     r'trend-1-desc"', html)
    assert '<title id="trend-1-title">Calibration test scale (version 1): Total over time' in html
    assert "5 finished ratings" in html
    table = [float(v) for v in re.findall(r'<tr data-total="([^"]+)">', html)]
    assert sorted(table) == sorted(own_totals + their_totals)
    assert "Competent: Total ≥ 8" in html  # the threshold drawn as a guide line


def test_chart_geometry_orders_points_by_date_and_value() -> None:
    day = dt.date(2025, 1, 1)
    chart = line_chart("c", "Title", "Desc", [
        ("Self", [Observation(day + dt.timedelta(days=14), 12, "b"),
                  Observation(day, 4, "a")]),
        ("Supervisor", [Observation(day + dt.timedelta(days=7), 8, "c")]),
    ], guides=[(10, "Competent")], y_floor=0)
    self_points = chart.series[0].points
    assert [p.value for p in self_points] == [4, 12]  # sorted by date
    assert self_points[0].x == chart.plot_left and self_points[1].x == chart.plot_right
    assert self_points[0].y > chart.guides[0].y > self_points[1].y  # higher score, higher up
    assert chart.y_ticks[0].label == "0" and float(chart.y_ticks[-1].label) >= 12
    assert chart.series[0].dash != chart.series[1].dash  # told apart without colour


def test_a_single_rating_is_centred_and_an_empty_chart_is_empty() -> None:
    only = line_chart("c", "T", "D", [("Self", [Observation(dt.date(2025, 5, 1), 7, "x")])])
    assert only.points[0].x == (only.plot_left + only.plot_right) / 2
    assert line_chart("c", "T", "D", []).points == []


def test_episode_page_links_to_the_trend(cast: Cast, signed_in: SignedIn) -> None:
    url = reverse("clients:episode", args=[cast.client_a.episodes.get().public_id])
    assert episode_url(cast) in signed_in(cast.therapist_a).get(url).content.decode()


def test_viewing_the_episode_trend_is_in_the_clients_access_log(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    signed_in(cast.supervisor).get(episode_url(cast))
    assert AuditEvent.objects.filter(
        event_type="record.viewed", actor_id=cast.supervisor.public_id,
        client_id=cast.client_a.public_id, target_type="episode",
    ).exists()


def test_without_ratings_the_page_says_what_to_do(cast: Cast, signed_in: SignedIn) -> None:
    html = signed_in(cast.therapist_a).get(episode_url(cast)).content.decode()
    assert "No finished ratings to show yet" in html and "<svg class" not in html


# ---- CSV -----------------------------------------------------------------------------------

def test_episode_csv_holds_the_rows_names_no_client_and_is_audited(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    response = signed_in(cast.therapist_a).get(episode_url(cast, "fidelity:episode_trend_csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    disposition = response["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="fidelity-episode-[0-9a-f]{8}-\d{4}-\d\d-\d\d\.csv"',
                        disposition)
    body = response.content.decode()
    for name in ("Cora", "Client"):
        assert name not in disposition and name not in body
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 5
    assert {(r["rater_role"], float(r["total"])) for r in rows} == {
        ("self", 5.0), ("self", 7.0), ("self", 9.0), ("supervisor", 5.0), ("supervisor", 9.0)}
    assert {r["scale"] for r in rows} == {"calibration-test"}
    assert all(r["episode_id"] == str(cast.client_a.episodes.get().public_id) for r in rows)
    assert "score:total" in rows[0]
    event = AuditEvent.objects.get(event_type="fidelity.exported")
    assert event.client_id == cast.client_a.public_id
    assert event.actor_id == cast.therapist_a.public_id
    assert event.changes == {"scope": "episode", "ratings": 5}


def test_csv_cells_cannot_become_spreadsheet_formulas(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    cast.therapist_a.display_name = "=HYPERLINK(1)"
    cast.therapist_a.save(update_fields=["display_name"])
    body = signed_in(cast.therapist_a).get(
        episode_url(cast, "fidelity:episode_trend_csv")).content.decode()
    assert "'=HYPERLINK(1)" in body and ",=HYPERLINK" not in body


# ---- the person's page ----------------------------------------------------------------------

def person_url(user: User, name: str = "fidelity:person_trend") -> str:
    return reverse(name, args=[user.public_id])


def test_therapist_sees_their_own_trend_across_clients(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    # Ben's own rating of Colin's session is not Tess's and must not appear on her page.
    colin_session = cast.client_b.episodes.get().sessions.get(number=1)
    make_rating(colin_session, rated_episode, cast.therapist_b, RaterRole.SELF,
                {"agenda": 1, "warmth": 1, "homework": 0, "questions": 1})
    response = signed_in(cast.therapist_a).get(person_url(cast.therapist_a))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Your fidelity over time" in html
    assert chart_points(html)["Self-rating"] == [5.0, 7.0, 9.0]
    assert "Cora" not in html and "Colin" not in html
    assert AuditEvent.objects.filter(event_type="fidelity.trend_viewed",
                                     actor_id=cast.therapist_a.public_id).exists()


def test_supervisor_sees_an_assigned_therapists_trend_until_the_assignment_ends(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn,
) -> None:
    http = signed_in(cast.supervisor)
    response = http.get(person_url(cast.therapist_a))
    assert response.status_code == 200
    assert chart_points(response.content.decode())["Supervisor"] == [5.0, 9.0]
    csv_response = http.get(person_url(cast.therapist_a, "fidelity:person_trend_csv"))
    assert csv_response.status_code == 200
    assert "fidelity-therapist-" in csv_response["Content-Disposition"]
    assert len(list(csv.DictReader(io.StringIO(csv_response.content.decode())))) == 5
    assignment = SupervisionAssignment.objects.get(supervisor=cast.supervisor,
                                                   supervisee=cast.therapist_a)
    end_assignment(actor=cast.admin, assignment=assignment)
    assert http.get(person_url(cast.therapist_a)).status_code == 404
    assert http.get(episode_url(cast)).status_code == 404


@pytest.mark.parametrize("persona", ["therapist_b", "trainee", "admin", "researcher",
                                     "client_user_a", "other_clinic_therapist"])
def test_others_get_not_found(
    cast: Cast, rated_episode: Scale, signed_in: SignedIn, persona: str,
) -> None:
    http = signed_in(getattr(cast, persona))
    for url in (person_url(cast.therapist_a), person_url(cast.therapist_a,
                                                         "fidelity:person_trend_csv"),
                episode_url(cast), episode_url(cast, "fidelity:episode_trend_csv")):
        assert http.get(url).status_code == 404, url
    assert not AuditEvent.objects.filter(event_type="fidelity.exported").exists()


def test_reports_page_lists_what_each_person_may_open(cast: Cast, signed_in: SignedIn) -> None:
    supervisor_page = signed_in(cast.supervisor).get(reverse("fidelity:reports")).content.decode()
    assert person_url(cast.therapist_a) in supervisor_page
    assert person_url(cast.trainee) in supervisor_page
    assert reverse("fidelity:calibration_index", args=[cast.clinic.public_id]) in supervisor_page
    therapist_page = signed_in(cast.therapist_b).get(reverse("fidelity:reports")).content.decode()
    assert person_url(cast.therapist_b) in therapist_page
    assert person_url(cast.therapist_a) not in therapist_page
    assert "calibration/" not in therapist_page
