"""Transcription of one recording as ordered steps (docs/transcription-pipeline.md).

    preflight → decode → voice_activity → transcribe → diarize → assign_roles → index

Each `Step` names what it needs from the shared `Work`, what it adds to it, and its share of
the progress bar. Steps are pure functions of the recording and its settings; only `index`
writes, in one transaction, so a run killed anywhere is simply run again from the start and
still ends with exactly one transcript.

A step ends a run early by raising `Stop(state, message)` (NO_SPEECH for silence, FAILED for
media that cannot be used or a missing model). Messages are plain words for clinicians and
never hold what was said. Decoded audio exists only in this process's memory: the decoder
reads the vault's decrypting file object, and nothing plaintext is written to disk.

Diarization's costly half, the speakers' voice embeddings, needs only the audio and the speech
regions: `voice_activity` starts it on a second thread, so it runs while faster-whisper
transcribes (both release the GIL), and `diarize` collects it. `Work.close` stops it when a run
ends early.

Liveness: the run's `heartbeat_at` is refreshed with each progress report and, between
reports, by a small thread. `requeue_stale_runs` (run by every worker at start and every few
minutes by the periodic scheduler) queues again any RUNNING run whose heartbeat is older
than settings.TRANSCRIPT_STALE_S: its worker was killed or ran out of memory.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from relisten.clients.models import Modality
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.lib.asr import types as asr
from relisten.recordings import vault
from relisten.recordings.models import Recording, State
from relisten.transcripts import actions
from relisten.transcripts.models import RunState, TranscriptRun, VoiceEnrolment

if TYPE_CHECKING:
    from relisten.lib.diarize.encoder import SpeakerEncoder
    from relisten.lib.diarize.pipeline import SpeechWindows
    from relisten.lib.diarize.types import Turn

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NO_SPEECH = "No speech detected"
UNEXPECTED = ("Transcription stopped because of an unexpected error ({kind}) during the "
              "{step} step. An administrator can find the details in the worker's log.")
DAMAGED = ("The stored recording could not be decrypted: it may be damaged. An administrator "
           "can run `relisten vault scrub` to check it.")
# Less speech than this gives the speaker encoder too little to compare: one speaker.
MIN_DIARIZE_SPEECH_S = 3.0
PROGRESS_EVERY_S = 0.5


class Stop(Exception):
    """End the run now with `state` and a plain-words `message` (no clinical text)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass
class Work:
    """What the steps hand on to each other. Audio lives here, in memory only."""

    recording: Recording
    report: Callable[[float], None] = lambda _fraction: None  # this step's progress, 0..1
    stereo: bool = False
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    channels: list[np.ndarray] = field(default_factory=list)
    regions: list[tuple[float, float]] = field(default_factory=list)
    # Voice embeddings of the speech, computed on a second thread during transcription
    # (embedding_job), then clustered by diarize and reused by assign_roles (speech_windows).
    embedding_job: Future[SpeechWindows] | None = None
    speech_windows: SpeechWindows | None = None
    stop_background: threading.Event = field(default_factory=threading.Event)
    result: asr.Transcript | None = None
    turns: list[Turn] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    speaker_source: str = ""
    segments: tuple[asr.Segment, ...] = ()
    model_name: str = ""
    claim: actions.Claim | None = None  # this attempt's lease, for the one step that writes
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds so far
    step_started: float = 0.0  # time.monotonic() when the current step began

    @property
    def duration_s(self) -> float:
        return float(self.audio.size) / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.regions)

    def close(self) -> None:
        """Stop background work and wait for it: a run that ended early (no speech, a failure,
        taken over) must not leave a thread computing for it. Stops within one batch."""
        self.stop_background.set()
        if self.embedding_job is not None:
            wait_for([self.embedding_job])


@dataclass(frozen=True)
class Step:
    name: str
    needs: tuple[str, ...]
    produces: tuple[str, ...]
    share: float  # percent of the whole run's progress
    run: Callable[[Work], None]


# ---- cached heavy objects (one per worker process) -------------------------------------------

def asr_settings() -> asr.AsrSettings:
    from relisten.transcripts.asr_config import asr_settings_from_django

    return asr_settings_from_django()


@cache
def _transcriber(config: asr.AsrSettings) -> Any:
    from relisten.lib.asr.whisper import WhisperTranscriber

    return WhisperTranscriber(config)


def transcriber() -> Any:
    """The loaded model for the current settings (loaded once per worker process)."""
    return _transcriber(asr_settings())


@cache
def speaker_encoder() -> SpeakerEncoder:
    from relisten.lib.diarize.encoder import SpeakerEncoder

    return SpeakerEncoder()


# ---- the steps -------------------------------------------------------------------------------

