"""Optional pyannote.audio diarization, for sites that already run it.

Install with `pip install 'relisten[pyannote]'` (brings PyTorch) and point
RELISTEN_PYANNOTE_PIPELINE at a *local* pipeline config (config.yaml with its model files):
nothing is downloaded at run time. Without either, callers fall back to the built-in
diarization, which needs no PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from relisten.lib.diarize.types import Turn


class PyannoteUnavailable(RuntimeError):
    """pyannote.audio is not installed or no local pipeline is configured."""


def diarize(audio: np.ndarray, sample_rate: int, pipeline_path: str | None) -> list[Turn]:
    if not pipeline_path or not Path(pipeline_path).exists():
        raise PyannoteUnavailable(
            "RELISTEN_DIARIZATION=pyannote needs RELISTEN_PYANNOTE_PIPELINE: the path of a local "
            "pyannote pipeline config.yaml (models are never downloaded here)"
        )
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError:
        raise PyannoteUnavailable(
            "pyannote.audio is not installed: pip install 'relisten[pyannote]'"
        ) from None
    pipeline: Any = Pipeline.from_pretrained(pipeline_path)
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)[None, :])
    annotation = pipeline({"waveform": waveform, "sample_rate": sample_rate})
    names: dict[str, str] = {}
    turns: list[Turn] = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        name = names.setdefault(str(label), f"S{len(names) + 1}")
        turns.append(Turn(float(segment.start), float(segment.end), name))
    return sorted(turns, key=lambda turn: turn.start)
