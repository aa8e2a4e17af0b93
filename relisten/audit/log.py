"""Appending to the audit trail. Called by action functions inside their transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import models, transaction
from django.utils import timezone

from relisten.audit.keys import audit_key
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.hashchain import GENESIS, link_mac

if TYPE_CHECKING:
    from relisten.accounts.models import User


def _public_id(obj: models.Model | None) -> UUID | None:
    return getattr(obj, "public_id", None) if obj is not None else None


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
    """Append one event; must run inside the transaction that made the change it describes."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must be called inside transaction.atomic()")
    head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1, defaults={"mac": GENESIS})
    event = AuditEvent(
        seq=head.seq + 1,
        at=timezone.now(),
        actor_id=_public_id(actor),
        actor_label=actor.get_username() if actor is not None else "system",
        actor_role=actor_role,
        clinic_id=_public_id(clinic),
        client_id=_public_id(client),
        event_type=event_type,
        target_type=target._meta.model_name or "" if target is not None else "",
        target_id=str(_public_id(target) or "") if target is not None else "",
        changes=changes or {},
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