def preflight(work: Work) -> None:
    """The recording is READY and its client still agrees to transcription."""
    recording = Recording.objects.select_related("session__episode__client").get(
        pk=work.recording.pk)
    work.recording = recording
    if recording.state == State.ERASED:
        raise Stop(RunState.FAILED, actions.ERASED)
    if recording.state != State.READY:
        raise Stop(RunState.FAILED, actions.NOT_READY)
    if not is_allowed(recording.session.episode.client, Purpose.TRANSCRIPTION):
        raise Stop(RunState.FAILED, actions.NO_CONSENT)
    # Telehealth calls recorded with one voice per channel are split by channel, which is
    # exact, instead of being told apart by voice.
    work.stereo = (recording.channels == 2
                   and recording.session.modality == Modality.TELEHEALTH
                   and settings.DIARIZATION != "off")


def decode(work: Work) -> None:
    """Samples (16 kHz float32) straight from the vault's decrypting stream."""
    from relisten.lib.asr.audio import AudioError, decode_audio, decode_channels
    from relisten.lib.vault.stream import IntegrityError

    try:
        source = cast(BinaryIO, vault.open_reader(work.recording).raw_file())
        if work.stereo:
            work.channels = decode_channels(source, SAMPLE_RATE)
            if len(work.channels) != 2:
                work.stereo = False
            work.audio = np.mean(np.stack(work.channels), axis=0).astype(np.float32)
        else:
            work.audio = decode_audio(source, SAMPLE_RATE)
    except AudioError as error:
        raise Stop(RunState.FAILED, error.user_message) from None
    except IntegrityError:
        raise Stop(RunState.FAILED, DAMAGED) from None
    if work.audio.size == 0:
        raise Stop(RunState.NO_SPEECH, NO_SPEECH)


def voice_activity(work: Work) -> None:
    """Where people speak (Silero VAD). None at all: NO_SPEECH, without loading the model."""
    from relisten.lib.diarize.pipeline import speech_regions

    work.regions = list(speech_regions(work.audio, SAMPLE_RATE))
    if not work.regions:
        raise Stop(RunState.NO_SPEECH, NO_SPEECH)
    if _diarizes_by_voice(work):
        start_speaker_embeddings(work)


def _diarizes_by_voice(work: Work) -> bool:
    """The built-in voice diarization will run (see `diarize`)."""
    return (not work.stereo and settings.DIARIZATION == "builtin"
            and work.speech_s >= MIN_DIARIZE_SPEECH_S)


def start_speaker_embeddings(work: Work) -> None:
    """Embed the speech on a second thread; the diarize step collects the result.

    This overlaps diarization's costly half with transcription: CTranslate2 and numpy both
    release the GIL, and faster-whisper leaves part of a second core idle (bench/asr.py on
    2 cores: from 1.19 times plain faster-whisper to 0.98-1.15, median 1.06). The
    embeddings do not depend on the thread (the same numpy calls on the same arrays), and an
    error there is raised again by the diarize step.
    """
    from relisten.lib.diarize.pipeline import embed_speech

    encoder = speaker_encoder()  # loaded here, once per worker, not on the thread
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speaker-embeddings")
    try:
        work.embedding_job = executor.submit(embed_speech, work.audio, list(work.regions),
                                              encoder, SAMPLE_RATE, work.stop_background)
    finally:
        executor.shutdown(wait=False)  # the thread ends when its one job does


def transcribe(work: Work) -> None:
    """Words with times and probabilities (faster-whisper, offline)."""
    from relisten.lib.asr.whisper import ModelNotFound

    try:
        model = transcriber()
    except ModelNotFound as error:
        raise Stop(RunState.FAILED, str(error)) from None
    work.model_name = str(settings.ASR_MODEL)
    work.result = model.transcribe(work.audio, progress=work.report)
    if work.result is None or work.result.is_empty:
        raise Stop(RunState.NO_SPEECH, NO_SPEECH)


def diarize(work: Work) -> None:
    """Who spoke when: by channel (telehealth stereo), by voice, or one speaker."""
    from relisten.lib.diarize.types import Turn

    if work.stereo:
        from relisten.lib.diarize.pipeline import diarize_stereo

        work.turns = list(diarize_stereo(work.channels, SAMPLE_RATE))
        work.speaker_source = "stereo"
    elif settings.DIARIZATION == "off" or work.speech_s < MIN_DIARIZE_SPEECH_S:
        work.turns = []
    else:
        work.turns = _diarize_mono(work)
        work.speaker_source = "pyannote" if settings.DIARIZATION == "pyannote" else "diarized"
    work.channels = []  # not needed any more; free the memory
    if len({turn.speaker for turn in work.turns}) <= 1:
        # One voice (or no diarization): one speaker, over the speech that was found — not
        # over the silences, which would count as speech that is not there.
        spans = [(turn.start, turn.end) for turn in work.turns] or work.regions
        work.turns = ([Turn(start, end, "S1") for start, end in spans]
                      or [Turn(0.0, max(work.duration_s, 0.01), "S1")])
        work.speaker_source = work.speaker_source if work.stereo else "single"


