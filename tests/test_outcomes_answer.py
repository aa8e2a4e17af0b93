"""Answering questionnaires (by link and in the portal), risk alerts and their acknowledgement,
progress flags on the therapist's home page, and the trajectory chart's data points."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.clients.models import Episode
from relisten.core.personas import Cast
from relisten.outcomes import actions
from relisten.outcomes.builtin import load_builtin_instruments
from relisten.outcomes.chart import trajectory_for_episode
from relisten.outcomes.links import LINK_PROBLEM, issue_link
from relisten.outcomes.models import (
    Alert,
    AlertKind,
    Due,
    DueState,
    Instrument,
    MeasurementPlan,
    Response,
    Source,
    TimePoint,
)

SignedIn = Callable[[User], HttpClient]
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8"]
RISK_ITEM = "44260-8"


def phq9() -> Instrument:
    load_builtin_instruments()
    return Instrument.objects.get(code="phq-9", clinic=None)


def episode_of(cast: Cast, which: str = "a") -> Episode:
    return (cast.client_a if which == "a" else cast.client_b).episodes.get()


def make_due(episode: Episode, time_point: str = TimePoint.INTAKE, **extra: object) -> Due:
    return Due.objects.create(episode=episode, instrument=phq9(), time_point=time_point,
                              due_at=timezone.now() - dt.timedelta(hours=1), **extra)


def answers(values: list[int]) -> dict[str, str]:
    return {link_id: str(value) for link_id, value in zip(PHQ9_ITEMS, values, strict=False)}


def answered(episode: Episode, values: list[int], when: dt.datetime,
             time_point: str = TimePoint.SESSION) -> Response:
    due = make_due(episode, time_point, session=None)
    response = actions.submit_answers(due=due, answers=answers(values), source=Source.STAFF,
                                      actor=None)
    Response.objects.filter(pk=response.pk).update(answered_at=when)
    response.refresh_from_db()
    return response


# ---- answering by link ------------------------------------------------------------------------

def test_link_form_shows_every_question_with_progress(cast: Cast) -> None:
    due = make_due(episode_of(cast))
    page = HttpClient().get(f"/q/{issue_link(due)}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('type="radio"') == 9 * 4
    assert "0</span> of 9 answered" in html
    assert "Little interest or pleasure in doing things" in html
    assert "No permission required to reproduce" in html  # the copyright notice
    assert page["Cache-Control"].startswith("max-age=0")


def test_partial_answers_are_kept_and_shown_again(cast: Cast) -> None:
    due = make_due(episode_of(cast))
    token = issue_link(due)
    http = HttpClient()
    saved = http.post(f"/q/{token}/draft/", {PHQ9_ITEMS[0]: "2", PHQ9_ITEMS[1]: "7"})
    assert saved.json() == {"saved": True, "answered": 1, "items": 9}
    due.refresh_from_db()
    assert due.draft_answers == {PHQ9_ITEMS[0]: 2}  # 7 is not an option: dropped
    # Closing the page and opening the link again brings the answer back.
    html = HttpClient().get(f"/q/{token}/").content.decode()
    assert re.search(rf'name="{PHQ9_ITEMS[0]}" value="2" checked', html)
    assert "1</span> of 9 answered" in html
    event = AuditEvent.objects.filter(event_type="questionnaire.draft_saved").latest("seq")
    assert event.changes == {"items_answered": 1, "items": 9}  # counts, never answers


def test_sending_with_questions_missing_says_which_and_keeps_the_rest(cast: Cast) -> None:
    due = make_due(episode_of(cast))
    token = issue_link(due)
    page = HttpClient().post(f"/q/{token}/", answers([1, 1, 1, 1, 1, 1, 1]))
    assert page.status_code == 400
    assert "Please answer questions 8 and 9 before sending." in page.content.decode()
    assert not Response.objects.exists()
    due.refresh_from_db()
    assert due.state == DueState.DUE and len(due.draft_answers) == 7


def test_submitting_stores_every_item_scores_and_uses_the_link_up(cast: Cast) -> None:
    due = make_due(episode_of(cast))
    token = issue_link(due)
    http = HttpClient()
    page = http.post(f"/q/{token}/", answers([1, 2, 3, 1, 0, 1, 2, 1, 0]))
    assert page.status_code == 302 and page["Location"] == reverse("outcomes:thanks")
    response = Response.objects.get(due=due)
    assert (response.total, response.band, response.source) == (11, "Moderate", "link")
    items = {item.link_id: (item.value, item.answer_code) for item in response.items.all()}
    assert items[PHQ9_ITEMS[2]] == (3, "LA6571-9")  # "Nearly every day"
    assert len(items) == 9
    due.refresh_from_db()
    assert due.state == DueState.ANSWERED and due.draft_answers == {}
    assert due.links.get().used_at is not None
    assert "Your answers have been sent" in http.get(reverse("outcomes:thanks")).content.decode()
    again = HttpClient().get(f"/q/{token}/")
    assert again.status_code == 410 and LINK_PROBLEM in again.content.decode()
    assert not Alert.objects.exists()  # item 9 was 0


@pytest.mark.parametrize("token", ["unknown-token", "x" * 300])
def test_unknown_links_get_the_one_plain_message(cast: Cast, token: str) -> None:
    page = HttpClient().get(f"/q/{token}/")
    assert page.status_code == 410 and LINK_PROBLEM in page.content.decode()


def test_expired_link_gets_the_same_message(cast: Cast) -> None:
    due = make_due(episode_of(cast))
    token = issue_link(due, now=timezone.now() - dt.timedelta(days=30))
    page = HttpClient().post(f"/q/{token}/", answers([0] * 9))
    assert page.status_code == 410 and LINK_PROBLEM in page.content.decode()
    assert not Response.objects.exists()


def test_thanks_page_shows_the_clients_chart_only_if_the_plan_says_so(cast: Cast) -> None:
    episode = episode_of(cast)
    plan = MeasurementPlan.objects.create(clinic=episode.client.clinic, episode=episode)
    for show in (False, True):
        plan.show_client_chart = show
        plan.save()
        http = HttpClient()
        session = episode.sessions.create(number=10 + show, scheduled_at=timezone.now())
        due = make_due(episode, TimePoint.SESSION, session=session)
        http.post(f"/q/{issue_link(due)}/", answers([1] * 8 + [0]))
        html = http.get(reverse("outcomes:thanks")).content.decode()
        assert ('data-chart="trajectory-phq-9"' in html) is show


# ---- in the portal ----------------------------------------------------------------------------

def test_client_answers_in_the_portal_and_others_cannot(cast: Cast, signed_in: SignedIn) -> None:
    due = make_due(episode_of(cast))
    cora = signed_in(cast.client_user_a)
    record = cora.get(reverse("portal:record", args=[cast.client_a.public_id])).content.decode()
    url = reverse("outcomes:portal_answer", args=[cast.client_a.public_id, due.public_id])
    assert url in record  # listed under "Questionnaires to answer"
    assert cora.get(url).status_code == 200
    # Colin, or Cora's therapist, cannot open Cora's questionnaire as if it were theirs.
    colin = signed_in(cast.client_user_b)
    assert colin.get(url).status_code == 404
    other = reverse("outcomes:portal_answer", args=[cast.client_b.public_id, due.public_id])
    assert colin.get(other).status_code == 404
    assert signed_in(cast.therapist_a).get(url).status_code == 404
    page = cora.post(url, answers([0] * 9))
    assert page.status_code == 302
    assert Response.objects.get(due=due).source == "portal"
    assert url not in cora.get(reverse("portal:record",
                                       args=[cast.client_a.public_id])).content.decode()


def test_every_questionnaire_page_says_how_to_stop_being_asked(
    cast: Cast, signed_in: SignedIn
) -> None:
    due = make_due(episode_of(cast))
    token = issue_link(due)
    by_link = HttpClient().get(f"/q/{token}/").content.decode()
    stop = reverse("outcomes:opt_out_link", kwargs={"token": token})
    assert f'href="{stop}"' in by_link
    assert HttpClient().get(stop).status_code == 200  # the page it leads to exists
    cora = signed_in(cast.client_user_a)
    portal_stop = reverse("outcomes:opt_out_portal", args=[cast.client_a.public_id])
    in_portal = cora.get(reverse("outcomes:portal_answer",
                                 args=[cast.client_a.public_id, due.public_id])).content.decode()
    assert f'href="{portal_stop}"' in in_portal
    record = cora.get(reverse("portal:record", args=[cast.client_a.public_id])).content.decode()
    assert f'href="{portal_stop}"' in record


# ---- alerts ----------------------------------------------------------------------------------

def test_item_9_raises_an_alert_and_emails_the_therapist_without_answers(
    cast: Cast, signed_in: SignedIn, django_capture_on_commit_callbacks: Any
) -> None:
    cast.therapist_a.email = "thea@clinic.example"
    cast.therapist_a.save()
    due = make_due(episode_of(cast))
    with django_capture_on_commit_callbacks(execute=True):
        HttpClient().post(f"/q/{issue_link(due)}/", answers([0, 0, 0, 0, 0, 0, 0, 0, 1]))
    alert = Alert.objects.get(kind=AlertKind.RISK_ITEM)
    assert alert.episode == episode_of(cast) and alert.acknowledged_at is None
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["thea@clinic.example"]
    assert email.subject == "A questionnaire needs your attention"
    assert f"/outcomes/alerts/{alert.public_id}/" in email.body
    for secret in ("Cora", cast.client_a.family_name, "PHQ", "dead", "Several days"):
        assert secret not in email.body and secret not in email.subject

    thea = signed_in(cast.therapist_a)
    home = thea.get("/").content.decode()
    assert reverse("outcomes:alert", args=[alert.public_id]) in home
    assert "Risk item answered: please acknowledge" in home
    page = thea.get(reverse("outcomes:alert", args=[alert.public_id])).content.decode()
    assert "(risk item)" in page and "I have seen this and am acting on it" in page


def test_acknowledging_is_the_therapists_and_is_on_record(cast: Cast, signed_in: SignedIn) -> None:
    due = make_due(episode_of(cast))
    actions.submit_answers(due=due, answers=answers([0] * 8 + [2]), source=Source.LINK,
                           actor=None)
    alert = Alert.objects.get()
    url = reverse("outcomes:alert", args=[alert.public_id])
    supervisor = signed_in(cast.supervisor)
    assert supervisor.get(url).status_code == 200
    assert supervisor.post(url).status_code == 403
    assert signed_in(cast.therapist_b).get(url).status_code == 404
    assert signed_in(cast.client_user_a).get(url).status_code == 404
    thea = signed_in(cast.therapist_a)
    assert thea.post(url).status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == cast.therapist_a and alert.acknowledged_at is not None
    event = AuditEvent.objects.get(event_type="outcome_alert.acknowledged")
    assert event.changes == {"kind": "risk_item"}
    assert "Risk item answered" not in thea.get("/").content.decode()  # off the home page
    thea.post(url)  # a second press changes nothing
    assert AuditEvent.objects.filter(event_type="outcome_alert.acknowledged").count() == 1


def test_reliable_deterioration_flags_the_home_page(cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    start = timezone.now() - dt.timedelta(days=30)
    answered(episode, [1, 1, 1, 1, 0, 0, 0, 0, 0], start, TimePoint.INTAKE)  # 4
    worse = answered(episode, [2, 2, 1, 1, 1, 1, 1, 1, 0], start + dt.timedelta(days=7))  # 10
    assert Alert.objects.get(response=worse).kind == AlertKind.DETERIORATION
    home = signed_in(cast.therapist_a).get("/").content.decode()
    assert "Scores have reliably worsened" in home


def test_a_five_point_rise_is_not_reliable_deterioration(cast: Cast) -> None:
    episode = episode_of(cast)
    start = timezone.now() - dt.timedelta(days=30)
    answered(episode, [1, 1, 1, 1, 0, 0, 0, 0, 0], start, TimePoint.INTAKE)  # 4
    answered(episode, [2, 2, 1, 1, 1, 1, 1, 0, 0], start + dt.timedelta(days=7))  # 9
    assert not Alert.objects.filter(kind=AlertKind.DETERIORATION).exists()


def test_no_improvement_by_the_fourth_measure_is_off_track(cast: Cast) -> None:
    episode = episode_of(cast)
    start = timezone.now() - dt.timedelta(days=30)
    totals = []
    for week, values in enumerate([[1] * 8 + [0], [1] * 7 + [0, 0], [1] * 8 + [0],
                                   [1] * 8 + [0]]):  # 8, 7, 8, 8: no better than at first
        last = answered(episode, values, start + dt.timedelta(days=7 * week))
        totals.append(Alert.objects.filter(kind=AlertKind.OFF_TRACK).count())
    assert totals == [0, 0, 0, 1]
    assert Alert.objects.get(kind=AlertKind.OFF_TRACK).response == last


# ---- the chart -------------------------------------------------------------------------------

def test_trajectory_chart_data_points(cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    start = timezone.now() - dt.timedelta(days=120)
    answered(episode, [2, 2, 2, 2, 2, 1, 1, 1, 0], start, TimePoint.INTAKE)  # 13
    answered(episode, [1, 1, 1, 1, 1, 1, 0, 0, 0], start + dt.timedelta(days=28),
             TimePoint.END)  # 6
    answered(episode, [1, 1, 1, 0, 0, 0, 0, 0, 0], start + dt.timedelta(days=90),
             TimePoint.FOLLOW_UP_1)  # 3
    episode.start_date = timezone.localdate(start)
    episode.end_date = timezone.localdate(start + dt.timedelta(days=28))
    episode.save()
    chart = trajectory_for_episode(episode, phq9())
    assert [(p.total, p.time_point, p.follow_up) for p in chart.points] == [
        (13, "intake", False), (6, "end", False), (3, "fu1", True)]
    assert chart.max_score == 27 and chart.caseness == 10
    assert [band.label for band in chart.bands] == [
        "Minimal", "Mild", "Moderate", "Moderately severe", "Severe"]
    # y grows downwards: 13 sits above 6, which sits above 3; x follows the dates.
    ys = [p.y for p in chart.points]
    xs = [p.x for p in chart.points]
    assert ys[0] < ys[1] < ys[2] and xs[0] < xs[1] < xs[2]
    assert chart.plot_top < chart.caseness_y < chart.plot_bottom  # type: ignore[operator]
    assert chart.discharge is not None and chart.discharge.x == pytest.approx(xs[1])

    page = signed_in(cast.therapist_a).get(reverse("clients:episode",
                                                   args=[episode.public_id]))
    html = page.content.decode()
    assert re.findall(r'data-total="(\d+)"', html) == ["13", "6", "3"]
    assert 'data-caseness="10"' in html and "data-discharge=" in html
    assert "<path d=\"M" in html  # the follow-up point is a diamond
    assert "<td>1-month follow-up</td><td>3</td>" in html  # the data table


def test_caseload_summary_shows_first_latest_and_status(
    cast: Cast, signed_in: SignedIn
) -> None:
    start = timezone.now() - dt.timedelta(days=60)
    cora = episode_of(cast)
    answered(cora, [2, 2, 2, 2, 2, 2, 2, 0, 0], start, TimePoint.INTAKE)  # 14: a case
    answered(cora, [1, 1, 1, 1, 0, 0, 0, 0, 0], start + dt.timedelta(days=42))  # 4
    answered(episode_of(cast, "b"), [1] * 8 + [0], start, TimePoint.INTAKE)  # Ben's client
    thea = signed_in(cast.therapist_a)
    html = thea.get(reverse("outcomes:caseload")).content.decode()
    assert "Reliable recovery" in html and "<td>2</td>" in html
    assert "Colin" not in html  # not Thea's client
    assert AuditEvent.objects.filter(event_type="record.viewed",
                                     client_id=cast.client_a.public_id).exists()
    home = thea.get("/").content.decode()
    assert reverse("outcomes:caseload") in home
