"""The audit trail: append-only rows chained by HMAC (see relisten.lib.hashchain).

Rows hold public ids, not foreign keys, so erasing a recording or a person later never has to
touch (and so break) the chain. Values recorded here must never include clinical text.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True)
    at = models.DateTimeField()
    actor_id = models.UUIDField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    actor_role = models.CharField(max_length=60, blank=True)
    clinic_id = models.UUIDField(null=True, blank=True, db_index=True)
    client_id = models.UUIDField(null=True, blank=True, db_index=True)
    event_type = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    previous_mac = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type}"

    # The database triggers (migration 0002) are the real guard; these stop ORM slips early.
    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("audit events are append-only")

    def chain_payload(self) -> dict[str, Any]:
        """The fields the MAC covers, in a form that survives a database round trip."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(timespec="microseconds"),
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "actor_label": self.actor_label,
            "actor_role": self.actor_role,
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            "client_id": str(self.client_id) if self.client_id else None,
            "event_type": self.event_type,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "changes": self.changes,
        }


class AuditHead(models.Model):
    """One row holding the chain's tip; locking it serialises appends on PostgreSQL."""

    seq = models.BigIntegerField(default=0)
    mac = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit tip at row {self.seq}"