def _diarize_mono(work: Work) -> list[Turn]:
    from relisten.lib.diarize import pipeline as builtin

    if settings.DIARIZATION == "pyannote":
        from relisten.lib.diarize import pyannote_backend

        try:
            return list(pyannote_backend.diarize(work.audio, SAMPLE_RATE,
                                                 settings.PYANNOTE_PIPELINE))
        except pyannote_backend.PyannoteUnavailable as error:
            logger.warning("%s; using the built-in diarization", error)
    # The embeddings started beside transcription; .result() waits for the rest and raises
    # here whatever went wrong on that thread.
    if work.embedding_job is not None:
        work.speech_windows = work.embedding_job.result()
        work.embedding_job = None
    return list(builtin.diarize(work.audio, SAMPLE_RATE, encoder=speaker_encoder(),
                                regions=work.regions, windows=work.speech_windows))


def assign_roles(work: Work) -> None:
    """Therapist / Client by the episode therapist's enrolled voice, else Speaker 1, 2, ...;
    then each segment (split at word level where needed) gets its speaker."""
    from relisten.lib.diarize.pipeline import assign_roles as roles_by_voice
    from relisten.lib.diarize.pipeline import label_segments

    assert work.result is not None
    voice = therapist_voice(work.recording)
    # The voice prints reuse diarization's embeddings where it made them (no second pass).
    work.roles = dict(roles_by_voice(work.turns, work.audio, voice, speaker_encoder(),
                                     SAMPLE_RATE, windows=work.speech_windows))
    work.segments = tuple(label_segments(work.result.segments, work.turns, work.roles))


def therapist_voice(recording: Recording) -> np.ndarray | None:
    """The enrolled voice embedding of the episode's therapist, or None."""
    from relisten.lib.vault.stream import IntegrityError, open_blob

    therapist_id = recording.session.episode.therapist_id
    enrolment = VoiceEnrolment.objects.filter(user_id=therapist_id).first()
    if enrolment is None or not enrolment.embedding_sealed:
        return None
    try:
        key = actions.enrolment_key(enrolment)
        raw = open_blob(key, bytes(enrolment.embedding_sealed),
                        actions.embedding_context(enrolment))
    except (IntegrityError, ValueError, KeyError):
        # Labels fall back to "Speaker 1/2"; the transcript itself is unaffected.
        logger.warning("voice enrolment %s could not be opened", enrolment.public_id)
        return None
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def index(work: Work) -> None:
    """Save segments, words and speakers, replace any earlier transcript, index it for
    search and mark the run DONE: one transaction (actions.save_transcript)."""
    assert work.result is not None and work.claim is not None
    result = asr.Transcript(segments=work.segments, language=work.result.language,
                            duration_s=work.result.duration_s)
    timings = {**work.timings, "index": time.monotonic() - work.step_started}
    try:
        actions.save_transcript(work.claim, result=result, speakers=work.roles,
                                speaker_source=work.speaker_source,
                                model_name=work.model_name, timings=timings)
    except actions.SaveRefused as refused:
        raise Stop(RunState.FAILED, refused.message) from None
    work.timings.update(timings)


STEPS: tuple[Step, ...] = (
    Step("preflight", ("recording",), ("stereo",), 1, preflight),
    Step("decode", ("recording", "stereo"), ("audio", "channels"), 4, decode),
    Step("voice_activity", ("audio", "stereo"), ("regions", "embedding_job"), 5,
         voice_activity),
    Step("transcribe", ("audio",), ("result",), 70, transcribe),
    Step("diarize", ("audio", "channels", "regions", "embedding_job"),
         ("turns", "speaker_source", "speech_windows"), 10, diarize),
    Step("assign_roles", ("turns", "audio", "result", "speech_windows"), ("roles", "segments"),
         5, assign_roles),
    Step("index", ("segments", "roles", "speaker_source", "claim"), ("Transcript rows",), 5,
         index),
)
assert sum(step.share for step in STEPS) == 100


# ---- running a run ---------------------------------------------------------------------------

