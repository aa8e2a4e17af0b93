"""Questionnaire schedules, answer links, reminders and opt-out, with the clock moved across a
year by time-machine (issue 7, SCHEDULE)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from relisten.audit.labels import EVENT_LABELS, TARGET_LABELS
from relisten.audit.models import AuditEvent
from relisten.clients.actions import create_client, discharge_episode, schedule_session
from relisten.clients.models import Attendance, Episode, Modality
from relisten.core.personas import Cast
from relisten.outcomes import actions
from relisten.outcomes.links import LINK_PROBLEM, LinkError, consume, issue_link, redeem
from relisten.outcomes.models import (
    AnswerLink,
    Due,
    DueState,
    Instrument,
    MeasurementPlan,
    TimePoint,
)
from relisten.outcomes.reminders import send_reminders
from relisten.outcomes.schedule import add_months, plan_dues

UTC = dt.UTC
START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
DAY = dt.timedelta(days=1)


def make_instrument(cast: Cast, code: str = "sched-test") -> Instrument:
    instrument, _ = Instrument.objects.get_or_create(
        clinic=cast.clinic, code=code, version=1, defaults={
            "name": "Test questionnaire",
            "questionnaire": {"resourceType": "Questionnaire", "status": "active", "item": []}},
    )
    return instrument


def clinic_plan(cast: Cast, **values: object) -> MeasurementPlan:
    plan = actions.save_clinic_plan(
        actor=cast.admin, clinic=cast.clinic, values=actions.PlanValues(**values),  # type: ignore[arg-type]
        instruments=[make_instrument(cast)],
    )
    return plan


@pytest.fixture(autouse=True)
def every_event_has_a_label(db: None) -> Iterator[None]:
    """Whatever these tests wrote to the audit trail can be read in plain words."""
    yield
    types = set(AuditEvent.objects.values_list("event_type", flat=True))
    targets = set(AuditEvent.objects.values_list("target_type", flat=True)) - {""}
    assert types <= set(EVENT_LABELS), types - set(EVENT_LABELS)
    assert targets <= set(TARGET_LABELS), targets - set(TARGET_LABELS)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def new_episode(cast: Cast, sessions: int = 6) -> Episode:
    """A client who starts today with weekly sessions from next week."""
    client = create_client(actor=cast.therapist_a, clinic=cast.clinic, given_name="Sched",
                           family_name="Uled", start_date=timezone.now().date())
    episode = client.episodes.get()
    for week in range(1, sessions + 1):
        schedule_session(actor=cast.therapist_a, episode=episode, modality=Modality.IN_PERSON,
                         scheduled_at=timezone.now() + dt.timedelta(weeks=week))
    return episode


def points(episode: Episode) -> list[tuple[str, int | None, str]]:
    return [(d.time_point, d.session.number if d.session else None, d.state)
            for d in episode.dues.select_related("session").order_by("due_at", "pk")]


# ---- the schedule ----------------------------------------------------------------------------

def test_add_months_keeps_the_day_or_takes_the_month_end() -> None:
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 3, 15), 12) == dt.date(2027, 3, 15)
    assert add_months(dt.date(2026, 11, 30), 3) == dt.date(2027, 2, 28)


def test_dues_appear_on_their_day_across_a_year(
        cast: Cast, clock: time_machine.Traveller) -> None:
    clinic_plan(cast, every_n_sessions=2)
    episode = new_episode(cast)
    appeared: dict[tuple[str, int | None], dt.date] = {}
    discharge_on = START.date() + dt.timedelta(days=50)
    for _ in range(420):
        today = timezone.now().date()
        if today == discharge_on:
            discharge_episode(actor=cast.therapist_a, episode=episode, end_date=today)
            episode.refresh_from_db()
        plan_dues(episode)
        for due in episode.dues.select_related("session"):
            key = (due.time_point, due.session.number if due.session else None)
            appeared.setdefault(key, today)
        clock.shift(DAY)
    start, end = START.date(), discharge_on
    assert appeared == {
        (TimePoint.INTAKE, None): start,
        # session 1 is covered by intake; every 2nd session after: 3 and 5, the day before
        (TimePoint.SESSION, 3): start + dt.timedelta(weeks=3, days=-1),
        (TimePoint.SESSION, 5): start + dt.timedelta(weeks=5, days=-1),
        (TimePoint.END, None): end,
        (TimePoint.FOLLOW_UP_1, None): add_months(end, 1),
        (TimePoint.FOLLOW_UP_3, None): add_months(end, 3),
        (TimePoint.FOLLOW_UP_6, None): add_months(end, 6),
        (TimePoint.FOLLOW_UP_12, None): add_months(end, 12),
    }
    # Session 7 would be after discharge; nothing else was ever made.
    assert episode.dues.count() == 8


def test_plan_dues_is_idempotent_and_cancels_what_is_no_longer_wanted(
        cast: Cast, clock: time_machine.Traveller) -> None:
    clinic_plan(cast, every_n_sessions=1)
    episode = new_episode(cast, sessions=3)
    clock.shift(dt.timedelta(days=13))  # session 2 (day 14) is due the day before
    first = plan_dues(episode)
    assert first.created == 2  # intake and session 2; session 3 (day 21) not yet
    assert plan_dues(episode).created == 0
    assert Due.objects.filter(episode=episode).count() == 2

    session2 = episode.sessions.get(number=2)
    session2.attendance = Attendance.CANCELLED
    session2.save()
    assert plan_dues(episode).cancelled == 1
    assert (TimePoint.SESSION, 2, DueState.CANCELLED) in points(episode)

    # Booked again for later: the questionnaire waits for its new day.
    session2.attendance = Attendance.SCHEDULED
    session2.scheduled_at = timezone.now() + dt.timedelta(days=5)
    session2.save()
    plan_dues(episode)
    assert (TimePoint.SESSION, 2, DueState.CANCELLED) in points(episode)
    clock.shift(dt.timedelta(days=4))
    assert plan_dues(episode).rescheduled == 1
    due = episode.dues.get(session=session2)
    assert due.state == DueState.DUE
    assert due.due_at == session2.scheduled_at - DAY


def test_a_plan_set_up_late_does_not_ask_for_long_past_points(
        cast: Cast, clock: time_machine.Traveller) -> None:
    episode = new_episode(cast, sessions=3)
    clock.shift(dt.timedelta(days=30))
    clinic_plan(cast, every_n_sessions=1, link_valid_days=14)
    plan_dues(episode)
    # Intake (day 0) and session 2 (day 13) are more than 14 days ago; session 3 (day 20) is not.
    assert points(episode) == [(TimePoint.SESSION, 3, DueState.DUE)]


def test_episode_plan_overrides_the_clinic_default(
        cast: Cast, clock: time_machine.Traveller) -> None:
    clinic_plan(cast, every_n_sessions=1)
    episode = new_episode(cast, sessions=2)
    clock.shift(dt.timedelta(days=13))
    plan_dues(episode)
    assert {p[0] for p in points(episode)} == {TimePoint.INTAKE, TimePoint.SESSION}
    with transaction.atomic():
        actions.save_episode_plan(
            actor=cast.therapist_a, episode=episode,
            values=actions.PlanValues(every_n_sessions=0),
            instruments=Instrument.objects.filter(code="sched-test"))
    plan_dues(episode)
    session_due = episode.dues.get(time_point=TimePoint.SESSION)
    assert session_due.state == DueState.CANCELLED
    assert AuditEvent.objects.filter(event_type="outcomes.episode_plan_saved").exists()


def test_no_plan_no_dues(cast: Cast, clock: time_machine.Traveller) -> None:
    episode = new_episode(cast)
    clock.shift(dt.timedelta(days=60))
    assert plan_dues(episode).created == 0


# ---- answer links ----------------------------------------------------------------------------

def open_due(cast: Cast, **plan: object) -> Due:
    clinic_plan(cast, **plan)
    episode = new_episode(cast, sessions=0)
    plan_dues(episode)
    return episode.dues.get()


def test_link_opens_its_due_until_used(cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast)
    token = issue_link(due)
    stored = AnswerLink.objects.get(due=due)
    assert token not in stored.token_sha256 and len(stored.token_sha256) == 64
    assert redeem(token) == due
    assert redeem(token) == due  # opening the page again does not use it up
    with transaction.atomic():
        assert consume(token) == due
    with pytest.raises(LinkError) as used:
        redeem(token)
    with pytest.raises(LinkError) as unknown:
        redeem("not-a-real-token")
    assert str(used.value) == str(unknown.value) == LINK_PROBLEM


def test_link_expires_after_the_plans_days(cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast, link_valid_days=5)
    token = issue_link(due)
    clock.shift(dt.timedelta(days=5) - dt.timedelta(seconds=1))
    assert redeem(token) == due
    clock.shift(dt.timedelta(seconds=1))
    with pytest.raises(LinkError):
        redeem(token)


def test_link_of_a_closed_due_does_not_open(cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast)
    token = issue_link(due)
    due.state = DueState.ANSWERED
    due.save()
    with pytest.raises(LinkError):
        redeem(token)


# ---- reminders -------------------------------------------------------------------------------

def set_email(cast: Cast, due: Due, address: str = "sched@example.org") -> None:
    actions.set_questionnaire_email(actor=cast.therapist_a, client=due.episode.client,
                                    email=address)


def token_in(message: EmailMessage) -> str:
    found = re.search(r"/q/([A-Za-z0-9_-]+)/\n", str(message.body))
    assert found, message.body
    return found.group(1)


def run_days(clock: time_machine.Traveller, days: int) -> dict[int, int]:
    """Run the reminder job hourly-ish (twice a day) for `days`; emails sent per day."""
    sent: dict[int, int] = {}
    for day in range(days):
        for _ in range(2):
            before = len(mail.outbox)
            send_reminders()
            if len(mail.outbox) > before:
                sent[day] = sent.get(day, 0) + len(mail.outbox) - before
            clock.shift(dt.timedelta(hours=12))
    return sent


def test_reminders_on_days_0_3_7_then_missed(cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast, reminder_days=(0, 3, 7), link_valid_days=7)
    set_email(cast, due)
    mail.outbox.clear()
    sent = run_days(clock, 20)
    assert sent == {0: 1, 3: 1, 7: 1}
    due.refresh_from_db()
    assert due.reminders_sent == 3
    # Missed once the last reminder's link (day 7 + 7 days) has run out.
    assert due.state == DueState.MISSED
    tokens = {token_in(m) for m in mail.outbox}
    assert len(tokens) == 3  # a fresh link every time
    assert AuditEvent.objects.filter(event_type="questionnaire.reminder_sent",
                                     target_id=str(due.public_id)).count() == 3


def test_reminder_email_has_no_clinical_content(
        cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast)
    set_email(cast, due)
    mail.outbox.clear()
    send_reminders()
    (message,) = mail.outbox
    assert message.to == ["sched@example.org"]
    text = f"{message.subject}\n{message.body}"
    assert cast.clinic.name in text and "a short questionnaire" in text
    for secret in ("Sched", "Uled", "Test questionnaire", "PHQ", "GAD", "depress", "anxi"):
        assert secret not in text
    assert redeem(token_in(message)) == due


def test_answering_stops_reminders(cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast, reminder_days=(0, 3, 7))
    set_email(cast, due)
    mail.outbox.clear()
    send_reminders()
    with transaction.atomic():
        consume(token_in(mail.outbox[0]))
        Due.objects.filter(pk=due.pk).update(state=DueState.ANSWERED)
    assert run_days(clock, 20) == {}


def test_catch_up_after_a_pause_sends_one_reminder(
        cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast, reminder_days=(0, 3, 7), link_valid_days=14)
    set_email(cast, due)
    mail.outbox.clear()
    clock.shift(dt.timedelta(days=8))  # the worker was down over days 0, 3 and 7
    send_reminders()
    send_reminders()
    assert len(mail.outbox) == 1
    due.refresh_from_db()
    assert due.reminders_sent == 3


def test_without_an_address_no_email_but_still_missed_in_the_end(
        cast: Cast, clock: time_machine.Traveller) -> None:
    due = open_due(cast, reminder_days=(0, 3), link_valid_days=2)
    mail.outbox.clear()
    assert run_days(clock, 10) == {}
    due.refresh_from_db()
    assert due.state == DueState.MISSED


def test_portal_users_email_is_used_when_no_questionnaire_address(cast: Cast) -> None:
    # Real time: Cora's second session was a week ago, so its questionnaire is due.
    clinic_plan(cast)
    cast.client_user_a.email = "cora@example.org"
    cast.client_user_a.save()
    episode = cast.client_a.episodes.get()
    plan_dues(episode)
    mail.outbox.clear()
    send_reminders()
    assert [m.to for m in mail.outbox] == [["cora@example.org"]]


# ---- opt-out ---------------------------------------------------------------------------------

def test_opt_out_from_the_emailed_link(
        cast: Cast, clock: time_machine.Traveller, client: object) -> None:
    from django.test import Client as HttpClient

    http: HttpClient = client  # type: ignore[assignment]
    due = open_due(cast)
    set_email(cast, due)
    mail.outbox.clear()
    send_reminders()
    token = token_in(mail.outbox[0])
    page = http.get(f"/q/{token}/stop/")
    assert page.status_code == 200
    assert b"Stop questionnaire emails" in page.content
    done = http.post(f"/q/{token}/stop/")
    assert done.status_code == 200
    assert b"You will not get any more questionnaires" in done.content
    due.refresh_from_db()
    assert due.state == DueState.OPTED_OUT
    event = AuditEvent.objects.get(event_type="questionnaire.opted_out")
    assert event.changes["via"] == "link" and event.actor_id is None
    # Later dues are not created, and nothing more is sent.
    assert run_days(clock, 10) == {}
    assert plan_dues(due.episode).created == 0
    # The used-up stop page says so plainly, like any dead link.
    dead = http.post("/q/not-a-token/stop/")
    assert dead.status_code == 410 and LINK_PROBLEM.encode() in dead.content


def test_opt_out_and_back_in_from_the_portal(cast: Cast, signed_in: object) -> None:
    make = signed_in
    clinic_plan(cast)
    episode = cast.client_a.episodes.get()
    plan_dues(episode)
    portal = make(cast.client_user_a)  # type: ignore[operator]
    url = f"/me/{cast.client_a.public_id}/questionnaires/stop/"
    assert portal.get(url).status_code == 200
    assert portal.post(url, {"choice": "stop"}).status_code == 302
    assert episode.dues.get().state == DueState.OPTED_OUT
    assert b"Turn questionnaires on again" in portal.get(url).content
    assert portal.post(url, {"choice": "start"}).status_code == 302
    assert AuditEvent.objects.filter(event_type="questionnaire.opted_in").exists()
    # Colin's record is not Cora's to change.
    other = f"/me/{cast.client_b.public_id}/questionnaires/stop/"
    assert portal.post(other, {"choice": "stop"}).status_code == 404



# ---- plan pages ------------------------------------------------------------------------------

PLAN_POST = {"every_n_sessions": "2", "reminder_days": "0, 3, 7", "link_valid_days": "10",
             "at_intake": "on", "at_end": "on", "follow_up_months": ["1", "3", "6", "12"]}


def test_admin_saves_the_clinic_plan(cast: Cast, signed_in: object) -> None:
    instrument = make_instrument(cast)
    admin = signed_in(cast.admin)  # type: ignore[operator]
    page = admin.get("/outcomes/plan/")
    assert page.status_code == 200 and b"No schedule is saved yet" in page.content
    bad = admin.post("/outcomes/plan/", {**PLAN_POST, "reminder_days": "soon"})
    assert b"Write whole numbers of days" in bad.content
    saved = admin.post("/outcomes/plan/", {**PLAN_POST, "instruments": [instrument.pk]})
    assert saved.status_code == 302
    plan = MeasurementPlan.objects.get(clinic=cast.clinic, episode=None)
    assert (plan.every_n_sessions, plan.reminder_days, plan.link_valid_days) == (2, [0, 3, 7], 10)
    assert list(plan.instruments.all()) == [instrument]
    assert AuditEvent.objects.filter(event_type="outcomes.clinic_plan_saved").exists()
    # A therapist is not the clinic's administrator.
    assert signed_in(cast.therapist_a).get("/outcomes/plan/").status_code == 404  # type: ignore[operator]


def test_therapist_sets_an_episode_plan_and_email(cast: Cast, signed_in: object) -> None:
    instrument = make_instrument(cast)
    clinic_plan(cast)
    episode = cast.client_a.episodes.get()
    url = f"/episodes/{episode.public_id}/outcomes/plan/"
    therapist = signed_in(cast.therapist_a)  # type: ignore[operator]
    detail = therapist.get(f"/episodes/{episode.public_id}/")
    assert b"The clinic's schedule." in detail.content
    assert b"Change the questionnaire schedule" in detail.content
    saved = therapist.post(url, {**PLAN_POST, "every_n_sessions": "0",
                                 "instruments": [instrument.pk], "email": "cora@example.org"})
    assert saved.status_code == 302
    own = MeasurementPlan.objects.get(episode=episode)
    assert own.every_n_sessions == 0
    assert cast.client_a.questionnaire_contact.email == "cora@example.org"
    event = AuditEvent.objects.get(event_type="outcomes.contact_changed")
    assert "cora@example.org" not in str(event.changes)
    assert b"This episode's own schedule." in therapist.get(
        f"/episodes/{episode.public_id}/").content
    therapist.post(url, {"use": "clinic"})
    assert not MeasurementPlan.objects.filter(episode=episode).exists()
    # The supervisor sees the panel but cannot change the plan.
    supervisor = signed_in(cast.supervisor)  # type: ignore[operator]
    assert b"Change the questionnaire schedule" not in supervisor.get(
        f"/episodes/{episode.public_id}/").content
    assert supervisor.post(url, PLAN_POST).status_code == 403


# ---- response rates --------------------------------------------------------------------------

def _due(episode: Episode, instrument: Instrument, point: str, state: str) -> Due:
    return Due.objects.create(episode=episode, instrument=instrument, time_point=point,
                              due_at=timezone.now(), state=state)


def test_response_rates_per_time_point_and_therapist(
        cast: Cast, signed_in: object, django_assert_max_num_queries: object) -> None:
    instrument = make_instrument(cast)
    cora = cast.client_a.episodes.get()
    colin = cast.client_b.episodes.get()
    _due(cora, instrument, TimePoint.INTAKE, DueState.ANSWERED)
    _due(colin, instrument, TimePoint.INTAKE, DueState.ANSWERED)
    _due(cora, instrument, TimePoint.FOLLOW_UP_3, DueState.MISSED)
    _due(colin, instrument, TimePoint.FOLLOW_UP_3, DueState.ANSWERED)
    _due(colin, instrument, TimePoint.END, DueState.DUE)
    _due(colin, instrument, TimePoint.FOLLOW_UP_1, DueState.CANCELLED)
    admin = signed_in(cast.admin)  # type: ignore[operator]
    with django_assert_max_num_queries(25):  # type: ignore[operator]
        page = admin.get("/outcomes/response-rates/")
    assert page.status_code == 200
    overall = page.context["overall"]
    by_label = {p.label: p for p in overall.points}
    assert (by_label["Intake"].answered, by_label["Intake"].percent) == (2, 100)
    assert (by_label["3-month follow-up"].asked, by_label["3-month follow-up"].percent) == (2, 50)
    assert by_label["End of treatment"].open == 1 and by_label["End of treatment"].percent is None
    assert by_label["1-month follow-up"].asked == 0  # cancelled ones were never asked
    assert len(page.context["rows"]) == 2
    assert b"The clinic's questionnaire schedule" in page.content
    # A therapist sees their own caseload only.
    own = signed_in(cast.therapist_a).get("/outcomes/response-rates/")  # type: ignore[operator]
    own_points = {p.label: p for p in own.context["overall"].points}
    assert own_points["3-month follow-up"].percent == 0
    assert own_points["Intake"].answered == 1
    assert own.context["rows"] == []
    assert signed_in(cast.client_user_a).get(  # type: ignore[operator]
        "/outcomes/response-rates/").status_code == 404


# ---- the periodic job ------------------------------------------------------------------------

def test_the_periodic_job_is_registered_and_plans_and_reminds(
        cast: Cast, clock: time_machine.Traveller) -> None:
    from relisten.core.periodic import SCHEDULE
    from relisten.outcomes.tasks import run_questionnaire_schedule

    assert any(job.task == "relisten.outcomes.tasks.run_questionnaire_schedule"
               for job in SCHEDULE)
    clinic_plan(cast)
    episode = new_episode(cast, sessions=0)
    set_email(cast, Due(episode=episode))
    mail.outbox.clear()
    run_questionnaire_schedule.call()
    assert episode.dues.get().reminders_sent == 1
    assert len(mail.outbox) == 1


def test_booking_a_session_plans_its_questionnaire_after_commit(
        cast: Cast, clock: time_machine.Traveller,
        django_capture_on_commit_callbacks: object) -> None:
    clinic_plan(cast)
    episode = new_episode(cast, sessions=1)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        schedule_session(actor=cast.therapist_a, episode=episode, modality=Modality.IN_PERSON,
                         scheduled_at=timezone.now() + dt.timedelta(hours=20))
    # Session 2 is tomorrow morning, so its questionnaire is due now; intake is too.
    assert {p[:2] for p in points(episode)} == {(TimePoint.INTAKE, None), (TimePoint.SESSION, 2)}


class RefusingMailServer(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise ConnectionRefusedError("mail server down")


def test_a_failed_send_is_tried_again_on_the_next_run(
        cast: Cast, clock: time_machine.Traveller, caplog: pytest.LogCaptureFixture) -> None:
    due = open_due(cast)
    set_email(cast, due)
    mail.outbox.clear()
    with override_settings(EMAIL_BACKEND=f"{__name__}.RefusingMailServer"):
        send_reminders()
    assert "ConnectionRefusedError" in caplog.text
    assert "sched@example.org" not in caplog.text and "mail server down" not in caplog.text
    due.refresh_from_db()
    assert due.reminders_sent == 0
    assert not AuditEvent.objects.filter(event_type="questionnaire.reminder_sent").exists()
    send_reminders()
    due.refresh_from_db()
    assert due.reminders_sent == 1 and len(mail.outbox) == 1
