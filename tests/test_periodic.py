"""Periodic jobs are queued once per interval, however many workers ask."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string

from relisten.core.models import PeriodicRun
from relisten.core.periodic import SCHEDULE, Periodic, enqueue_due
from tests import jobs_for_tests

TICK = (Periodic("tick", "tests.jobs_for_tests.note_tick", dt.timedelta(hours=1)),)


@pytest.mark.django_db(transaction=True)
def test_a_job_is_queued_once_per_interval() -> None:
    jobs_for_tests.RAN.clear()
    start = timezone.now()
    assert enqueue_due(start, TICK) == ["tick"]
    # A second worker asking a minute later queues nothing.
    assert enqueue_due(start + dt.timedelta(minutes=1), TICK) == []
    assert jobs_for_tests.RAN == ["tick"]
    assert enqueue_due(start + dt.timedelta(hours=1, seconds=1), TICK) == ["tick"]
    assert jobs_for_tests.RAN == ["tick", "tick"]
    assert PeriodicRun.objects.get(name="tick").last_enqueued_at == start + dt.timedelta(
        hours=1, seconds=1
    )


def test_every_scheduled_job_is_a_task_without_arguments() -> None:
    for job in SCHEDULE:
        task = import_string(job.task)
        assert hasattr(task, "enqueue"), job.task
        assert job.every >= dt.timedelta(minutes=5)
