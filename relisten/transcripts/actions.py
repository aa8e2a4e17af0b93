"""Writes to transcripts, their runs and voice enrolments. Each saves and audits in one
transaction.

Audit rows never hold what was said, nor a speaker's name (a therapist may type the client's
name there): they say which fields of which object changed, and counts.

Runs are leased by attempt number. `claim_run` bumps `attempts`; every later write for that
run (progress, the saved transcript, the final state) is made only while the row still has
that attempt number and is RUNNING. A worker that lost its run (it was presumed dead and the
run queued again, or the recording was erased meanwhile) therefore cannot overwrite the
newer attempt's work: its writes match no row and it stops (`Superseded`).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from relisten.accounts.models import User
from relisten.audit.log import record_event
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.core.jobs import enqueue_on_commit
from relisten.lib.asr import types as asr
from relisten.lib.vault.keys import unwrap_key, wrap_key
from relisten.lib.vault.stream import Encryptor, Header, new_data_key, seal_blob
from relisten.recordings import vault
from relisten.recordings.models import Recording, State
from relisten.transcripts.models import (
    Correction,
    RunState,
    Segment,
    Speaker,
    Transcript,
    TranscriptRun,
    VoiceEnrolment,
    Word,
)

logger = logging.getLogger(__name__)

ACTIVE = (RunState.QUEUED, RunState.RUNNING)
FINISHED = (RunState.DONE, RunState.NO_SPEECH, RunState.FAILED)
MAX_ATTEMPTS = 3
NO_CONSENT = ("This client has not agreed to transcription (or has withdrawn that agreement), "
              "so the recording was not transcribed.")
ERASED = "The recording was erased, so it was not transcribed."
NOT_READY = "The recording is not ready to be transcribed yet."
GAVE_UP = ("The transcription worker stopped {n} times while working on this recording (it may "
           "be too long for this computer's memory). An administrator can check the worker's "
           "log, then start the transcription again.")


class Superseded(Exception):
    """This worker's attempt no longer owns the run; it must stop without writing."""


class TranscriptionRefused(Exception):
    """A transcription cannot start; `message` is for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EnrolmentRefused(Exception):
    """A voice sample cannot be used; `message` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _audit(actor: User | None, event_type: str, recording: Recording,
           target: models.Model | None, changes: dict[str, object]) -> None:
    client = recording.session.episode.client
    record_event(actor=actor, event_type=event_type, target=target, client=client,
                 clinic=client.clinic, changes=changes)


def _recording(recording_id: int) -> Recording:
    return Recording.objects.select_related("session__episode__client__clinic").get(
        pk=recording_id)


# ---- runs ------------------------------------------------------------------------------------

def _task() -> object:
    from relisten.transcripts.tasks import transcribe_recording

    return transcribe_recording


def start_transcription(*, actor: User | None, recording: Recording) -> TranscriptRun:
    """Queue a run for a READY recording whose client agreed to transcription.

    Idempotent: while a run of this recording is queued or running, that run is returned and
    nothing new is queued (a double click, or the READY hook firing twice)."""
    with transaction.atomic():
        locked = (Recording.objects.select_for_update()
                  .select_related("session__episode__client__clinic").get(pk=recording.pk))
        if locked.state != State.READY:
            raise TranscriptionRefused(NOT_READY)
        if not is_allowed(locked.session.episode.client, Purpose.TRANSCRIPTION):
            raise TranscriptionRefused(NO_CONSENT)
        active = TranscriptRun.objects.filter(recording=locked, state__in=ACTIVE).first()
        if active is not None:
            return active
        run = TranscriptRun.objects.create(recording=locked, heartbeat_at=timezone.now())
        _audit(actor, "transcript.run_queued", locked, run,
               {"recording": str(locked.public_id), "manual": actor is not None})
        enqueue_on_commit(_task(), run.public_id)
    return run


@dataclass(frozen=True)
class Claim:
    run: TranscriptRun
    attempt: int


def _is_stale(run: TranscriptRun, now: dt.datetime) -> bool:
    beat = run.heartbeat_at or run.started_at or run.created_at
    return (now - beat).total_seconds() > settings.TRANSCRIPT_STALE_S


