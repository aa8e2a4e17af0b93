"""Background jobs of the recordings vault. Arguments are ids only (relisten/core/jobs.py)."""

from __future__ import annotations

from django_tasks import task

from relisten.recordings import actions


@task()
def finalize_recording(recording_id: str) -> None:
    """Check, probe, store and publish a RECEIVED recording (idempotent)."""
    actions.finalize_upload(recording_id)


@task()
def collect_expired_uploads() -> None:
    """Remove expired and abandoned uploads and failed recordings' leftovers."""
    actions.collect_expired_uploads()
