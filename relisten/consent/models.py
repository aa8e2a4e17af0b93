"""Per-client, per-purpose consent as an append-only history of decisions.

The current state of a purpose is simply the latest decision, so a revocation is a new row and
takes effect the moment it commits; nothing is ever overwritten.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.accounts.models import Clinic
from relisten.clients.models import Client


class Purpose(models.TextChoices):
    AUDIO_RECORDING = "audio_recording", "Audio recording of sessions"
    VIDEO_RECORDING = "video_recording", "Video recording of sessions"
    TRANSCRIPTION = "transcription", "Transcription of recordings"
    SUPERVISION_REVIEW = "supervision_review", "Review by a clinical supervisor"
    CLIENT_ACCESS = "client_access", "Client access to own recordings"
    AUTOMATED_ANALYSIS = "automated_analysis", "Automated analysis"
    TEACHING = "teaching", "Use in teaching"
    RESEARCH = "research", "Use in research"


class Method(models.TextChoices):
    CLIENT_ONLINE = "client_online", "Client, in their own account"
    PAPER_ATTESTED = "paper_attested", "Therapist attested a signed paper form"


class ConsentText(models.Model):
    """The wording shown for one purpose; editing makes a new version, old ones stay."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="consent_texts")
    purpose = models.CharField(max_length=40, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    body = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["purpose", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "purpose", "version"], name="one_consent_text_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.version}"


class ConsentDecision(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="consent_decisions")
    purpose = models.CharField(max_length=40, choices=Purpose.choices)
    granted = models.BooleanField()
    text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="decisions")
    method = models.CharField(max_length=20, choices=Method.choices)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        # Insertion order, as is_allowed() uses: a clock step must not reorder history.
        ordering = ["-id"]
        indexes = [models.Index(fields=["client", "purpose", "-recorded_at"])]

    def __str__(self) -> str:
        return f"{self.purpose}: {'granted' if self.granted else 'refused'}"
