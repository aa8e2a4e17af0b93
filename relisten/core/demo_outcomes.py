"""Questionnaire histories for the demo clinic (issue 7), so every chart and status has content.

Four courses through the real actions (Due → submit_answers → alerts), back-dated afterwards so
the charts show weeks and months: Maya improved and recovered and held it to the 12-month
follow-up; Owen is unchanged at his 3-month follow-up; Priya reliably deteriorated and answered
PHQ-9 item 9 above 0 at her latest session (an unacknowledged risk alert for Tess); Cora is in
treatment and improving. Everyone here is invented.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils import timezone

from relisten.accounts.models import User
from relisten.clients.actions import create_client, discharge_episode, schedule_session
from relisten.clients.models import Client, Episode, Modality
from relisten.core.personas import Cast
from relisten.outcomes.actions import submit_answers
from relisten.outcomes.models import Due, Instrument, Response, Source, TimePoint
from relisten.outcomes.questionnaire import questionnaire_of

# (days before today, time point, PHQ-9 total, GAD-7 total, PHQ-9 item 9)
Course = Sequence[tuple[int, str, int, int, int]]

SESSION = TimePoint.SESSION
MAYA: Course = [
    (560, TimePoint.INTAKE, 18, 15, 0), *[(553 - 7 * n, SESSION, t, g, 0) for n, (t, g) in
                                         enumerate([(17, 14), (15, 12), (13, 11), (11, 9),
                                                    (9, 8), (8, 6), (6, 5)])],
    (504, TimePoint.END, 6, 5, 0), (474, TimePoint.FOLLOW_UP_1, 5, 4, 0),
    (413, TimePoint.FOLLOW_UP_3, 6, 5, 0), (322, TimePoint.FOLLOW_UP_6, 7, 6, 0),
    (139, TimePoint.FOLLOW_UP_12, 6, 5, 0),
]
OWEN: Course = [
    (200, TimePoint.INTAKE, 14, 11, 0), *[(193 - 7 * n, SESSION, t, g, 0) for n, (t, g) in
                                         enumerate([(14, 12), (15, 11), (13, 10), (14, 11),
                                                    (13, 10)])],
    (158, TimePoint.END, 13, 10, 0), (128, TimePoint.FOLLOW_UP_1, 13, 11, 0),
    (67, TimePoint.FOLLOW_UP_3, 14, 11, 0),
]
PRIYA: Course = [
    (35, TimePoint.INTAKE, 11, 9, 0), (28, SESSION, 12, 9, 0), (21, SESSION, 14, 11, 0),
    (14, SESSION, 15, 12, 0), (7, SESSION, 17, 14, 1),
]
CORA: Course = [
    (30, TimePoint.INTAKE, 16, 13, 0), (14, SESSION, 13, 11, 0), (7, SESSION, 11, 9, 0),
]


def spread(total: int, items: int, last: int | None = None) -> list[int]:
    """`items` answers of 0-3 adding up to `total`; the last one fixed when `last` is given
    (PHQ-9 item 9, the risk item)."""
    fixed = [] if last is None else [last]
    free = items - len(fixed)
    rest = total - sum(fixed)
    if not 0 <= rest <= 3 * free:
        raise ValueError(f"cannot spread {total} over {items} items")
    values = [rest // free + (1 if n < rest % free else 0) for n in range(free)]
    return values + fixed


def add_course(episode: Episode, course: Course) -> None:
    phq9 = Instrument.objects.get(clinic=None, code="phq-9", active=True)
    gad7 = Instrument.objects.get(clinic=None, code="gad-7", active=True)
    now = timezone.now().replace(hour=9, minute=0, second=0, microsecond=0)
    for days, point, phq_total, gad_total, item9 in course:
        when = now - dt.timedelta(days=days)
        # Separate dues per session: the session's own row keeps the uniqueness honest.
        session = None
        if point == SESSION:
            # Cora's sessions exist already (the recorded one among them): answer before those.
            session = episode.sessions.filter(scheduled_at__date=when.date()).first() or \
                schedule_session(actor=episode.therapist, episode=episode,
                                 modality=Modality.IN_PERSON, scheduled_at=when)
        for instrument, total, risk in ((phq9, phq_total, item9), (gad7, gad_total, None)):
            form = questionnaire_of(instrument)
            values = spread(total, len(form.items), risk)
            due = Due.objects.create(episode=episode, instrument=instrument, time_point=point,
                                     session=session, due_at=when)
            response = submit_answers(
                due=due, source=Source.PORTAL, actor=None,
                answers={item.link_id: value
                         for item, value in zip(form.items, values, strict=True)})
            Response.objects.filter(pk=response.pk).update(answered_at=when)


def _client(actor: User, cast: Cast, given: str, family: str, started_days_ago: int) -> Client:
    return create_client(actor=actor, clinic=cast.clinic, given_name=given, family_name=family,
                         start_date=timezone.localdate() - dt.timedelta(days=started_days_ago))


def add_demo_outcomes(cast: Cast) -> None:
    tess, ben = cast.therapist_a, cast.therapist_b
    maya = _client(tess, cast, "Maya", "Lindqvist", 562)
    owen = _client(ben, cast, "Owen", "Hart", 202)
    priya = _client(tess, cast, "Priya", "Shah", 37)
    for client, course in ((maya, MAYA), (owen, OWEN), (priya, PRIYA),
                           (cast.client_a, CORA)):
        add_course(client.episodes.get(), course)
    for client, days in ((maya, 504), (owen, 158)):
        episode = client.episodes.get()
        discharge_episode(actor=episode.therapist, episode=episode,
                          end_date=timezone.localdate() - dt.timedelta(days=days))