def claim_run(run_id: str | uuid.UUID) -> Claim | None:
    """Take a queued run (or one whose worker died) for this worker, or None.

    None for a run that is finished (a task delivered twice) or RUNNING with a fresh heartbeat
    (another worker is on it)."""
    now = timezone.now()
    with transaction.atomic():
        run = (TranscriptRun.objects.select_for_update()
               .select_related("recording__session__episode__client__clinic")
               .filter(public_id=run_id).first())
        if run is None or run.state in FINISHED:
            return None
        if run.state == RunState.RUNNING and not _is_stale(run, now):
            return None
        run.state = RunState.RUNNING
        run.attempts += 1
        run.step = ""
        run.progress = 0.0
        run.step_timings = {}
        run.error = ""
        run.started_at = now
        run.heartbeat_at = now
        run.finished_at = None
        run.save()
        _audit(None, "transcript.run_started", run.recording, run, {"attempt": run.attempts})
    return Claim(run=run, attempt=run.attempts)


def record_progress(claim: Claim, *, step: str, progress: float,
                    timings: dict[str, float] | None = None) -> None:
    """Current step, progress % and heartbeat (and the timings so far). Not audited: progress
    is not a change to anyone's record. Raises Superseded if this attempt lost the run."""
    fields: dict[str, object] = {"step": step, "progress": round(min(100.0, progress), 1),
                                 "heartbeat_at": timezone.now()}
    if timings is not None:
        fields["step_timings"] = {name: round(seconds, 3) for name, seconds in timings.items()}
    updated = TranscriptRun.objects.filter(
        pk=claim.run.pk, attempts=claim.attempt, state=RunState.RUNNING).update(**fields)
    if not updated:
        raise Superseded()


def heartbeat(claim: Claim) -> bool:
    """Refresh the heartbeat only; False once this attempt no longer owns the run."""
    return bool(TranscriptRun.objects.filter(
        pk=claim.run.pk, attempts=claim.attempt, state=RunState.RUNNING,
    ).update(heartbeat_at=timezone.now()))


def finish_run(claim: Claim, *, state: str, message: str = "",
               timings: dict[str, float] | None = None) -> TranscriptRun | None:
    """End a run without a saved transcript: NO_SPEECH or FAILED, with plain words."""
    with transaction.atomic():
        run = (TranscriptRun.objects.select_for_update()
               .select_related("recording__session__episode__client__clinic")
               .filter(pk=claim.run.pk, attempts=claim.attempt, state=RunState.RUNNING).first())
        if run is None:
            return None
        run.state = state
        run.error = message[:300]
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        if timings is not None:
            run.step_timings = {name: round(seconds, 3) for name, seconds in timings.items()}
        if state == RunState.NO_SPEECH:
            run.progress = 100.0
        run.save()
        _audit(None, "transcript.run_finished", run.recording, run,
               {"state": state, "step": run.step, "attempt": run.attempts})
    return run


def _orphan_task_rows(run: TranscriptRun) -> None:
    """The database backend's own result rows for this run that a killed worker left RUNNING:
    mark them failed, so nothing (an admin page, a pruning job) takes them for live work."""
    if settings.TASKS_BACKEND != "database":
        return
    from django_tasks_db.models import DBTaskResult

    from relisten.transcripts.tasks import transcribe_recording

    DBTaskResult.objects.filter(
        status="RUNNING", task_path=transcribe_recording.module_path,
        args_kwargs__args__0=str(run.public_id),
    ).update(status="FAILED", finished_at=timezone.now(),
             exception_class_path="relisten.transcripts.actions.WorkerLost",
             traceback="The worker stopped while running this task; the run was queued again.")


def requeue_run(run_id: int) -> TranscriptRun | None:
    """Queue again a run whose worker died (stale heartbeat), or fail it after MAX_ATTEMPTS.

    Re-checks staleness under the row lock, so a run that came back to life meanwhile is
    left alone. The run starts again from the first step: every step is a pure function of
    the recording, and only the last one writes."""
    now = timezone.now()
    with transaction.atomic():
        run = (TranscriptRun.objects.select_for_update()
               .select_related("recording__session__episode__client__clinic")
               .filter(pk=run_id).first())
        if run is None or run.state not in ACTIVE or not _is_stale(run, now):
            return None
        _orphan_task_rows(run)
        if run.attempts >= MAX_ATTEMPTS:
            run.state = RunState.FAILED
            run.error = GAVE_UP.format(n=run.attempts)
            run.finished_at = now
            run.save()
            _audit(None, "transcript.run_finished", run.recording, run,
                   {"state": run.state, "step": run.step, "attempt": run.attempts,
                    "reason": "worker_lost"})
            return run
        previous = run.state
        run.state = RunState.QUEUED
        run.step = ""
        run.progress = 0.0
        run.heartbeat_at = now  # for a QUEUED run: when it was last queued
        run.save()
        _audit(None, "transcript.run_requeued", run.recording, run,
               {"attempts": run.attempts, "previous_state": previous})
        enqueue_on_commit(_task(), run.public_id)
    return run


