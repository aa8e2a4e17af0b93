"""Calibration reports: agreement computed from stored ratings, who may see them, and that they
read the ratings in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from relisten.accounts.actions import create_user
from relisten.accounts.models import Clinic, Role, User
from relisten.audit.models import AuditEvent
from relisten.clients.models import Episode, TherapySession
from relisten.core.personas import Cast
from relisten.fidelity.calibration import (
    compare_with_reference,
    default_raters,
    drift,
    item_row,
    load_rated_sessions,
    multi_rated,
)
from relisten.fidelity.models import RaterRole, Rating, RatingState, Scale
from relisten.lib.fidelity.scale import load_scale, scale_from_definition, score, to_definition
from relisten.lib.stats import cohen_kappa, icc, quadratic_weighted_kappa
from relisten.recordings.models import Kind, Recording, State
from tests.test_agreement import SHROUT_FLEISS

SignedIn = Callable[[User], HttpClient]

SCALE_YAML = """
schema: relisten-scale/1
slug: calibration-test
name: Calibration test scale
citation: Made up for the tests.
licence: CC0
main_score: total
items:
  - id: agenda
    text: Sets an agenda
    kind: likert
    range: [0, 6]
    subscale: total
  - id: warmth
    text: Shows warmth
    kind: likert
    range: [0, 6]
    subscale: total
  - id: homework
    text: Sets homework
    kind: yes_no
  - id: questions
    text: Questions asked
    kind: count
subscales:
  - id: total
    name: Total
    method: sum
thresholds:
  - score: total
    op: ">="
    value: 8
    label: Competent
"""


def make_scale(clinic: Clinic | None, slug: str = "calibration-test") -> Scale:
    definition = to_definition(load_scale(SCALE_YAML.replace("calibration-test", slug), "yaml"))
    return Scale.objects.create(
        clinic=clinic, slug=slug, version=1, name="Calibration test scale",
        definition=definition, source_sha256=hashlib.sha256(SCALE_YAML.encode()).hexdigest())


def make_session(episode: Episode, when: dt.datetime) -> TherapySession:
    number = (episode.sessions.order_by("-number").values_list("number", flat=True).first()
              or 0) + 1
    return TherapySession.objects.create(episode=episode, number=number, scheduled_at=when)


def ready_recording(session: TherapySession) -> Recording:
    """A READY recording row (no media needed: ratings only point at it)."""
    found = session.recordings.filter(state=State.READY).first()
    if found is not None:
        return found
    return Recording.objects.create(session=session, kind=Kind.AUDIO, state=State.READY,
                                    created_by=session.episode.therapist)


def make_rating(
    session: TherapySession, scale: Scale, rater: User, role: str, answers: Mapping[str, float],
    *, total: float | None = None, completed_at: dt.datetime | None = None,
    state: str = RatingState.COMPLETE,
) -> Rating:
    """A rating as RATING's completion leaves it: answers, scores and total stored."""
    scores = score(scale_from_definition(scale.definition), answers)
    return Rating.objects.create(
        session=session, recording=ready_recording(session), scale=scale, rater=rater,
        role=role, state=state, answers=dict(answers), scores=scores.to_json(),
        total=scores.main if total is None else total,
        completed_at=(completed_at or timezone.now()) if state == RatingState.COMPLETE else None,
    )


def extra_user(cast: Cast, username: str, name: str, role: str = Role.SUPERVISOR) -> User:
    return create_user(actor=None, clinic=cast.clinic, username=username, password=None,
                       display_name=name, roles=[role])


def answers_for(total: float) -> dict[str, float]:
    """Answers whose items are incidental here (totals are set directly)."""
    return {"agenda": 3, "warmth": 3, "homework": 1, "questions": 4}


@pytest.fixture
def four_raters(cast: Cast) -> list[User]:
    return [cast.supervisor, cast.trainee, extra_user(cast, "pat.peer", "Pat Peer"),
            extra_user(cast, "rosa.ref", "Rosa Reference")]


