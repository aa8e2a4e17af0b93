"""Offline speaker diarization: who spoke when, and which voice is the therapist's.

Voice activity (Silero VAD, bundled with faster-whisper) -> 1.5 s windows -> resemblyzer's
speaker encoder run with numpy -> spectral clustering with the speaker count estimated by the
eigengap (or given) -> smoothed turns -> roles from the therapist's enrolled voice. No PyTorch.
"""

from .encoder import SpeakerEncoder
from .types import Turn

__all__ = ["SpeakerEncoder", "Turn"]
