"""Decode a recording into 16 kHz float32 samples for speech recognition, entirely in memory.

The pipeline hands us the vault's decrypting file object, so PyAV reads straight from it and
the decoded samples live only in this process: nothing plaintext is ever written to disk.
FFmpeg is limited to the same demuxers the upload check accepts (relisten.lib.media.probe),
which keeps its rarely used parsers away from untrusted files.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import av
import av.error
import numpy as np

from relisten.lib.media.probe import ACCEPTED_DEMUXERS

__all__ = ["SAMPLE_RATE", "AudioError", "decode_audio", "decode_channels"]

SAMPLE_RATE = 16000  # what Whisper, Silero VAD and the speaker encoder all expect

MSG_EMPTY = "This file is empty, so there is nothing to transcribe."
MSG_NOT_AUDIO = (
    "This file is not an audio or video recording that can be transcribed. "
    "Please use a common format such as WAV, MP3, M4A, FLAC, Ogg or WebM."
)
MSG_NO_AUDIO = "This recording has no sound track, so there is nothing to transcribe."
MSG_DAMAGED = (
    "This recording seems to be damaged and cannot be decoded. "
    "Try exporting it again from the recorder."
)


class AudioError(Exception):
    """Media we cannot decode. ``user_message`` is for people; ``str()`` is for logs.

    Neither contains file content or a file name, so both are safe to store and show.
    """

    def __init__(self, user_message: str, reason: str) -> None:
        super().__init__(reason)
        self.user_message = user_message


def decode_audio(source: BinaryIO, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream as mono float32 in [-1, 1] at ``sample_rate``.

    A recording with no samples at all gives an empty array: that is "no speech", not an error.
    """
    return _decode(source, sample_rate, mono=True)[0]


def decode_channels(source: BinaryIO, sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """One float32 array per channel (left, right, ...), e.g. telehealth with a voice per side."""
    return _decode(source, sample_rate, mono=False)


def _decode(source: BinaryIO, sample_rate: int, *, mono: bool) -> list[np.ndarray]:
    if _is_empty(source):
        raise AudioError(MSG_EMPTY, "empty input")
    try:
        container = av.open(
            source, mode="r", metadata_errors="ignore",
            options={"format_whitelist": ",".join(ACCEPTED_DEMUXERS)},
        )
    except av.error.FFmpegError as exc:
        raise AudioError(MSG_NOT_AUDIO, f"cannot open media ({type(exc).__name__})") from None
    try:
        if not container.streams.audio:
            raise AudioError(MSG_NO_AUDIO, "no audio stream")
        stream = container.streams.audio[0]
        channels = max(1, int(stream.codec_context.channels or 1))
        # Stereo is averaged here rather than by FFmpeg, whose -3 dB per channel downmix
        # clips when both sides carry the same loud signal (a dual-mono recorder). Surround
        # keeps FFmpeg's downmix, which knows to leave out the LFE channel.
        ffmpeg_mix = mono and channels > 2
        layout = "mono" if ffmpeg_mix or channels == 1 else _layout_name(stream, channels)
        planes = _decode_stream(container, stream, sample_rate, layout)
    finally:
        container.close()
    if planes is None:
        return [np.zeros(0, dtype=np.float32) for _ in range(1 if mono else channels)]
    if mono and planes.shape[0] > 1:
        planes = planes.mean(axis=0, keepdims=True, dtype=np.float32)
    # Some codecs overshoot full scale slightly; Whisper's log-mel expects [-1, 1].
    np.clip(planes, -1.0, 1.0, out=planes)
    return [np.ascontiguousarray(plane) for plane in planes]


def _decode_stream(container: Any, stream: Any, sample_rate: int, layout: str) -> Any:
    """(channels, samples) float32, or None when the stream holds no samples at all."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
    chunks: list[np.ndarray] = []
    packets = bad_packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                # One damaged packet should not cost the whole session (faster-whisper skips
                # them too); a recording where nothing decodes is reported below.
                bad_packets += 1
                continue
            for frame in frames:
                frame.pts = None  # the resampler needs no timestamps, and bad ones upset it
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise AudioError(MSG_DAMAGED, f"decoding failed ({type(exc).__name__})") from None
    if not chunks:
        if bad_packets:
            raise AudioError(MSG_DAMAGED, f"none of {packets} packets decoded")
        return None
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False)


def _layout_name(stream: Any, channels: int) -> str:
    layout = getattr(stream.codec_context, "layout", None)
    name = getattr(layout, "name", "") or ""
    if name and "unknown" not in name and "channels" not in name:
        return str(name)
    # FFmpeg's default layouts for a bare channel count.
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _is_empty(source: BinaryIO) -> bool:
    """True for a zero-byte seekable input; unseekable streams are left to FFmpeg."""
    try:
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
    except (OSError, AttributeError, ValueError):
        return False
    return bool(end == 0)