def cancel_runs(recording: Recording, message: str) -> int:
    """Fail the recording's queued and running runs (call inside the caller's transaction);
    a worker still busy with one finds its lease gone at its next write."""
    return TranscriptRun.objects.filter(recording=recording, state__in=ACTIVE).update(
        state=RunState.FAILED, error=message[:300], finished_at=timezone.now())


# ---- saving a transcript ---------------------------------------------------------------------

class SaveRefused(Exception):
    """The transcript cannot be saved (the recording went, or consent did); plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


ROLE_FOR_NAME = {"Therapist": Speaker.Role.THERAPIST}


def _role(name: str) -> str:
    if name in ROLE_FOR_NAME:
        return ROLE_FOR_NAME[name]
    return Speaker.Role.CLIENT if name.startswith("Client") else Speaker.Role.OTHER


def _delete_transcript(transcript: Transcript) -> None:
    """Remove a transcript, its rows and its search index entries (inside a transaction)."""
    try:
        from relisten.transcripts import search
    except ImportError:  # search not installed: nothing indexed
        search = None  # type: ignore[assignment]
    if search is not None:
        search.unindex_transcript(transcript)
    transcript.delete()  # cascades to speakers, segments, words, corrections


def _index(transcript: Transcript) -> None:
    """The one call site for search indexing (SQLite triggers also keep it in step)."""
    try:
        from relisten.transcripts import search
    except ImportError:
        return
    search.index_transcript(transcript)


def save_transcript(claim: Claim, *, result: asr.Transcript, speakers: dict[str, str],
                    speaker_source: str, model_name: str,
                    timings: dict[str, float]) -> Transcript:
    """Store the result and finish the run as DONE, in one transaction.

    `speakers` maps diarization labels to display names ({"S1": "Therapist"}); segments carry
    a display name (or None). A previous transcript of the recording is replaced, never kept
    beside the new one (Transcript is one-to-one with Recording)."""
    with transaction.atomic():
        run = (TranscriptRun.objects.select_for_update()
               .filter(pk=claim.run.pk, attempts=claim.attempt, state=RunState.RUNNING).first())
        if run is None:
            raise Superseded()
        recording = (Recording.objects.select_for_update()
                     .select_related("session__episode__client__clinic")
                     .get(pk=claim.run.recording_id))
        if recording.state != State.READY:
            raise SaveRefused(ERASED)
        if not is_allowed(recording.session.episode.client, Purpose.TRANSCRIPTION):
            raise SaveRefused(NO_CONSENT)
        previous = Transcript.objects.filter(recording=recording).first()
        if previous is not None:
            _delete_transcript(previous)
        transcript = Transcript.objects.create(
            recording=recording, language=result.language[:10], duration_s=result.duration_s,
            model_name=model_name[:200], speaker_source=speaker_source[:20])
        rows = _store_rows(transcript, result.segments, speakers)
        _index(transcript)
        run.state = RunState.DONE
        run.step = ""
        run.progress = 100.0
        run.error = ""
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        run.step_timings = {name: round(seconds, 3) for name, seconds in timings.items()}
        run.save()
        _audit(None, "transcript.saved", recording, transcript,
               {"run": str(run.public_id), "segments": rows[0], "words": rows[1],
                "speakers": rows[2], "speaker_source": speaker_source,
                "replaced": previous is not None})
    return transcript


def _store_rows(transcript: Transcript, segments: Sequence[asr.Segment],
                names: dict[str, str]) -> tuple[int, int, int]:
    used = {segment.speaker for segment in segments if segment.speaker}
    speakers: dict[str, Speaker] = {}
    for label, name in sorted(names.items()):
        if name in used and name not in speakers:
            speakers[name] = Speaker(transcript=transcript, label=label[:20], name=name[:60],
                                     role=_role(name))
    for extra, name in enumerate(sorted(used - set(speakers)), start=len(speakers) + 1):
        # A name the labels did not list (should not happen): still one row per voice.
        speakers[name] = Speaker(transcript=transcript, label=f"X{extra}", name=name[:60],
                                 role=_role(name))
    Speaker.objects.bulk_create(speakers.values())
    rows = Segment.objects.bulk_create(
        Segment(transcript=transcript, index=index, start=seg.start, end=seg.end,
                text=seg.text, speaker=speakers.get(seg.speaker or ""))
        for index, seg in enumerate(segments))
    words = [Word(segment=row, index=index, start=word.start, end=word.end,
                  text=word.text[:200], probability=word.probability)
             for row, seg in zip(rows, segments, strict=True)
             for index, word in enumerate(seg.words)]
    Word.objects.bulk_create(words, batch_size=2000)
    return len(rows), len(words), len(speakers)


# ---- edits -----------------------------------------------------------------------------------

def _segment_audit(actor: User, event: str, segment: Segment, fields: list[str]) -> None:
    transcript = segment.transcript
    _audit(actor, event, transcript.recording, transcript,
           {"segment": str(segment.public_id), "changed_fields": fields})


def _locked_segment(segment: Segment) -> Segment:
    # of=("self",): PostgreSQL cannot lock the nullable side (speaker) of the outer join.
    return (Segment.objects.select_for_update(of=("self",))
            .select_related("speaker", "transcript__recording__session__episode__client__clinic")
            .get(pk=segment.pk))


def correct_segment(*, actor: User, segment: Segment, text: str) -> Segment:
    """Replace a segment's text, keeping the previous text as a Correction."""
    text = text.strip()
    if not text:
        raise ValueError("A corrected segment cannot be empty.")
    with transaction.atomic():
        locked = _locked_segment(segment)
        if locked.text == text:
            return locked
        Correction.objects.create(segment=locked, field="text", old_value=locked.text,
                                  new_value=text, by=actor)
        locked.text = text
        locked.save(update_fields=["text"])  # the FTS trigger re-indexes it
        _segment_audit(actor, "transcript.corrected", locked, ["text"])
    return locked


