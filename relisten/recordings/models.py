"""Recordings of therapy sessions, stored encrypted (see docs/vault-format.md).

A recording is visible (state READY) only after its upload completed, its SHA-256 was checked,
its media probed and its encrypted object stored; until then it is invisible to everyone.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.accounts.models import Clinic
from relisten.clients.models import TherapySession


class Kind(models.TextChoices):
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Audio and video"


class State(models.TextChoices):
    UPLOADING = "uploading", "Uploading"
    RECEIVED = "received", "Received, being checked"
    READY = "ready", "Ready"
    FAILED = "failed", "Could not be used"
    ERASED = "erased", "Erased"


class Recording(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(TherapySession, on_delete=models.PROTECT,
                                related_name="recordings")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.UPLOADING,
                             db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    # Crypto: the data key wrapped by KEK `kek_version`, AAD = public_id. NULL once erased
    # (crypto-shredding: without it no backup of the object can be decrypted).
    wrapped_key = models.BinaryField(null=True, blank=True)
    kek_version = models.PositiveIntegerField(null=True, blank=True)
    object_name = models.CharField(max_length=200, blank=True)
    ciphertext_size = models.BigIntegerField(null=True, blank=True)
    # What the media is (filled in by the probe); no file names: they often hold client names.
    size = models.BigIntegerField(null=True, blank=True, help_text="plaintext bytes")
    sha256 = models.CharField(max_length=64, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    container = models.CharField(max_length=100, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    audio_codec = models.CharField(max_length=50, blank=True)
    video_codec = models.CharField(max_length=50, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    remuxed = models.BooleanField(default=False)
    failure = models.CharField(max_length=300, blank=True, help_text="plain words, no content")
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Recording {self.public_id} ({self.state})"


class Upload(models.Model):
    """tus upload state. Offset and the sealed pending tail commit together with the staged
    ciphertext length, so a crash between appending and committing is undone on the next
    request by truncating the staging file back to `staged_size`."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    recording = models.OneToOneField(Recording, on_delete=models.CASCADE, related_name="upload")
    length = models.BigIntegerField(null=True, blank=True, help_text="NULL while deferred")
    offset = models.BigIntegerField(default=0, help_text="plaintext bytes acknowledged")
    staged_size = models.BigIntegerField(default=0, help_text="ciphertext bytes committed")
    next_counter = models.BigIntegerField(default=0)
    pending_sealed = models.BinaryField(default=b"")
    expected_sha256 = models.CharField(max_length=64, blank=True)
    header = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"Upload {self.public_id} at {self.offset}"


class RetentionRule(models.Model):
    """Per clinic: delete recordings of a kind N days after the session or after discharge."""

    class Anchor(models.TextChoices):
        SESSION = "session", "after the session"
        DISCHARGE = "discharge", "after discharge"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="retention_rules")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    anchor = models.CharField(max_length=10, choices=Anchor.choices)
    days = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "kind"], name="one_retention_rule_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.days} days {self.anchor}"
