"""Keep an episode's questionnaires in step when a session is booked, moved or cancelled, or
the episode is discharged: re-plan its dues after the change commits (ids only, in a job).

The periodic job would catch up within its interval anyway; this makes the change show at
once. Only episodes that have a plan (their own or the clinic's) are queued, so clinics that
do not measure outcomes get no extra jobs.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.db.models.signals import post_save

from relisten.clients.models import Episode, TherapySession
from relisten.core.jobs import enqueue_on_commit


def _replan(episode: Episode) -> None:
    from relisten.outcomes.models import MeasurementPlan
    from relisten.outcomes.tasks import plan_episode_dues

    has_plan = MeasurementPlan.objects.filter(
        Q(episode_id=episode.pk) | Q(clinic_id=episode.client.clinic_id, episode=None)
    ).exists()
    if has_plan:
        enqueue_on_commit(plan_episode_dues, episode.pk)


def session_saved(sender: Any, instance: TherapySession, **kwargs: Any) -> None:
    _replan(instance.episode)


def episode_saved(sender: Any, instance: Episode, **kwargs: Any) -> None:
    _replan(instance)


def connect() -> None:
    post_save.connect(session_saved, sender=TherapySession,
                      dispatch_uid="relisten.outcomes.session_saved")
    post_save.connect(episode_saved, sender=Episode,
                      dispatch_uid="relisten.outcomes.episode_saved")
