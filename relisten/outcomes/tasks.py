"""Background jobs of outcome monitoring. Arguments are ids only (relisten/core/jobs.py)."""

from __future__ import annotations

from django.utils import timezone
from django_tasks import task

from relisten.clients.models import Episode

# ---- SCHEDULE (dues and reminders) ----


@task()
def plan_episode_dues(episode_id: int) -> None:
    """Bring one episode's dues up to date (after a plan, session or discharge change)."""
    from relisten.outcomes.schedule import plan_dues

    episode = Episode.objects.select_related("client").filter(pk=episode_id).first()
    if episode is not None:
        plan_dues(episode, timezone.now())


@task()
def run_questionnaire_schedule() -> None:
    """Periodic: create what has become due in every episode, then send reminders."""
    from relisten.outcomes.reminders import send_reminders
    from relisten.outcomes.schedule import episodes_to_plan, plan_dues

    now = timezone.now()
    for episode in Episode.objects.select_related("client").filter(pk__in=episodes_to_plan(now)):
        plan_dues(episode, now)
    send_reminders(now)

# ---- end SCHEDULE ----
