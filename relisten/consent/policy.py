"""The one answer to "is purpose P allowed for client C now?" Every feature must ask here.

The current state of a purpose is the latest decision *by insertion order* (the row id), not by
its timestamp: a clock stepping backwards must never let an older grant outrank a withdrawal.
Nothing is cached, so a withdrawal applies to the very next question, in the same request.
"""

from __future__ import annotations

from relisten.clients.models import Client
from relisten.consent.models import ConsentDecision, ConsentText, Purpose


def check_purpose(purpose: Purpose | str) -> str:
    """The purpose as a plain string, or ValueError for a purpose nobody defined."""
    if purpose not in Purpose.values:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    return str(purpose)


def latest_decision(client: Client, purpose: Purpose | str) -> ConsentDecision | None:
    return (
        ConsentDecision.objects.filter(client=client, purpose=check_purpose(purpose))
        .order_by("-id")
        .select_related("text", "recorded_by")
        .first()
    )


def is_allowed(client: Client, purpose: Purpose | str) -> bool:
    """True only if the latest decision for this purpose is a grant; no decision means no."""
    decision = latest_decision(client, purpose)
    return decision is not None and decision.granted


def current_status(client: Client) -> dict[str, ConsentDecision | None]:
    """Latest decision per purpose, in the order purposes are listed everywhere."""
    status: dict[str, ConsentDecision | None] = {purpose: None for purpose in Purpose.values}
    for decision in (
        ConsentDecision.objects.filter(client=client).order_by("id").select_related("text",
                                                                                    "recorded_by")
    ):
        status[decision.purpose] = decision  # later rows overwrite earlier ones
    return status


def current_text(clinic_id: int, purpose: Purpose | str) -> ConsentText:
    """The wording a client is shown now for this purpose at this clinic (highest version)."""
    text = (
        ConsentText.objects.filter(clinic_id=clinic_id, purpose=check_purpose(purpose))
        .order_by("-version")
        .first()
    )
    if text is None:
        raise ConsentText.DoesNotExist(f"clinic has no consent text for {purpose}")
    return text
