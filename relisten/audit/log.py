"""Appending to the audit trail. Called by action functions inside their transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import models, transaction
from django.utils import timezone

from relisten.audit.keys import audit_key
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.hashchain import GENESIS, link_mac

if TYPE_CHECKING:
    from relisten.accounts.models import User

# Field names whose *values* are clinical or identifying text. Audit rows outlive the records
# they describe and are read by operators, so a caller that tries to log one is a bug: fail
# loudly in development rather than leak quietly in production. Callers list changed field
# names instead (e.g. {"changed_fields": ["family_name"]}).
CLINICAL_KEYS = frozenset({
    "given_name", "family_name", "full_name", "date_of_birth", "dob", "reference",
    "note", "notes", "text", "body", "transcript", "comment", "answer", "answers",
})


def _public_id(obj: object | None) -> UUID | None:
    value = getattr(obj, "public_id", None) if obj is not None else None
    return value if isinstance(value, UUID) else None


def _clinical_keys(changes: Mapping[str, Any]) -> set[str]:
    found = {key for key in changes if key in CLINICAL_KEYS}
    for value in changes.values():
        if isinstance(value, Mapping):
            found |= _clinical_keys(value)
    return found


def _actor_label(actor: User | None) -> str:
    """A readable name for who acted, except for clients.

    A client's username is often their own name, and being a client of a psychotherapy clinic
    is itself sensitive, so their rows say only "client"; actor_id still identifies them.
    """
    if actor is None:
        return "system"
    if actor.client_records.exists():
        return "client"
    return actor.get_username()


def record_event(
    *,
    actor: User | None,
    event_type: str,
    target: models.Model | None = None,
    client: models.Model | None = None,
    clinic: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    actor_role: str = "",
) -> AuditEvent:
    """Append one event; must run inside the transaction that made the change it describes.

    If that transaction rolls back, this row and the head update roll back with it, so the
    log never claims a change that did not happen.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must be called inside transaction.atomic()")
    changes = dict(changes or {})
    leaked = _clinical_keys(changes)
    if leaked:
        raise ValueError(f"audit changes must not hold clinical values: {sorted(leaked)}")
    if actor is not None and not actor.is_authenticated:
        actor = None  # an anonymous visitor is recorded as no one, not as a user
    # Locking the head row serialises appends (PostgreSQL); SQLite's IMMEDIATE transactions
    # already allow only one writer at a time.
    head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1, defaults={"mac": GENESIS})
    event = AuditEvent(
        seq=head.seq + 1,
        at=timezone.now(),
        actor_id=_public_id(actor),
        actor_label=_actor_label(actor),
        actor_role=actor_role,
        clinic_id=_public_id(clinic),
        client_id=_public_id(client),
        event_type=event_type,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(_public_id(target) or "") if target is not None else "",
        changes=changes,
        previous_mac=head.mac,
    )
    event.mac = link_mac(audit_key(), head.mac, event.chain_payload())
    event.save()
    head.seq = event.seq
    head.mac = event.mac
    head.save(update_fields=["seq", "mac"])
    return event


def record_event_now(**kwargs: Any) -> AuditEvent:
    """For reads and denials, which have no transaction of their own."""
    with transaction.atomic():
        return record_event(**kwargs)


def record_read(*, actor: User, client: models.Model, target: models.Model, role: str) -> None:
    """Every look at a client's clinical record leaves a row the client can later see."""
    record_event_now(
        actor=actor, event_type="record.viewed", target=target, client=client,
        clinic=getattr(client, "clinic", None), actor_role=role,
    )
