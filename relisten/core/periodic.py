"""Periodic jobs. django-tasks has no scheduler, so every `relisten worker` runs a small loop
that queues each job when its interval has passed; a locked row per job keeps workers on
several machines from queueing it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from relisten.core.jobs import enqueue_on_commit
from relisten.core.models import PeriodicRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    task: str  # dotted path of a django-tasks task taking no arguments
    every: dt.timedelta


SCHEDULE = (
    Periodic("collect_expired_uploads", "relisten.recordings.tasks.collect_expired_uploads",
             dt.timedelta(hours=1)),
    Periodic("apply_retention", "relisten.recordings.erasure.apply_retention",
             dt.timedelta(days=1)),
    Periodic("requeue_stale_transcriptions", "relisten.transcripts.tasks.requeue_stale_runs",
             dt.timedelta(minutes=5)),
    # outcome monitoring: questionnaires that became due, reminder emails (issue 7)
    Periodic("questionnaire_schedule", "relisten.outcomes.tasks.run_questionnaire_schedule",
             dt.timedelta(minutes=15)),
)


def enqueue_due(now: dt.datetime | None = None,
                schedule: tuple[Periodic, ...] = SCHEDULE) -> list[str]:
    """Queue every job whose interval has passed; returns the names queued."""
    now = now or timezone.now()
    queued: list[str] = []
    for job in schedule:
        with transaction.atomic():
            run, _ = PeriodicRun.objects.select_for_update().get_or_create(name=job.name)
            if run.last_enqueued_at is not None and now - run.last_enqueued_at < job.every:
                continue
            task: Any = import_string(job.task)
            enqueue_on_commit(task)
            run.last_enqueued_at = now
            run.save(update_fields=["last_enqueued_at"])
            queued.append(job.name)
    return queued


def start_scheduler(interval_s: float = 60.0) -> threading.Event:
    """Run enqueue_due every interval in a daemon thread; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                names = enqueue_due()
                if names:
                    logger.info("queued periodic jobs: %s", ", ".join(names))
            except Exception:  # a bad tick must not kill the worker; the next tick retries
                logger.exception("periodic scheduler tick failed")
            finally:
                close_old_connections()
            stop.wait(interval_s)

    threading.Thread(target=loop, name="relisten-scheduler", daemon=True).start()
    return stop
