"""What other apps call when something transcription cares about happens.

`recording_ready` runs after the transaction that made a recording READY commits
(relisten/recordings/actions.py: finalize_upload). It must never break finalisation, so it
refuses quietly: no consent for transcription, or a recording that is not READY, simply
means no run is queued (the session page offers to start one once consent is recorded).
"""

from __future__ import annotations

import logging
import uuid

from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.recordings.models import Recording, State
from relisten.transcripts.models import TranscriptRun

logger = logging.getLogger(__name__)


def recording_ready(recording_id: str | uuid.UUID) -> TranscriptRun | None:
    """Queue the transcription of a newly READY recording if its client agreed to it."""
    from relisten.transcripts.actions import TranscriptionRefused, start_transcription

    recording = (Recording.objects.select_related("session__episode__client")
                 .filter(public_id=recording_id).first())
    if recording is None or recording.state != State.READY:
        return None
    if not is_allowed(recording.session.episode.client, Purpose.TRANSCRIPTION):
        return None
    try:
        return start_transcription(actor=None, recording=recording)
    except TranscriptionRefused:
        return None  # consent withdrawn or recording erased a moment ago
