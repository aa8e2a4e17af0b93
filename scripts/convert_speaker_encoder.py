"""One-off: convert resemblyzer's speaker-encoder weights to the numpy file Relisten ships.

Relisten runs the speaker encoder with numpy so the default install needs no PyTorch. The
weights come from resemblyzer 0.1.4 (Apache-2.0, Resemble AI; see
relisten/lib/diarize/data/NOTICE). Reading its ``pretrained.pt`` needs PyTorch once, so run this
in a throwaway virtual environment outside the repository, never in ``.venv``:

    pip download resemblyzer==0.1.4 --no-deps -d /tmp/diar
    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchenv/bin/python scripts/convert_speaker_encoder.py \\
        /tmp/diar/Resemblyzer-0.1.4-py3-none-any.whl \\
        relisten/lib/diarize/data/speaker_encoder.npz

Optionally check the numpy port against resemblyzer itself on real audio (needs resemblyzer's
own dependencies in the same environment: ``pip install librosa webrtcvad-wheels scipy`` and
the wheel unpacked on ``PYTHONPATH``):

    unzip -q /tmp/diar/Resemblyzer-0.1.4-py3-none-any.whl -d /tmp/diar/whl
    PYTHONPATH=/tmp/diar/whl /tmp/torchenv/bin/python scripts/convert_speaker_encoder.py \\
        --verify relisten/lib/diarize/data/speaker_encoder.npz \\
        ../shared/data/speech/ljspeech/LJ001-0001.wav ../shared/data/speech/ami/trn00.wav ...

Result recorded on 2026-11-30 (torch 2.13.0 CPU, librosa 0.11, 20 files: eight LJ Speech
clips, the ten AMI excerpts, jfk.flac, a LibriSpeech clip): the numpy utterance embeddings match
``VoiceEncoder.embed_utterance`` with cosine >= 0.9999999 on every file, and the power mel
matches ``librosa.feature.melspectrogram`` to a maximum relative error of 2.4e-7.

The output holds float32 arrays named after the PyTorch state dict (``lstm.weight_ih_l0`` ...
``linear.bias``); the training-only ``similarity_*`` scalars are dropped. About 5.5 MB.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

KEYS = [
    *(
        f"lstm.{kind}_l{layer}"
        for layer in range(3)
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ),
    "linear.weight",
    "linear.bias",
]


def load_state(source: Path) -> dict[str, Any]:
    """The state dict from pretrained.pt, given the file itself or resemblyzer's wheel."""
    import torch  # type: ignore[import-not-found,unused-ignore]  # only here: the conversion is the one place PyTorch is needed

    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            data = wheel.read("resemblyzer/pretrained.pt")
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu")
    else:
        checkpoint = torch.load(source, map_location="cpu")
    state: dict[str, Any] = checkpoint["model_state"]
    return state


def convert(source: Path, out: Path) -> None:
    state = load_state(source)
    arrays = {key: state[key].detach().cpu().numpy().astype(np.float32) for key in KEYS}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(arrays)} arrays)")


def verify(weights: Path, files: list[Path]) -> None:
    """Compare the numpy port with resemblyzer + PyTorch on the same audio."""
    import librosa  # type: ignore[import-not-found]
    from resemblyzer import VoiceEncoder, preprocess_wav  # type: ignore[import-not-found]

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relisten.lib.diarize.encoder import SpeakerEncoder
    from relisten.lib.diarize.features import mel_spectrogram

    reference = VoiceEncoder(device="cpu", verbose=False)
    ours = SpeakerEncoder(weights)
    worst = 1.0
    for path in files:
        wav = preprocess_wav(path)  # resemblyzer's own volume normalisation and silence trim
        ref_mel = librosa.feature.melspectrogram(
            y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40
        ).T
        our_mel = mel_spectrogram(wav.astype(np.float32))
        mel_err = float(np.abs(ref_mel - our_mel).max() / max(float(np.abs(ref_mel).max()), 1e-9))
        a = reference.embed_utterance(wav)
        b = ours.embed(wav.astype(np.float32))
        cosine = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        worst = min(worst, cosine)
        print(f"{path.name}: cosine {cosine:.7f}, mel max relative error {mel_err:.2e}")
    print(f"lowest cosine over {len(files)} files: {worst:.7f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", action="store_true", help="compare with resemblyzer")
    parser.add_argument("source", type=Path, help="resemblyzer wheel or pretrained.pt (or .npz)")
    parser.add_argument("rest", type=Path, nargs="+", help="output .npz, or audio to verify")
    args = parser.parse_args()
    if args.verify:
        verify(args.source, args.rest)
    else:
        convert(args.source, args.rest[0])


if __name__ == "__main__":
    main()
