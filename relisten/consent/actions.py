"""Writes to consent: each saves and audits in one transaction.

A decision records which version of the wording was shown, who recorded it, when and how
(the client online, or a therapist attesting a signed paper form). Decisions are never edited:
a withdrawal is a new refusal, which is_allowed() sees as soon as it commits.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event
from relisten.clients.models import Client
from relisten.consent.defaults import DEFAULT_TEXTS
from relisten.consent.models import ConsentDecision, ConsentText, Method, Purpose
from relisten.consent.policy import check_purpose, current_text, is_allowed


class StaleConsentText(ValueError):
    """The wording shown is no longer the current version; the person must read the new one."""


def _event_type(*, granted: bool, was_allowed: bool) -> str:
    if granted:
        return "consent.granted"
    return "consent.revoked" if was_allowed else "consent.refused"


def create_default_texts(clinic: Clinic, actor: User | None) -> None:
    """Version 1 of every purpose's wording; called inside the clinic's creation (audited there)."""
    for purpose in Purpose.values:
        ConsentText.objects.create(
            clinic=clinic, purpose=purpose, version=1, body=DEFAULT_TEXTS[purpose], created_by=actor
        )


def publish_consent_text(*, actor: User, clinic: Clinic, purpose: str, body: str) -> ConsentText:
    """A new version; decisions already made keep pointing at the wording that was shown."""
    purpose = check_purpose(purpose)
    body = body.strip()
    if not body:
        raise ValueError("Consent wording cannot be empty.")
    with transaction.atomic():
        previous = current_text(clinic.pk, purpose)
        text = ConsentText.objects.create(
            clinic=clinic, purpose=purpose, version=previous.version + 1, body=body,
            created_by=actor,
        )
        record_event(
            actor=actor, event_type="consent_text.published", target=text, clinic=clinic,
            changes={"purpose": purpose, "old_version": previous.version,
                     "new_version": text.version},
        )
    return text


def _check_method(actor: User, client: Client, method: str) -> None:
    if method not in Method.values:
        raise ValueError(f"unknown consent method {method!r}")
    is_the_client = client.user_id is not None and client.user_id == actor.pk
    if method == Method.CLIENT_ONLINE and not is_the_client:
        raise ValueError("Only the client, signed in to their own account, can decide online.")
    if method == Method.PAPER_ATTESTED and is_the_client:
        raise ValueError("A paper form is attested by a member of staff, not by the client.")


def record_decision(
    *, actor: User, client: Client, purpose: str, granted: bool, method: str, text: ConsentText
) -> ConsentDecision:
    """Record a grant or refusal against the wording that was shown (which must be current)."""
    purpose = check_purpose(purpose)
    _check_method(actor, client, method)
    if text.clinic_id != client.clinic_id or text.purpose != purpose:
        raise ValueError("consent text does not belong to this clinic and purpose")
    with transaction.atomic():
        # Checked inside the transaction: wording published a moment ago must be read first.
        if current_text(client.clinic_id, purpose).pk != text.pk:
            raise StaleConsentText("The consent wording has changed; the new version must be "
                                   "shown before a decision is recorded.")
        was_allowed = is_allowed(client, purpose)
        decision = ConsentDecision.objects.create(
            client=client, purpose=purpose, granted=granted, method=method, text=text,
            recorded_by=actor, recorded_at=timezone.now(),
        )
        record_event(
            actor=actor,
            event_type=_event_type(granted=granted, was_allowed=was_allowed),
            target=decision, client=client, clinic=client.clinic,
            changes={"purpose": purpose, "granted": granted, "method": method,
                     "text_version": text.version},
        )
    return decision


def revoke(*, actor: User, client: Client, purpose: str, method: str) -> ConsentDecision:
    """Withdrawal is a refusal recorded now: is_allowed() answers False as soon as it commits."""
    with transaction.atomic():
        return record_decision(
            actor=actor, client=client, purpose=purpose, granted=False, method=method,
            text=current_text(client.clinic_id, purpose),
        )
