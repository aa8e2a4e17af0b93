"""Time-stamped comments on a recording: the supervisor's remark at 12:40, the therapist's note
to self, the client's bookmark. Each has a visibility scope; who may read which scope is decided
in relisten.access, nowhere else."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from relisten.recordings.models import Recording


class Scope(models.TextChoices):
    PRIVATE = "private", "Only me"
    CARE_TEAM = "care_team", "Care team (therapist, supervisor, trainee)"
    CLIENT = "client", "Shared with the client"


class Comment(models.Model):
    """A point (end is NULL) or range comment on a recording, or a reply in its thread.

    Replies carry their thread's scope and times, so a reply can never be seen by someone who
    cannot see the comment it answers.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Erasing the recording erases what was said about it.
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="comments")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="replies")
    start = models.FloatField(help_text="seconds from the start of the recording")
    end = models.FloatField(null=True, blank=True, help_text="NULL for a point comment")
    body = models.TextField()
    tags = models.JSONField(default=list, blank=True, help_text="short lowercase words")
    scope = models.CharField(max_length=12, choices=Scope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["start", "created_at"]
        indexes = [models.Index(fields=["recording", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__isnull=True) | models.Q(end__gte=models.F("start")),
                name="comment_range_ends_after_start",
            ),
            models.CheckConstraint(condition=models.Q(start__gte=0), name="comment_start_positive"),
        ]

    def __str__(self) -> str:
        return f"comment {self.public_id}"
