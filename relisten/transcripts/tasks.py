"""Background jobs of transcription. Arguments are ids only (relisten/core/jobs.py)."""

from __future__ import annotations

from django_tasks import task

from relisten.transcripts import pipeline


@task()
def transcribe_recording(run_id: str) -> str:
    """Run one TranscriptRun through every step; idempotent (a finished run is skipped)."""
    return pipeline.execute(run_id)


@task()
def requeue_stale_runs() -> int:
    """Queue again runs whose worker died mid-job; returns how many."""
    return len(pipeline.requeue_stale_runs())
