"""Shared pieces of bench/asr.py: the pipeline as the worker runs it, plain faster-whisper,
word error rate, and the audio files the benchmark builds.

The pipeline is *not* re-implemented here: `run_pipeline` walks the worker's own step table
(relisten.transcripts.pipeline.STEPS) in its order and calls the step functions themselves
with the installation's settings. Only the three steps that need a database are stood in for:
preflight (consent and state checks) is skipped, decode reads a file instead of the vault's
decrypting stream (the same `decode_audio` call), assign_roles is given the enrolled voice
directly instead of unsealing it from the database, and index (saving rows) is skipped.
If the step table changes, `run_pipeline` stops with a message instead of measuring something
else.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
import unicodedata
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from relisten.lib.asr.types import AsrSettings, Segment
    from relisten.lib.diarize.types import Turn

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "speech"
SAMPLE_RATE = 16000
# The steps this benchmark knows how to run, in the worker's order.
EXPECTED_STEPS = (
    "preflight", "decode", "voice_activity", "transcribe", "diarize", "assign_roles", "index",
)


def setup_django() -> None:
    """Load Relisten's settings (RELISTEN_* as installed) so the pipeline module imports.

    Nothing is written: no database is opened. A throwaway secret key is supplied when none is
    set, because settings refuse to load without one outside debug mode.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relisten.settings")
    scratch = Path(tempfile.gettempdir()) / "relisten-asrbench"  # never created: no DB is opened
    os.environ.setdefault("RELISTEN_DATA_DIR", str(scratch))
    os.environ.setdefault("RELISTEN_SECRET_KEY", secrets.token_urlsafe(50))
    import logging

    import django

    django.setup()
    # faster-whisper logs every file it processes at INFO: keep stderr readable.
    for name in ("faster_whisper", "relisten.lib.asr.whisper"):
        logging.getLogger(name).setLevel(logging.WARNING)


def asr_settings() -> AsrSettings:
    from relisten.transcripts import pipeline

    return pipeline.asr_settings()


# ---- text ------------------------------------------------------------------------------------

def normalise(text: str) -> list[str]:
    """Lower case, no punctuation: "Printing, in the" -> ["printing", "in", "the"]."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    return text.split()


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level edit distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1,
                             previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


@dataclass
class Tally:
    """Corpus-level WER: errors over all reference words of a set of files."""

    errors: int = 0
    words: int = 0

    def add(self, reference: str, hypothesis: str) -> None:
        ref = normalise(reference)
        self.errors += word_errors(ref, normalise(hypothesis))
        self.words += len(ref)

    @property
    def wer(self) -> float:
        return self.errors / max(self.words, 1)


# ---- audio files -----------------------------------------------------------------------------

def load(path: Path) -> np.ndarray:
    from relisten.lib.asr.audio import decode_audio

    with path.open("rb") as handle:
        return decode_audio(handle, SAMPLE_RATE)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """16-bit mono 16 kHz WAV (what a recorder would give us)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def read_psv(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "|" in line:
            key, text = line.split("|", 1)
            rows[key.strip()] = text.strip()
    return rows


# ---- the pipeline and plain faster-whisper ---------------------------------------------------

@dataclass
class PipelineResult:
    state: str  # "done" or the pipeline's Stop state (e.g. no speech)
    segments: tuple[Segment, ...] = ()
    turns: list[Turn] = field(default_factory=list)
    regions: list[tuple[float, float]] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    duration_s: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments)


def _check_steps(names: Iterable[str]) -> None:
    found = tuple(names)
    if found != EXPECTED_STEPS:
        raise SystemExit(
            f"relisten/transcripts/pipeline.py now runs {found}; bench/_asr_common.py knows "
            f"{EXPECTED_STEPS}. Update run_pipeline before trusting these figures."
        )


def run_pipeline(path: Path, voice: np.ndarray | None,
                 skip: frozenset[str] = frozenset()) -> PipelineResult:
    """The worker's steps on one file, timed (model loading excluded: the worker keeps it)."""
    from relisten.lib.asr.audio import decode_audio
    from relisten.lib.diarize.pipeline import assign_roles, label_segments
    from relisten.transcripts import pipeline

    _check_steps(step.name for step in pipeline.STEPS)
    started = time.perf_counter()
    work = pipeline.Work(recording=cast(Any, None))
    result = PipelineResult(state="done")
    try:
        for step in pipeline.STEPS:
            began = time.perf_counter()
            if step.name in skip or step.name in ("preflight", "index"):
                continue
            if step.name == "decode":
                # The step's own call, on a file instead of the vault's decrypting stream.
                with path.open("rb") as handle:
                    work.audio = decode_audio(handle, pipeline.SAMPLE_RATE)
                if work.audio.size == 0:
                    raise pipeline.Stop("no_speech", pipeline.NO_SPEECH)
            elif step.name == "assign_roles":
                # pipeline.assign_roles with the voice handed in rather than read from the DB.
                assert work.result is not None
                work.roles = dict(assign_roles(work.turns, work.audio, voice,
                                               pipeline.speaker_encoder(), pipeline.SAMPLE_RATE,
                                               windows=work.speech_windows))
                work.segments = tuple(label_segments(work.result.segments, work.turns,
                                                     work.roles))
            else:
                step.run(work)
            result.timings[step.name] = time.perf_counter() - began
    except pipeline.Stop as stop:
        result.state = stop.state
    finally:
        work.close()  # as the worker's runner does: no background embedding outlives the run
    result.wall_s = time.perf_counter() - started
    result.segments = work.segments
    result.turns = list(work.turns)
    result.regions = list(work.regions)
    result.roles = dict(work.roles)
    result.duration_s = work.duration_s
    return result


class PlainWhisper:
    """faster-whisper used directly, with the pipeline's model and settings."""

    def __init__(self, settings: AsrSettings) -> None:
        from faster_whisper import WhisperModel

        from relisten.lib.asr.whisper import pick_device, resolve_model

        self.settings = settings
        self.model = WhisperModel(resolve_model(settings.model),
                                  device=pick_device(settings.device),
                                  compute_type=settings.compute_type,
                                  cpu_threads=settings.threads, local_files_only=True)

    def transcribe(self, path: Path, word_timestamps: bool = True) -> tuple[str, float]:
        """(text, wall seconds) for a file, decoding included (faster-whisper decodes it)."""
        started = time.perf_counter()
        segments, _info = self.model.transcribe(
            str(path), language=self.settings.language, beam_size=self.settings.beam_size,
            word_timestamps=word_timestamps, vad_filter=self.settings.vad,
        )
        text = " ".join(str(segment.text).strip() for segment in segments)  # decodes lazily
        return text, time.perf_counter() - started


def enrolment_voice(clips: Sequence[Path]) -> np.ndarray:
    """A therapist's enrolment as actions.enrol_voice computes it: the voice print of the
    sample's speech regions, with the worker's speaker encoder."""
    from relisten.lib.diarize.pipeline import speaker_embedding, speech_regions
    from relisten.transcripts import pipeline

    audio = np.concatenate([load(clip) for clip in clips])
    voice = speaker_embedding(audio, speech_regions(audio, SAMPLE_RATE),
                              pipeline.speaker_encoder(), SAMPLE_RATE)
    if voice is None:
        raise SystemExit("the enrolment clips hold no speech")
    return voice


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