@pytest.fixture
def shrout_fleiss(cast: Cast, four_raters: list[User]) -> tuple[Scale, list[TherapySession]]:
    """Shrout & Fleiss's Table 2 as six sessions (Cora's and Colin's) rated by four people."""
    scale = make_scale(cast.clinic)
    sessions = []
    start = timezone.now() - dt.timedelta(days=60)
    for index, totals in enumerate(SHROUT_FLEISS):
        episode = (cast.client_a if index % 2 == 0 else cast.client_b).episodes.get()
        session = make_session(episode, start + dt.timedelta(days=7 * index))
        sessions.append(session)
        for rater, total in zip(four_raters, totals, strict=True):
            make_rating(session, scale, rater, RaterRole.PEER, answers_for(total), total=total)
    return scale, sessions


def report_url(clinic: Clinic, scale: Scale, raters: Sequence[User] = (), **extra: str) -> str:
    query = "&".join([f"rater={u.public_id}" for u in raters]
                     + [f"{key}={value}" for key, value in extra.items()])
    base = reverse("fidelity:calibration", args=[clinic.public_id, scale.public_id])
    return f"{base}?{query}" if query else base


def icc_cells(html: str) -> dict[str, str]:
    return dict(re.findall(
        r'<tr data-form="([^"]+)"><th scope="row">[^<]+</th><td>[^<]*</td>'
        r'<td class="num">([^<]+)</td>', html))


# ---- the report, computed from stored ratings --------------------------------------------

def test_report_shows_the_six_shrout_fleiss_forms(
    cast: Cast, four_raters: list[User], shrout_fleiss: tuple[Scale, list[TherapySession]],
    signed_in: SignedIn,
) -> None:
    scale, _ = shrout_fleiss
    response = signed_in(cast.supervisor).get(report_url(cast.clinic, scale, four_raters))
    assert response.status_code == 200
    html = response.content.decode()
    assert icc_cells(html) == {"ICC(1,1)": "0.17", "ICC(2,1)": "0.29", "ICC(3,1)": "0.71",
                               "ICC(1,4)": "0.44", "ICC(2,4)": "0.62", "ICC(3,4)": "0.91"}
    assert "on 6 sessions every one of them rated" in html
    assert "Koo &amp; Li (2016)" in html and "treat these numbers as rough" in html


def test_report_leaves_out_sessions_not_every_chosen_rater_rated(
    cast: Cast, four_raters: list[User], shrout_fleiss: tuple[Scale, list[TherapySession]],
    signed_in: SignedIn,
) -> None:
    scale, _ = shrout_fleiss
    extra = make_session(cast.client_a.episodes.get(), timezone.now())
    for rater in four_raters[:2]:
        make_rating(extra, scale, rater, RaterRole.PEER, answers_for(5), total=5)
    html = signed_in(cast.admin).get(report_url(cast.clinic, scale, four_raters)).content.decode()
    assert "1 session rated by only some of them is left out" in html
    assert icc_cells(html)["ICC(2,1)"] == "0.29"  # unchanged by the incomplete session


def test_default_comparison_is_the_pair_with_most_sessions_in_common(
    cast: Cast, four_raters: list[User],
) -> None:
    scale = make_scale(cast.clinic)
    episode = cast.client_a.episodes.get()
    a, b, c, _ = four_raters
    for day in range(3):
        session = make_session(episode, timezone.now() - dt.timedelta(days=day + 1))
        for rater in (a, b) if day else (a, b, c):
            make_rating(session, scale, rater, RaterRole.PEER, answers_for(3))
    sessions = multi_rated(load_rated_sessions(cast.clinic, scale)[0])
    assert default_raters(sessions) == sorted([a.pk, b.pk])


