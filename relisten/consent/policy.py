"""The one answer to "is purpose P allowed for client C now?" Every feature must ask here."""

from __future__ import annotations

from relisten.clients.models import Client
from relisten.consent.models import ConsentDecision, ConsentText, Purpose


def latest_decision(client: Client, purpose: Purpose | str) -> ConsentDecision | None:
    return (
        ConsentDecision.objects.filter(client=client, purpose=purpose)
        .order_by("-recorded_at", "-id")
        .select_related("text", "recorded_by")
        .first()
    )


def is_allowed(client: Client, purpose: Purpose | str) -> bool:
    """True only if the latest decision for this purpose is a grant; no decision means no."""
    if purpose not in Purpose.values:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    decision = latest_decision(client, purpose)
    return decision is not None and decision.granted


def current_status(client: Client) -> dict[str, ConsentDecision | None]:
    """Latest decision per purpose, in the order purposes are listed everywhere."""
    status: dict[str, ConsentDecision | None] = {purpose: None for purpose in Purpose.values}
    for decision in (
        ConsentDecision.objects.filter(client=client)
        .order_by("recorded_at", "id")
        .select_related("text", "recorded_by")
    ):
        status[decision.purpose] = decision
    return status


def current_text(clinic_id: int, purpose: str) -> ConsentText:
    text = (
        ConsentText.objects.filter(clinic_id=clinic_id, purpose=purpose).order_by("-version").first()
    )
    if text is None:
        raise ConsentText.DoesNotExist(f"clinic has no consent text for {purpose}")
    return text
