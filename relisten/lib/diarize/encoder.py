"""resemblyzer's speaker encoder (VoiceEncoder) run with numpy: no PyTorch in the install.

A 3-layer LSTM (hidden 256) reads 40-band power-mel frames; the last layer's final hidden
state goes through a linear layer, ReLU and L2 normalisation into a 256-d voice embedding.
The weights are resemblyzer 0.1.4's, converted once by ``scripts/convert_speaker_encoder.py``
(Apache-2.0, see ``data/NOTICE``). On the same audio this port matches resemblyzer + PyTorch
to cosine >= 0.99999.

Many windows are embedded at once: the LSTM runs batched across windows, looping only over
time steps, and the input projection of each layer is one matrix product for all steps.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .features import HOP, N_FFT, SAMPLE_RATE, frame_power_mel, mel_spectrogram, volume_gain

__all__ = ["DEFAULT_WEIGHTS", "EmbeddingStopped", "SpeakerEncoder"]

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "speaker_encoder.npz"
HIDDEN = 256
LAYERS = 3
PARTIAL_FRAMES = 160  # resemblyzer's partials_n_frames: 1.6 s per partial utterance
BATCH = 96  # windows per LSTM pass: ~60 MB of gate activations, fast matrix products


class EmbeddingStopped(Exception):
    """``embed_windows`` was asked to stop (its run ended early) before it finished."""


class SpeakerEncoder:
    """Voice embeddings (256-d, L2-normalised, non-negative) for 16 kHz mono audio."""

    def __init__(self, weights: Path | None = None) -> None:
        path = weights or DEFAULT_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(
                f"The speaker encoder weights are missing ({path}). Reinstall Relisten, or "
                "recreate them with scripts/convert_speaker_encoder.py."
            )
        with np.load(path) as data:
            arrays = {key: np.asarray(data[key], dtype=np.float32) for key in data.files}
        # PyTorch gate order is input, forget, cell, output. sigmoid(x) = (1 + tanh(x/2)) / 2,
        # so halving the sigmoid gates' rows lets one tanh call serve all four gates.
        scale = np.ones(4 * HIDDEN, dtype=np.float32)
        scale[: 2 * HIDDEN] = 0.5
        scale[3 * HIDDEN :] = 0.5
        self._w_ih: list[np.ndarray] = []
        self._w_hh: list[np.ndarray] = []
        self._bias: list[np.ndarray] = []
        for layer in range(LAYERS):
            w_ih = arrays[f"lstm.weight_ih_l{layer}"] * scale[:, None]
            w_hh = arrays[f"lstm.weight_hh_l{layer}"] * scale[:, None]
            bias = (arrays[f"lstm.bias_ih_l{layer}"] + arrays[f"lstm.bias_hh_l{layer}"]) * scale
            self._w_ih.append(np.ascontiguousarray(w_ih.T))
            self._w_hh.append(np.ascontiguousarray(w_hh.T))
            self._bias.append(bias)
        self._linear_w = np.ascontiguousarray(arrays["linear.weight"].T)
        self._linear_b = arrays["linear.bias"]

    # -- the network -------------------------------------------------------------------------

    def _lstm_layer(self, x: np.ndarray, layer: int, keep_sequence: bool) -> np.ndarray:
        """x (T, B, D), time-major -> all hidden states (T, B, H) or only the last one (B, H)."""
        steps, batch, dim = x.shape
        gates_in = x.reshape(steps * batch, dim) @ self._w_ih[layer]
        gates_in += self._bias[layer]
        gates_in = gates_in.reshape(steps, batch, 4 * HIDDEN)
        w_hh = self._w_hh[layer]
        h = np.zeros((batch, HIDDEN), dtype=np.float32)
        c = np.zeros((batch, HIDDEN), dtype=np.float32)
        out = np.empty((steps, batch, HIDDEN), dtype=np.float32) if keep_sequence else None
        g = np.empty((batch, 4 * HIDDEN), dtype=np.float32)
        tmp = np.empty((batch, HIDDEN), dtype=np.float32)
        i, f, cell, o = (g[:, k * HIDDEN : (k + 1) * HIDDEN] for k in range(4))
        for t in range(steps):
            np.matmul(h, w_hh, out=g)
            g += gates_in[t]
            np.tanh(g, out=g)
            # Input, forget and output gates: sigmoid = 0.5 * tanh(x / 2) + 0.5 (weights halved).
            for gate in (i, f, o):
                gate *= 0.5
                gate += 0.5
            c *= f
            np.multiply(i, cell, out=tmp)
            c += tmp
            np.tanh(c, out=tmp)
            h = out[t] if out is not None else h
            np.multiply(o, tmp, out=h)
        return out if out is not None else h

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        """(B, T, 40) power mel -> (B, 256) L2-normalised embeddings."""
        # Time-major, so each step reads one contiguous (B, 4H) block of input gates.
        x = np.ascontiguousarray(mels.transpose(1, 0, 2), dtype=np.float32)
        for layer in range(LAYERS - 1):
            x = self._lstm_layer(x, layer, keep_sequence=True)
        last = self._lstm_layer(x, LAYERS - 1, keep_sequence=False)
        raw = np.maximum(last @ self._linear_w + self._linear_b, 0.0)
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        result: np.ndarray = raw / np.maximum(norm, 1e-12)
        return result

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings for a stack of equal-length mel windows, computed in batches."""
        parts = [self._forward(mels[i : i + BATCH]) for i in range(0, len(mels), BATCH)]
        if not parts:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)

    # -- public API --------------------------------------------------------------------------

    def embed(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """One utterance -> (256,): resemblyzer's ``embed_utterance`` (rate 1.3, coverage 0.75).

        The audio is first raised to resemblyzer's training level (-30 dBFS, never lowered).
        Pass speech only: long silences dilute the voice (``pipeline.speech_only`` helps).
        """
        wav = _check_audio(audio, sample_rate)
        wav = wav * np.float32(volume_gain(wav))
        starts = _partial_starts(len(wav))
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav)
        mels = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        partials = self.embed_mels(mels)
        mean = partials.mean(axis=0)
        result: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return result

    def embed_windows(
        self,
        audio: np.ndarray,
        regions: list[tuple[float, float]],
        sample_rate: int = SAMPLE_RATE,
        window_s: float = 1.5,
        hop_s: float = 0.75,
        stop: threading.Event | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-length windows over speech regions -> (centre times (N,), embeddings (N, 256)).

        Each region is covered by windows of ``window_s`` every ``hop_s``, the last one aligned
        to the region's end; a region shorter than a window gets one window centred on it. Each
        window is levelled on its own, so a quiet speaker looks like a loud one to the network.
        ``stop``, checked between batches, ends the work early with ``EmbeddingStopped`` (a
        caller running this on another thread can cancel it within one batch, ~0.3 s).
        """
        wav = _check_audio(audio, sample_rate)
        starts = window_starts(regions, len(wav) / SAMPLE_RATE, window_s, hop_s)
        n = int(round(window_s * SAMPLE_RATE))
        centres = (starts + window_s / 2).astype(np.float64)
        if starts.size == 0:
            return centres, np.zeros((0, HIDDEN), dtype=np.float32)
        if len(wav) < n:
            wav = np.pad(wav, (0, n - len(wav)))
        offsets = np.minimum(np.round(starts * SAMPLE_RATE).astype(np.int64), len(wav) - n)
        embeddings = []
        for i in range(0, len(offsets), BATCH):
            if stop is not None and stop.is_set():
                raise EmbeddingStopped
            embeddings.append(self.embed_mels(_window_mels(wav, offsets[i : i + BATCH], n)))
        return centres, np.concatenate(embeddings).astype(np.float32)


def window_starts(
    regions: list[tuple[float, float]], duration: float, window_s: float, hop_s: float
) -> np.ndarray:
    """Start times (s) of the analysis windows over the given speech regions."""
    starts: list[float] = []
    latest = max(duration - window_s, 0.0)
    for begin, end in regions:
        if end - begin <= window_s:
            starts.append(min(max((begin + end - window_s) / 2, 0.0), latest))
            continue
        t = begin
        while t + window_s < end:
            starts.append(t)
            t += hop_s
        starts.append(end - window_s)  # the tail of the region gets a full window too
    return np.asarray(starts, dtype=np.float64)


def _window_mels(wav: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """Power mel of each window (computed per window, as resemblyzer does per utterance)."""
    half = N_FFT // 2
    frames_per_window = 1 + n // HOP
    # Centred frames reach half a frame beyond the window; zeros beyond the recording's ends.
    # Only each window's own samples are copied: padding the whole recording would copy an
    # hour of audio (230 MB) for every batch.
    chunks = np.zeros((len(offsets), n + 2 * half), dtype=np.float32)
    for row, o in enumerate(offsets.tolist()):
        lo, hi = max(o - half, 0), min(o + n + half, len(wav))
        chunks[row, lo - (o - half) : hi - (o - half)] = wav[lo:hi]
    # Level each window like a separate utterance: gain from the window's own RMS.
    levels = np.sqrt(np.mean(np.square(chunks[:, half:-half], dtype=np.float64), axis=1))
    safe = np.maximum(levels, 1e-9)
    gains = np.where(levels > 1e-9, 10 ** (np.maximum(-30.0 - 20 * np.log10(safe), 0.0) / 20), 1.0)
    frames = np.lib.stride_tricks.sliding_window_view(chunks, N_FFT, axis=1)[:, ::HOP]
    mels = frame_power_mel(frames[:, :frames_per_window])
    # The mel is a power spectrum, so an amplitude gain multiplies it by gain squared.
    scaled: np.ndarray = mels * (gains**2).astype(np.float32)[:, None, None]
    return scaled


def _partial_starts(n_samples: int) -> list[int]:
    """First mel frame of each partial utterance: resemblyzer's ``compute_partial_slices``."""
    rate, min_coverage = 1.3, 0.75
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((SAMPLE_RATE / rate) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    last = starts[-1] * HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


def _check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"The speaker encoder needs {SAMPLE_RATE} Hz audio (got {sample_rate} Hz); "
            "decode with relisten.lib.asr.audio.decode_audio, which resamples."
        )
    wav = np.asarray(audio, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError("The speaker encoder needs mono audio (one channel).")
    return wav