def test_item_agreement_matches_the_statistics_on_the_same_answers(
    cast: Cast, four_raters: list[User],
) -> None:
    scale = make_scale(cast.clinic)
    definition = scale_from_definition(scale.definition)
    episode = cast.client_a.episodes.get()
    first, second = four_raters[0], four_raters[1]
    agenda = [(0, 0), (2, 3), (4, 4), (6, 5), (3, 1), (5, 5)]
    homework = [(1, 1), (0, 0), (1, 0), (1, 1), (0, 0), (1, 1)]
    for index, ((a1, a2), (h1, h2)) in enumerate(zip(agenda, homework, strict=True)):
        session = make_session(episode, timezone.now() - dt.timedelta(days=10 - index))
        make_rating(session, scale, first, RaterRole.SUPERVISOR,
                    {"agenda": a1, "warmth": 3, "homework": h1, "questions": index})
        make_rating(session, scale, second, RaterRole.SELF,
                    {"agenda": a2, "warmth": 3, "homework": h2, "questions": index + 1})
    sessions = multi_rated(load_rated_sessions(cast.clinic, scale)[0])
    raters = [first.pk, second.pk]

    row = item_row(definition.item("agenda"), sessions, raters)  # type: ignore[arg-type]
    a, b = [x for x, _ in agenda], [y for _, y in agenda]
    assert row.n == 6
    assert row.kappa == pytest.approx(cohen_kappa(a, b, categories=range(7)).value)
    assert row.weighted_kappa == pytest.approx(quadratic_weighted_kappa(a, b, 0, 6).value)
    assert row.exact == pytest.approx(3 / 6) and row.within_one == pytest.approx(5 / 6)

    yes_no = item_row(definition.item("homework"), sessions, raters)  # type: ignore[arg-type]
    assert yes_no.kappa == pytest.approx(cohen_kappa([h for h, _ in homework],
                                                     [h for _, h in homework]).value)
    assert yes_no.within_one is None  # "within one" means nothing for yes/no

    counts = item_row(definition.item("questions"), sessions, raters)  # type: ignore[arg-type]
    assert counts.kappa is None and counts.weighted_kappa is None
    assert counts.icc == pytest.approx(icc([[i, i + 1] for i in range(6)]).value("ICC(2,1)"))
    assert counts.exact == 0 and counts.within_one == 1

    # Constant "warmth" (both always 3): kappa is not defined, and the report says why.
    constant = item_row(definition.item("warmth"), sessions, raters)  # type: ignore[arg-type]
    assert constant.kappa is None and constant.exact == 1
    assert "same category" in constant.note


def test_page_lists_items_with_plain_readings_and_no_client_names(
    cast: Cast, shrout_fleiss: tuple[Scale, list[TherapySession]], signed_in: SignedIn,
) -> None:
    scale, _ = shrout_fleiss
    html = signed_in(cast.supervisor).get(report_url(cast.clinic, scale)).content.decode()
    assert 'data-item="agenda"' in html and 'data-item="questions"' in html
    assert "Cicchetti (1994)" in html
    assert "Tess Morgan" in html and "Ben Okafor" in html  # therapists are named …
    for name in ("Cora", "Colin", "Bright"):  # … clients never
        assert name not in html
    assert ", session 3</th>" in html  # sessions by date and number


def test_drift_groups_sessions_by_the_month_the_last_rating_was_finished(
    cast: Cast, four_raters: list[User],
) -> None:
    scale = make_scale(cast.clinic)
    episode = cast.client_a.episodes.get()
    first, second = four_raters[:2]
    january = timezone.make_aware(dt.datetime(2025, 1, 15, 12))
    march = timezone.make_aware(dt.datetime(2025, 3, 10, 12))
    # January: far apart; March: identical.
    for index, (x, y, when) in enumerate([(2, 6, january), (5, 1, january), (6, 0, january),
                                          (1, 1, march), (4, 4, march), (6, 6, march)]):
        session = make_session(episode, when - dt.timedelta(days=1))
        make_rating(session, scale, first, RaterRole.PEER,
                    {"agenda": x, "warmth": x, "homework": 1, "questions": 2},
                    completed_at=when)
        make_rating(session, scale, second, RaterRole.PEER,
                    {"agenda": y, "warmth": y, "homework": 1, "questions": 2},
                    completed_at=when + dt.timedelta(hours=index))
    sessions = multi_rated(load_rated_sessions(cast.clinic, scale)[0])
    definition = scale_from_definition(scale.definition)
    months = drift(definition, sessions, [first.pk, second.pk], "month")
    assert [p.key for p in months] == ["2025-01", "2025-03"]
    assert [p.sessions for p in months] == [3, 3]
    assert months[1].icc == pytest.approx(1.0) and months[1].mean_total_difference == 0
    assert months[0].icc is not None and months[0].icc < 0
    assert months[0].exact == pytest.approx(0.5)  # homework and questions agree, 2 of 4 items
    quarters = drift(definition, sessions, [first.pk, second.pk], "quarter")
    assert [(p.key, p.sessions) for p in quarters] == [("2025-Q1", 6)]