def set_segment_speaker(*, actor: User, segment: Segment, speaker: Speaker | None) -> Segment:
    """Say who spoke a segment; the old and new speaker labels are kept as a Correction."""
    with transaction.atomic():
        locked = _locked_segment(segment)
        if speaker is not None and speaker.transcript_id != locked.transcript_id:
            raise ValueError("That speaker belongs to another transcript.")
        if locked.speaker_id == (speaker.pk if speaker else None):
            return locked
        old = locked.speaker.label if locked.speaker else ""
        Correction.objects.create(segment=locked, field="speaker", old_value=old,
                                  new_value=speaker.label if speaker else "", by=actor)
        locked.speaker = speaker
        locked.save(update_fields=["speaker"])
        _segment_audit(actor, "transcript.corrected", locked, ["speaker"])
    return locked


def rename_speaker(*, actor: User, speaker: Speaker, name: str,
                   role: str | None = None) -> Speaker:
    """Rename a speaker everywhere (and optionally set their role). The audit row says the
    name changed, never what it became: it may be the client's own name."""
    name = " ".join(name.split())
    if not name or len(name) > 60:
        raise ValueError("A speaker's name must be 1 to 60 characters.")
    if role is not None and role not in Speaker.Role.values:
        raise ValueError("Unknown speaker role.")
    with transaction.atomic():
        locked = (Speaker.objects.select_for_update()
                  .select_related("transcript__recording__session__episode__client__clinic")
                  .get(pk=speaker.pk))
        changed = [field for field, new in (("name", name), ("role", role))
                   if new is not None and getattr(locked, field) != new]
        if not changed:
            return locked
        locked.name = name
        if role is not None:
            locked.role = role
        locked.save(update_fields=changed)
        _audit(actor, "transcript.speaker_renamed", locked.transcript.recording,
               locked.transcript, {"speaker": str(locked.public_id), "changed_fields": changed})
    return locked


def erase_transcript(*, actor: User | None, recording: Recording,
                     reason: str = "requested") -> bool:
    """Delete the recording's transcript and its index rows, and stop its runs. Joins the
    caller's transaction (recordings.erasure calls it inside the erasure). True if one
    existed."""
    with transaction.atomic():
        cancel_runs(recording, ERASED)
        transcript = Transcript.objects.filter(recording=recording).first()
        if transcript is None:
            return False
        public_id = transcript.public_id
        _delete_transcript(transcript)
        _audit(actor, "transcript.erased", _recording(recording.pk), None,
               {"transcript_id": str(public_id), "reason": reason})
    return True


# ---- voice enrolment -------------------------------------------------------------------------

MIN_ENROLMENT_SPEECH_S = 10.0
MAX_ENROLMENT_BYTES = 50 * 1024 * 1024
ENROLMENT_TOO_SHORT = ("We heard only {seconds:.0f} seconds of speech. Please record about "
                       "30 seconds of yourself talking, in a quiet room.")
ENROLMENT_TOO_LARGE = "This file is too large for a voice sample. About 30 seconds is enough."


def enrolment_object_name(enrolment: VoiceEnrolment) -> str:
    return f"enrolments/{enrolment.public_id}.rlv"


