"""Template tags that put outcome panels on pages other apps own, each with one line:
the therapist's home flags, an episode's score charts, the client's waiting questionnaires."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.clients.models import Client, Episode
from relisten.outcomes.chart import trajectories_for_episode
from relisten.outcomes.models import AlertKind

register = template.Library()
FLAGS_SHOWN = 20


@register.inclusion_tag("outcomes/_home_flags.html")
def outcome_home_flags(user: User) -> dict[str, Any]:
    """Unacknowledged alerts on episodes this user treats: risk first, then progress flags."""
    open_alerts = (access.outcome_alerts_for_user(user, Act.TREAT)
                   .filter(acknowledged_at__isnull=True)
                   .select_related("episode__client").order_by("-raised_at"))
    return {
        "risk_alerts": list(open_alerts.filter(kind=AlertKind.RISK_ITEM)[:FLAGS_SHOWN]),
        "flags": list(open_alerts.exclude(kind=AlertKind.RISK_ITEM)[:FLAGS_SHOWN]),
    }


@register.inclusion_tag("outcomes/_trajectory.html")
def outcome_trajectories(episode: Episode) -> dict[str, Any]:
    """`episode` comes from a view that has checked access and recorded the read."""
    return {"charts": trajectories_for_episode(episode)}


@register.inclusion_tag("outcomes/_course.html")
def outcome_course(episode: Episode) -> dict[str, Any]:
    """Change at the end of treatment and each follow-up; `episode` already access-checked."""
    from relisten.outcomes.course import course_for_episode

    return {"course": course_for_episode(episode)}


@register.inclusion_tag("outcomes/_portal_questionnaires.html")
def portal_questionnaires(user: User, client: Client) -> dict[str, Any]:
    dues = (access.own_dues(user, client).filter(due_at__lte=timezone.now())
            .select_related("instrument").order_by("due_at"))
    return {"client": client, "dues": list(dues[:20])}