class _Heartbeat:
    """Refreshes the run's heartbeat from a thread while a step runs without reporting
    (decoding, diarization). Not used inside an open transaction (tests): a second SQLite
    connection would only wait for the test's lock."""

    def __init__(self, claim: actions.Claim) -> None:
        self.claim = claim
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if not connection.in_atomic_block:
            self.thread = threading.Thread(target=self._loop, name="transcript-heartbeat",
                                           daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _loop(self) -> None:
        interval = heartbeat_interval()
        try:
            while not self.stop.wait(interval):
                try:
                    if not actions.heartbeat(self.claim):
                        return
                except Exception:  # noqa: BLE001 - a missed beat is retried next time
                    logger.warning("heartbeat update failed", exc_info=True)
        finally:
            connection.close()


def heartbeat_interval() -> float:
    return max(0.5, min(15.0, settings.TRANSCRIPT_STALE_S / 4))


class _Runner:
    def __init__(self, claim: actions.Claim) -> None:
        self.claim = claim
        self.base = 0.0
        self.share = 0.0
        self.step = ""
        self.last_report = 0.0
        self.work = Work(recording=claim.run.recording, report=self.report, claim=claim)

    def report(self, fraction: float) -> None:
        """A step's progress, written at most every PROGRESS_EVERY_S (it is also the beat)."""
        now = time.monotonic()
        if now - self.last_report < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self.last_report = now
        fraction = min(1.0, max(0.0, fraction))
        actions.record_progress(self.claim, step=self.step,
                                progress=self.base + self.share * fraction)

    def run(self) -> str:
        try:
            return self._steps()
        finally:
            self.work.close()

    def _steps(self) -> str:
        work = self.work
        try:
            for step in STEPS:
                self.step, self.share = step.name, step.share
                actions.record_progress(self.claim, step=step.name, progress=self.base,
                                        timings=work.timings)
                work.step_started = self.last_report = time.monotonic()
                step.run(work)
                work.timings[step.name] = time.monotonic() - work.step_started
                self.base += step.share
        except Stop as stop:
            work.timings.setdefault(self.step, time.monotonic() - work.step_started)
            actions.finish_run(self.claim, state=stop.state, message=stop.message,
                               timings=work.timings)
            return stop.state
        return str(RunState.DONE)


def execute(run_id: str | uuid.UUID) -> str:
    """Run (or re-run) one TranscriptRun; returns its final state, or "skipped" when this
    worker did not get the run (already finished, or alive elsewhere)."""
    claim = actions.claim_run(run_id)
    if claim is None:
        return "skipped"
    runner = _Runner(claim)
    try:
        with _Heartbeat(claim):
            return runner.run()
    except actions.Superseded:
        logger.info("transcription run %s was taken over or cancelled; stopping", run_id)
        return "superseded"
    except Exception as error:
        # Log the type and where; the message of an unknown error is not shown to users.
        logger.exception("transcription run %s failed in step %s", run_id, runner.step)
        message = UNEXPECTED.format(kind=type(error).__name__, step=runner.step or "first")
        actions.finish_run(claim, state=RunState.FAILED, message=message,
                           timings=runner.work.timings)
        return str(RunState.FAILED)


# ---- recovery --------------------------------------------------------------------------------

def requeue_stale_runs() -> list[str]:
    """Queue again every run whose worker died (RUNNING, heartbeat older than
    TRANSCRIPT_STALE_S), and every QUEUED run whose task the database backend lost.
    Returns the run ids acted on."""
    cutoff = timezone.now() - _stale_delta()
    candidates = list(TranscriptRun.objects.filter(state=RunState.RUNNING,
                                                   heartbeat_at__lt=cutoff)
                      .values_list("pk", flat=True))
    candidates += _lost_queued_runs(cutoff)
    done: list[str] = []
    for pk in candidates:
        run = actions.requeue_run(pk)
        if run is not None:
            done.append(str(run.public_id))
    return done


def _stale_delta() -> Any:
    import datetime as dt

    return dt.timedelta(seconds=settings.TRANSCRIPT_STALE_S)


def _lost_queued_runs(cutoff: Any) -> list[int]:
    """QUEUED runs, queued before `cutoff`, with no waiting or live task in the database
    backend (a worker was killed between taking the task and claiming the run). Other
    backends keep their queue outside the database; RQ moves a killed job aside and our run,
    then RUNNING, is found stale above."""
    if settings.TASKS_BACKEND != "database":
        return []
    from django_tasks_db.models import DBTaskResult

    from relisten.transcripts.tasks import transcribe_recording

    lost: list[int] = []
    for pk, public_id in TranscriptRun.objects.filter(
            state=RunState.QUEUED, heartbeat_at__lt=cutoff).values_list("pk", "public_id"):
        tasks = DBTaskResult.objects.filter(task_path=transcribe_recording.module_path,
                                            args_kwargs__args__0=str(public_id))
        waiting = tasks.filter(status="READY").exists()
        live = tasks.filter(status="RUNNING", started_at__gte=cutoff).exists()
        if not waiting and not live:
            lost.append(pk)
    return lost