def _embedding_context(enrolment: VoiceEnrolment) -> bytes:
    return f"voice-embedding:{enrolment.public_id}".encode()


def _store_encrypted(name: str, key: bytes, data: bytes) -> None:
    """Encrypt `data` in the recordings' format (docs/vault-format.md) and store it. Only
    ciphertext touches the disk (the staging file is deleted once stored)."""
    header = Header.new()
    encryptor = Encryptor(key, header)
    handle, staged = tempfile.mkstemp(prefix="enrolment-", suffix=".rlv",
                                      dir=settings.UPLOAD_DIR if Path(
                                          settings.UPLOAD_DIR).is_dir() else None)
    path = Path(staged)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(header.to_bytes())
            out.write(encryptor.update(data))
            out.write(encryptor.finish())
        vault.store().put_file(name, path)
    finally:
        path.unlink(missing_ok=True)


def enrol_voice(*, actor: User, audio_file: BinaryIO) -> VoiceEnrolment:
    """Store a therapist's voice sample (encrypted, own data key) and its sealed embedding;
    replaces an earlier enrolment. Their later sessions are labelled Therapist / Client."""
    from relisten.lib.asr.audio import SAMPLE_RATE, AudioError, decode_audio
    from relisten.lib.diarize.pipeline import speech_regions

    data = audio_file.read(MAX_ENROLMENT_BYTES + 1)
    if len(data) > MAX_ENROLMENT_BYTES:
        raise EnrolmentRefused(ENROLMENT_TOO_LARGE)
    try:
        audio = decode_audio(io.BytesIO(data))
    except AudioError as error:
        raise EnrolmentRefused(error.user_message) from None
    regions = speech_regions(audio, SAMPLE_RATE) if audio.size else []
    speech = sum(end - start for start, end in regions)
    if speech < MIN_ENROLMENT_SPEECH_S:
        raise EnrolmentRefused(ENROLMENT_TOO_SHORT.format(seconds=speech))
    embedding = _enrolment_embedding(audio, regions, SAMPLE_RATE)

    enrolment = VoiceEnrolment(user=actor, duration_s=round(audio.size / SAMPLE_RATE, 2))
    ring = vault.keyring()
    key = new_data_key()
    enrolment.wrapped_key = wrap_key(ring.keys[ring.active], key, str(enrolment.public_id))
    enrolment.kek_version = ring.active
    enrolment.object_name = enrolment_object_name(enrolment)
    enrolment.embedding_sealed = seal_blob(key, embedding.astype("<f4").tobytes(),
                                           _embedding_context(enrolment))
    # Files first, then the database: a crash in between leaves an unreferenced object.
    _store_encrypted(enrolment.object_name, key, data)
    with transaction.atomic():
        old = VoiceEnrolment.objects.select_for_update().filter(user=actor).first()
        old_name = old.object_name if old is not None else ""
        if old is not None:
            old.delete()
        enrolment.save()
        membership = actor.memberships.select_related("clinic").first()
        record_event(actor=actor, event_type="voice.enrolled", target=enrolment,
                     clinic=membership.clinic if membership is not None else None,
                     changes={"duration_s": enrolment.duration_s,
                              "speech_s": round(speech, 1), "replaced": old is not None})
        if old_name:
            transaction.on_commit(lambda: _delete_object(old_name))
    return enrolment


def _enrolment_embedding(audio: np.ndarray, regions: list[tuple[float, float]],
                         sample_rate: int) -> np.ndarray:
    """The voice print of the sample's speech only (pauses would pull it towards silence)."""
    from relisten.lib.diarize.pipeline import speaker_embedding
    from relisten.transcripts.pipeline import speaker_encoder

    embedding = speaker_embedding(audio, regions, speaker_encoder(), sample_rate)
    if embedding is None:
        raise EnrolmentRefused(ENROLMENT_TOO_SHORT.format(seconds=0))
    return np.asarray(embedding, dtype=np.float32)


def _delete_object(name: str) -> None:
    try:
        vault.store().delete(name)
    except Exception:  # noqa: BLE001 - the row is gone; a stray object holds only ciphertext
        logger.warning("could not delete replaced voice sample object", exc_info=True)


def enrolment_key(enrolment: VoiceEnrolment) -> bytes:
    ring = vault.keyring()
    if enrolment.wrapped_key is None or enrolment.kek_version is None:
        raise ValueError("voice enrolment has no key")
    return unwrap_key(ring.keys[enrolment.kek_version], bytes(enrolment.wrapped_key),
                      str(enrolment.public_id))


def embedding_context(enrolment: VoiceEnrolment) -> bytes:
    return _embedding_context(enrolment)
