"""Transcripts of recordings, made locally, with who-said-what and correction history.

Segment and word text is clinical content: it never goes into logs, task arguments, audit rows
or error messages. A run's `error` holds plain words about *what* failed, never *what was said*.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.recordings.models import Recording


class RunState(models.TextChoices):
    QUEUED = "queued", "Waiting"
    RUNNING = "running", "Transcribing"
    DONE = "done", "Done"
    NO_SPEECH = "no_speech", "No speech detected"
    FAILED = "failed", "Failed"


class TranscriptRun(models.Model):
    """One attempt to transcribe a recording: the status row the UI and API show."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="runs")
    state = models.CharField(max_length=12, choices=RunState.choices, default=RunState.QUEUED,
                             db_index=True)
    step = models.CharField(max_length=40, blank=True)
    progress = models.FloatField(default=0.0, help_text="0-100")
    step_timings = models.JSONField(default=dict, blank=True, help_text="step -> seconds")
    error = models.CharField(max_length=300, blank=True, help_text="plain words, no content")
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.public_id} ({self.state})"


class Transcript(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # One transcript per recording, enforced by the database: a re-run after a killed worker
    # replaces it inside one transaction instead of adding a second.
    recording = models.OneToOneField(Recording, on_delete=models.CASCADE,
                                     related_name="transcript")
    language = models.CharField(max_length=10, blank=True)
    duration_s = models.FloatField(default=0.0)
    model_name = models.CharField(max_length=200, blank=True)
    speaker_source = models.CharField(max_length=20, blank=True,
                                      help_text="diarized, stereo, single or pyannote")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Transcript {self.public_id}"


class Speaker(models.Model):
    class Role(models.TextChoices):
        THERAPIST = "therapist", "Therapist"
        CLIENT = "client", "Client"
        OTHER = "other", "Other"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    transcript = models.ForeignKey(Transcript, on_delete=models.CASCADE, related_name="speakers")
    label = models.CharField(max_length=20, help_text="diarization label, e.g. S1")
    name = models.CharField(max_length=60, help_text="shown everywhere, editable")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.OTHER)

    class Meta:
        ordering = ["label"]
        constraints = [models.UniqueConstraint(fields=["transcript", "label"],
                                               name="one_speaker_label_per_transcript")]

    def __str__(self) -> str:
        return f"Speaker {self.label}"


class Segment(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    transcript = models.ForeignKey(Transcript, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveIntegerField()
    speaker = models.ForeignKey(Speaker, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="segments")
    start = models.FloatField()
    end = models.FloatField()
    text = models.TextField()

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["transcript", "index"],
                                               name="one_segment_index_per_transcript")]

    def __str__(self) -> str:
        return f"Segment {self.index}"


class Word(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="words")
    index = models.PositiveIntegerField()
    start = models.FloatField()
    end = models.FloatField()
    text = models.CharField(max_length=200)
    probability = models.FloatField()

    class Meta:
        ordering = ["index"]

    def __str__(self) -> str:
        return f"Word {self.index}"


class Correction(models.Model):
    """Every edit of a segment's text or speaker, so the machine's version is never lost."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="corrections")
    field = models.CharField(max_length=20, help_text="text or speaker")
    old_value = models.TextField()
    new_value = models.TextField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"Correction of {self.field}"


class VoiceEnrolment(models.Model):
    """A therapist's ~30 s voice sample, encrypted in the vault, and its sealed embedding."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="voice_enrolment")
    wrapped_key = models.BinaryField(null=True, blank=True)
    kek_version = models.PositiveIntegerField(null=True, blank=True)
    object_name = models.CharField(max_length=200, blank=True)
    embedding_sealed = models.BinaryField(default=b"")
    duration_s = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Voice enrolment {self.public_id}"
