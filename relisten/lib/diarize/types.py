"""Diarization results: who spoke when, before any role (Therapist/Client) is known."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Turn"]


@dataclass(frozen=True)
class Turn:
    """One stretch of speech by one speaker; seconds from the start of the audio."""

    start: float
    end: float
    speaker: str  # "S1", "S2", ... numbered in order of first appearance

    @property
    def duration(self) -> float:
        return self.end - self.start
