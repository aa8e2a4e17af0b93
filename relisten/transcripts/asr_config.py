"""Speech-recognition settings from Django settings (RELISTEN_ASR_* environment variables)."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings

from relisten.lib.asr.types import AsrSettings


def asr_settings_from_django(model: str | None = None) -> AsrSettings:
    """AsrSettings for this installation; ``model`` overrides RELISTEN_ASR_MODEL (CLI --model)."""
    base = AsrSettings(
        model=settings.ASR_MODEL,
        compute_type=settings.ASR_COMPUTE_TYPE,
        beam_size=settings.ASR_BEAM_SIZE,
        threads=settings.ASR_THREADS,
        # An empty RELISTEN_ASR_LANGUAGE (or "auto") asks Whisper to detect the language.
        language=None if settings.ASR_LANGUAGE in {"", "auto"} else settings.ASR_LANGUAGE,
        device=settings.ASR_DEVICE,
    )
    return replace(base, model=model) if model else base
