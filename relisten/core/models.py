from __future__ import annotations

from django.db import models


class PeriodicRun(models.Model):
    """When each periodic job was last queued. The row is locked while deciding, so several
    workers (even on several machines) queue each job once per interval."""

    name = models.CharField(max_length=100, unique=True)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
