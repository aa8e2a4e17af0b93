"""Client records, episodes of care and the therapy sessions later features attach to."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.accounts.models import Clinic


class Client(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="clients")
    # The client's own sign-in, once the therapist has given portal access.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="client_records",
    )
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(null=True, blank=True)
    reference = models.CharField(
        max_length=50, blank=True, help_text="The clinic's own case number, if it uses one."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["family_name", "given_name"]

    def __str__(self) -> str:
        return f"{self.given_name} {self.family_name}"


class Episode(models.Model):
    """One course of treatment: an assigned therapist, maybe a supervisor, a start and an end."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="episodes")
    therapist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="episodes_as_therapist"
    )
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="episodes_as_supervisor",
    )
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start_date", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True)
                | models.Q(end_date__gte=models.F("start_date")),
                name="episode_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        # Ids only: str() may reach logs, and a client's name must not.
        return f"Episode {self.public_id}"

    @property
    def is_open(self) -> bool:
        return self.end_date is None


class Attendance(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ATTENDED = "attended", "Attended"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "Did not attend"


class Modality(models.TextChoices):
    IN_PERSON = "in_person", "In person"
    TELEHEALTH = "telehealth", "Telehealth"


class TherapySession(models.Model):
    """The unit recordings, transcripts, comments, ratings and questionnaires attach to."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="sessions")
    number = models.PositiveIntegerField()
    scheduled_at = models.DateTimeField()
    attendance = models.CharField(
        max_length=20, choices=Attendance.choices, default=Attendance.SCHEDULED
    )
    modality = models.CharField(max_length=20, choices=Modality.choices, default=Modality.IN_PERSON)
    # Sharing is the therapist's choice per session; what it opens is still decided by consent
    # (client access, supervision review) in relisten.access, so a share never outranks a "no".
    shared_with_client = models.BooleanField(
        default=False, help_text="The client may play it in their portal (with consent)."
    )
    shared_for_supervision = models.BooleanField(
        default=False, help_text="It is in the supervisor's review queue (with consent)."
    )
    # The supervisor's queue is oldest first by this, not by the session date.
    shared_for_supervision_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["episode", "number"], name="session_number_per_episode")
        ]

    def __str__(self) -> str:
        return f"Session {self.number}"