def test_reference_comparison_shows_a_trainee_coming_closer(
    cast: Cast, four_raters: list[User], signed_in: SignedIn,
) -> None:
    scale = make_scale(cast.clinic)
    episode = cast.client_a.episodes.get()
    reference, trainee = four_raters[3], cast.trainee
    january = timezone.make_aware(dt.datetime(2025, 1, 20, 12))
    february = timezone.make_aware(dt.datetime(2025, 2, 20, 12))
    plan = [(4, 1, january), (5, 2, january), (3, 3, february), (6, 6, february)]
    for ref_value, trainee_value, when in plan:
        session = make_session(episode, when - dt.timedelta(days=2))
        make_rating(session, scale, reference, RaterRole.REFERENCE,
                    {"agenda": ref_value, "warmth": 2, "homework": 1, "questions": 3},
                    completed_at=when - dt.timedelta(days=1))
        make_rating(session, scale, trainee, RaterRole.PEER,
                    {"agenda": trainee_value, "warmth": 2, "homework": 1, "questions": 3},
                    completed_at=when)
    sessions = load_rated_sessions(cast.clinic, scale)[0]
    definition = scale_from_definition(scale.definition)
    (comparison,) = compare_with_reference(definition, sessions, "month")
    assert comparison.rater == trainee and comparison.sessions == 4
    january_row, february_row = comparison.periods
    assert (january_row.key, february_row.key) == ("2025-01", "2025-02")
    assert january_row.exact == pytest.approx(3 / 4)  # agenda differs, the rest agree
    assert january_row.mean_total_difference == pytest.approx(3.0)
    assert february_row.exact == pytest.approx(1.0)
    assert february_row.mean_total_difference == pytest.approx(0.0)
    url = reverse("fidelity:calibration_reference", args=[cast.clinic.public_id,
                                                          scale.public_id])
    html = signed_in(cast.supervisor).get(url + "?by=month").content.decode()
    assert "Tara Lind" in html and 'data-period="2025-02"' in html
    assert "4 sessions with a reference rating" in html
    assert "Cora" not in html


# ---- degenerate data: plain words, no crash ----------------------------------------------

def test_report_with_nothing_to_compare_says_so(cast: Cast, signed_in: SignedIn) -> None:
    scale = make_scale(cast.clinic)
    session = cast.client_a.episodes.get().sessions.get(number=1)
    make_rating(session, scale, cast.supervisor, RaterRole.SUPERVISOR, answers_for(3))
    html = signed_in(cast.supervisor).get(report_url(cast.clinic, scale)).content.decode()
    assert "No session has been rated by two or more people" in html


def test_report_with_one_shared_session_explains_why_icc_is_not_defined(
    cast: Cast, signed_in: SignedIn,
) -> None:
    scale = make_scale(cast.clinic)
    session = cast.client_a.episodes.get().sessions.get(number=1)
    make_rating(session, scale, cast.supervisor, RaterRole.SUPERVISOR, answers_for(3))
    make_rating(session, scale, cast.therapist_a, RaterRole.SELF, answers_for(3))
    html = signed_in(cast.supervisor).get(report_url(cast.clinic, scale)).content.decode()
    assert "Not defined: Agreement needs at least two sessions rated by every rater." in html
    assert "nan" not in html.lower().replace("nance", "")


def test_drafts_are_not_counted(cast: Cast, signed_in: SignedIn) -> None:
    scale = make_scale(cast.clinic)
    session = cast.client_a.episodes.get().sessions.get(number=1)
    make_rating(session, scale, cast.supervisor, RaterRole.SUPERVISOR, answers_for(3))
    make_rating(session, scale, cast.therapist_a, RaterRole.SELF, answers_for(3),
                state=RatingState.DRAFT)
    html = signed_in(cast.supervisor).get(report_url(cast.clinic, scale)).content.decode()
    assert "No session has been rated by two or more people" in html


