"""The mel spectrogram resemblyzer's speaker encoder was trained on, in plain numpy.

It reproduces ``librosa.feature.melspectrogram`` with resemblyzer's parameters (16 kHz, 25 ms
periodic Hann window, 10 ms hop, centred frames with zero padding, power 2, 40 Slaney-normalised
mel bands from 0 Hz to 8 kHz). The encoder takes the power mel itself, not its logarithm, so the
input level matters: ``normalize_volume`` brings quiet audio up to the level it was trained at.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "HOP",
    "N_FFT",
    "N_MELS",
    "SAMPLE_RATE",
    "frame_power_mel",
    "mel_filterbank",
    "mel_spectrogram",
    "normalize_volume",
]

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
TARGET_DBFS = -30.0  # resemblyzer's audio_norm_target_dBFS
_INT16_MAX = 2**15 - 1


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's auditory toolbox scale (librosa's default, htk=False): linear to 1 kHz, log above.
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = hz >= min_log_hz
    mels[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    hz = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = mels >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return hz


@functools.cache
def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) float32 triangular filters, Slaney area normalisation."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = np.array([0.0, SAMPLE_RATE / 2])
    mel_edges = _hz_to_mel(edges)
    mel_f = _mel_to_hz(np.linspace(mel_edges[0], mel_edges[1], N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((N_MELS, fft_freqs.size), dtype=np.float64)
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window() -> np.ndarray:
    # Periodic Hann (scipy's get_window("hann", N, fftbins=True)), as librosa uses.
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def frame_power_mel(frames: np.ndarray) -> np.ndarray:
    """Mel power of already cut frames (..., N_FFT) -> (..., N_MELS) float32."""
    spectrum = np.fft.rfft(frames * _window(), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel: np.ndarray = power @ mel_filterbank().T
    return mel


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) float32 for 16 kHz mono audio; frames = 1 + len(wav) // HOP."""
    padded = np.pad(np.asarray(wav, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return frame_power_mel(frames)


def volume_gain(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> float:
    """The factor resemblyzer applies to raise (never lower) the RMS level to ``target_dbfs``."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
    if rms <= 1e-9:
        return 1.0  # digital silence: nothing to scale, and log10(0) would be -inf
    change_db = target_dbfs - 20.0 * np.log10(rms)
    return float(10 ** (change_db / 20.0)) if change_db > 0 else 1.0


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """resemblyzer's ``normalize_volume(..., increase_only=True)``."""
    gain = volume_gain(wav, target_dbfs)
    return wav if gain == 1.0 else (wav * np.float32(gain)).astype(np.float32)
