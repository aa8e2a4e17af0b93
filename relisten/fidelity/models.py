"""Manual-based fidelity rating: scales as data, ratings of recorded sessions, evidence.

A scale's definition is the validated document (see relisten/lib/fidelity/scale.py) stored as
JSON; every edit makes a new version, and a rating points at the exact version it used, so old
ratings keep their meaning. Ratings are the fidelity results later analyses relate to the same
clients' outcomes (session → episode → client).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.accounts.models import Clinic
from relisten.clients.models import TherapySession
from relisten.recordings.models import Recording


class Scale(models.Model):
    """One version of a rating scale. `clinic` NULL: shipped with Relisten, offered everywhere."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="scales")
    slug = models.SlugField(max_length=80, help_text="stable across versions, e.g. miti-4.2.1")
    version = models.PositiveIntegerField(help_text="1, 2, … within clinic and slug")
    name = models.CharField(max_length=200)
    definition = models.JSONField(help_text="the validated scale document")
    source_sha256 = models.CharField(max_length=64, help_text="of the imported file")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    retired = models.BooleanField(default=False, help_text="not offered for new ratings")

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "slug", "version"],
                                    name="scale_version_per_clinic"),
            models.UniqueConstraint(fields=["slug", "version"], condition=models.Q(clinic=None),
                                    name="shipped_scale_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class RaterRole(models.TextChoices):
    SELF = "self", "Self-rating by the session's therapist"
    SUPERVISOR = "supervisor", "Supervisor"
    PEER = "peer", "Peer or trained rater"
    REFERENCE = "reference", "Reference rating (for calibration)"


class RatingState(models.TextChoices):
    DRAFT = "draft", "In progress"
    COMPLETE = "complete", "Complete"


class Rating(models.Model):
    """One rater's rating of one session on one scale version.

    `answers` maps item id → value (Likert point, yes = 1 / no = 0, or a behaviour count); it is
    saved as the rater goes (autosave). `scores` holds what the scale's formulas computed when
    the rating was completed (totals, subscales, summary scores, thresholds met), and `total` the
    scale's main score for quick queries and charts.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(TherapySession, on_delete=models.PROTECT, related_name="ratings")
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="ratings", help_text="what evidence times refer to")
    scale = models.ForeignKey(Scale, on_delete=models.PROTECT, related_name="ratings")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="ratings_given")
    role = models.CharField(max_length=12, choices=RaterRole.choices)
    state = models.CharField(max_length=10, choices=RatingState.choices,
                             default=RatingState.DRAFT)
    answers = models.JSONField(default=dict, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    total = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["session", "scale", "rater"],
                                    name="one_rating_per_rater_scale_session"),
        ]

    def __str__(self) -> str:
        return f"rating {self.public_id}"


class Evidence(models.Model):
    """Where in the recording an item's rating is grounded: a moment or range, or a comment."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    rating = models.ForeignKey(Rating, on_delete=models.CASCADE, related_name="evidence")
    item = models.CharField(max_length=80, help_text="the scale item's id")
    start = models.FloatField()
    end = models.FloatField(null=True, blank=True)
    comment = models.ForeignKey("review.Comment", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="evidence_for")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__isnull=True) | models.Q(end__gte=models.F("start")),
                name="evidence_range_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"evidence {self.public_id}"