# ---- who may see calibration ---------------------------------------------------------------

def test_index_lists_scales_with_multi_rated_counts(
    cast: Cast, shrout_fleiss: tuple[Scale, list[TherapySession]], signed_in: SignedIn,
) -> None:
    url = reverse("fidelity:calibration_index", args=[cast.clinic.public_id])
    response = signed_in(cast.supervisor).get(url)
    assert response.status_code == 200
    assert re.search(r'<td class="num">6</td><td class="num">6</td>', response.content.decode())
    assert AuditEvent.objects.filter(event_type="fidelity.calibration_viewed",
                                     clinic_id=cast.clinic.public_id).exists()


@pytest.mark.parametrize("persona", ["therapist_a", "trainee", "researcher", "client_user_a",
                                     "other_clinic_therapist"])
def test_only_the_clinics_supervisors_and_admins_see_calibration(
    cast: Cast, shrout_fleiss: tuple[Scale, list[TherapySession]], signed_in: SignedIn,
    persona: str,
) -> None:
    scale, _ = shrout_fleiss
    user = getattr(cast, persona)
    http = signed_in(user)
    urls = [
        reverse("fidelity:calibration_index", args=[cast.clinic.public_id]),
        report_url(cast.clinic, scale),
        reverse("fidelity:calibration_reference", args=[cast.clinic.public_id,
                                                        scale.public_id]),
    ]
    for url in urls:
        assert http.get(url).status_code == 404, url
    assert AuditEvent.objects.filter(event_type="authz.denied",
                                     actor_id=user.public_id).count() == len(urls)


def test_another_clinics_scale_is_not_found_even_for_a_supervisor(
    cast: Cast, signed_in: SignedIn,
) -> None:
    foreign = make_scale(cast.other_clinic, slug="their-own")
    url = report_url(cast.clinic, foreign)
    assert signed_in(cast.supervisor).get(url).status_code == 404
    # Otto administers the other clinic: its report is his, the demo clinic's is not.
    otto = signed_in(cast.other_clinic_therapist)
    assert otto.get(report_url(cast.other_clinic, foreign)).status_code == 200
    assert otto.get(reverse("fidelity:calibration_index",
                            args=[cast.clinic.public_id])).status_code == 404


def test_shipped_scales_can_be_reported_in_any_clinic(cast: Cast, signed_in: SignedIn) -> None:
    shipped = make_scale(None, slug="shipped-for-test")
    assert signed_in(cast.admin).get(report_url(cast.clinic, shipped)).status_code == 200


# ---- bounded queries -----------------------------------------------------------------------

def _queries(http: HttpClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert http.get(url).status_code == 200
    return len(captured.captured_queries)


def _rate_sessions(cast: Cast, scale: Scale, raters: Sequence[User], count: int) -> None:
    episode = cast.client_b.episodes.get()
    for index in range(count):
        session = make_session(episode, timezone.now() - dt.timedelta(days=index + 1))
        for offset, rater in enumerate(raters):
            make_rating(session, scale, rater, RaterRole.PEER,
                        {"agenda": (index + offset) % 7, "warmth": 3, "homework": 1,
                         "questions": index})


@pytest.mark.parametrize("page", ["fidelity:calibration", "fidelity:calibration_reference"])
def test_reports_read_in_a_fixed_number_of_queries(
    cast: Cast, four_raters: list[User], signed_in: SignedIn, page: str,
) -> None:
    scale = make_scale(cast.clinic)
    reference = four_raters[3]
    raters: list[Any] = [four_raters[0], four_raters[1], reference]
    http = signed_in(cast.supervisor)
    url = reverse(page, args=[cast.clinic.public_id, scale.public_id])
    _rate_sessions(cast, scale, raters, 3)
    Rating.objects.filter(rater=reference).update(role=RaterRole.REFERENCE)
    few = _queries(http, url)
    _rate_sessions(cast, scale, raters, 12)
    Rating.objects.filter(rater=reference).update(role=RaterRole.REFERENCE)
    assert _queries(http, url) == few
