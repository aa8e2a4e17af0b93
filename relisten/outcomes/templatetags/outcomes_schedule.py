"""The questionnaire schedule panel on the episode page (outcomes, SCHEDULE), one include line."""

from __future__ import annotations

from typing import Any

from django import template

from relisten.clients.models import Episode
from relisten.outcomes.models import DueState, MeasurementPlan, QuestionnaireContact
from relisten.outcomes.schedule import plan_for

register = template.Library()
DUES_SHOWN = 12


@register.inclusion_tag("outcomes/_episode_plan.html")
def episode_plan_panel(episode: Episode, can_treat: bool = False) -> dict[str, Any]:
    plan: MeasurementPlan | None = plan_for(episode)
    contact = QuestionnaireContact.objects.filter(client_id=episode.client_id).first()
    dues = (episode.dues.exclude(state=DueState.CANCELLED).select_related("instrument", "session")
            .order_by("-due_at")[:DUES_SHOWN])
    return {
        "episode": episode, "plan": plan, "own": plan is not None and plan.episode_id == episode.pk,
        "instruments": list(plan.instruments.values_list("name", flat=True)) if plan else [],
        "dues": list(dues), "opted_out": bool(contact and contact.opted_out_at),
        "can_treat": can_treat,
    }
