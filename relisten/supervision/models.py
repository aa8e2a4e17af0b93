"""Who supervises whom in a clinic, and a supervisor's sign-off of a reviewed session.

An assignment is the clinic's decision (its admins make and end it); it is what lets a
supervisor see a supervised episode at all (relisten.access). Ended assignments and reopened
sign-offs stay as rows, so the history of who could see what, and when, is kept.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from relisten.accounts.models import Clinic
from relisten.clients.models import TherapySession


class SupervisionAssignment(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="supervision_assignments"
    )
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
        related_name="supervision_assignments_given",
    )
    # A therapist or a trainee: whoever treats the episodes this supervisor is to see.
    supervisee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
        related_name="supervision_assignments_received",
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "supervisor", "supervisee"],
                condition=models.Q(ended_at__isnull=True),
                name="one_active_assignment_per_pair",
            ),
            models.CheckConstraint(
                condition=~models.Q(supervisor=models.F("supervisee")),
                name="assignment_not_to_oneself",
            ),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True)
                | models.Q(ended_at__gte=models.F("started_at")),
                name="assignment_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"Supervision assignment {self.public_id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class SessionSignOff(models.Model):
    """The supervisor's "I have reviewed this session". Reopening keeps the row, marked."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(
        TherapySession, on_delete=models.PROTECT, related_name="signoffs"
    )
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="session_signoffs"
    )
    signed_at = models.DateTimeField(default=timezone.now)
    # Feedback for the therapist: clinical text, shown only on the session page, never audited.
    note = models.TextField(blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True)
    reopened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-signed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session"], condition=models.Q(reopened_at__isnull=True),
                name="one_standing_signoff_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"Sign-off {self.public_id}"
