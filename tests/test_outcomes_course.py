"""Change at the end of treatment and at each follow-up, on the episode page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from relisten.core.personas import Cast
from relisten.outcomes.course import course_for_episode
from relisten.outcomes.models import Instrument, Response, Source, TimePoint

pytestmark = pytest.mark.django_db


def answered(cast: Cast, point: str, total: int, days_ago: int) -> Response:
    return Response.objects.create(
        episode=cast.client_a.episodes.get(),
        instrument=Instrument.objects.get(clinic=None, code="phq-9", active=True),
        time_point=point, answered_at=timezone.now() - dt.timedelta(days=days_ago),
        source=Source.PORTAL, total=total)


def test_first_score_against_the_end_and_each_follow_up(cast: Cast) -> None:
    answered(cast, TimePoint.INTAKE, 18, 400)
    answered(cast, TimePoint.SESSION, 14, 390)  # the path, not a result
    answered(cast, TimePoint.END, 6, 370)
    answered(cast, TimePoint.FOLLOW_UP_12, 12, 5)
    [table] = course_for_episode(cast.client_a.episodes.get())
    assert table.first_label == "Intake"
    end, year = table.rows
    assert (end.label, end.first, end.later) == ("End of treatment", 18, 6)
    assert end.change.status == "Reliable recovery"
    # A year on: 6 points better than at intake (reliable) but above the caseness line again.
    assert (year.label, year.change.difference) == ("12-month follow-up", -6)
    assert year.change.status == "Reliable improvement" and year.change.case_at_end
    assert end.rci is not None and end.rci.reliable and end.rci.value < 0


def test_no_table_before_the_end_of_treatment(cast: Cast) -> None:
    answered(cast, TimePoint.INTAKE, 18, 30)
    answered(cast, TimePoint.SESSION, 15, 20)
    assert course_for_episode(cast.client_a.episodes.get()) == []


def test_episode_page_shows_the_course(cast: Cast, signed_in: Any) -> None:
    answered(cast, TimePoint.INTAKE, 16, 200)
    answered(cast, TimePoint.END, 9, 100)
    answered(cast, TimePoint.FOLLOW_UP_3, 17, 10)
    episode = cast.client_a.episodes.get()
    page = signed_in(cast.therapist_a).get(
        reverse("clients:episode", kwargs={"episode_id": episode.public_id})).content.decode()
    assert "Change at the end of treatment and after" in page
    assert "Reliable recovery" in page  # 16 → 9: below the line, 7 points better
    assert "3-month follow-up" in page and "No reliable change" in page  # 16 → 17


def test_one_due_per_time_point_on_every_database(cast: Cast) -> None:
    """The uniqueness the scheduler's idempotence leans on holds on SQLite too (two partial
    constraints; SQLite ignores nulls_distinct)."""
    from django.db import IntegrityError, transaction

    from relisten.outcomes.models import Due

    episode = cast.client_a.episodes.get()
    phq9 = Instrument.objects.get(clinic=None, code="phq-9", active=True)
    session = episode.sessions.first()
    for extra in ({}, {"session": session}):
        Due.objects.create(episode=episode, instrument=phq9, time_point=TimePoint.INTAKE
                           if not extra else TimePoint.SESSION, due_at=timezone.now(), **extra)
        with pytest.raises(IntegrityError), transaction.atomic():
            Due.objects.create(episode=episode, instrument=phq9, time_point=TimePoint.INTAKE
                               if not extra else TimePoint.SESSION, due_at=timezone.now(),
                               **extra)
