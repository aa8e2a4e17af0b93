"""relisten.lib.media.probe with the real FFmpeg inside PyAV: recordings are generated here
(or read from the shared speech samples), never mocked."""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import av
import pytest

from relisten.lib.media.probe import (
    MSG_DAMAGED,
    MSG_EMPTY,
    MSG_NO_AUDIO,
    MSG_NO_SOUND,
    MSG_NOT_MEDIA,
    MSG_UNSUPPORTED,
    MediaError,
    MediaInfo,
    needs_remux,
    probe,
    remux,
)

SPEECH = Path("/work/shared/data/speech")
EBML_CUES = b"\x1c\x53\xbb\x6b"
EBML_DURATION = b"\x44\x89"


# -- making recordings -------------------------------------------------------------------


def tone(samples: int, rate: int, start: int, channels: int) -> bytes:
    """A 440 Hz tone as interleaved signed 16-bit PCM."""
    values = []
    for i in range(samples):
        value = int(0.3 * 32767 * math.sin(2 * math.pi * 440 * (start + i) / rate))
        values.extend([value] * channels)
    return struct.pack(f"<{len(values)}h", *values)


def encode(
    fmt: str,
    audio_codec: str | None,
    *,
    seconds: float = 2.0,
    rate: int = 48000,
    channels: int = 1,
    video_codec: str | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode a tone (and a changing picture) with PyAV into an in-memory container."""
    buffer = io.BytesIO()
    layout = "mono" if channels == 1 else "stereo"
    with av.open(buffer, mode="w", format=fmt, options=options or {}) as out:
        audio: Any = out.add_stream(audio_codec, rate=rate, layout=layout) if audio_codec else None
        video: Any = None
        if video_codec:
            video = out.add_stream(video_codec, rate=25)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        if audio is not None:
            total, step = int(seconds * rate), 960
            for start in range(0, total, step):
                frame = av.AudioFrame(format="s16", layout=layout, samples=step)
                frame.planes[0].update(tone(step, rate, start, channels))
                frame.sample_rate, frame.pts = rate, start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
        if video is not None:
            for index in range(int(seconds * 25)):
                picture = av.VideoFrame(64, 48, "yuv420p")
                for plane in picture.planes:
                    plane.update(bytes([index * 7 % 256]) * plane.buffer_size)
                picture.pts = index
                for packet in video.encode(picture):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
    return buffer.getvalue()


@cache
def sample(kind: str) -> bytes:
    """Recordings shared by several tests, made once per session."""
    makers: dict[str, Callable[[], bytes]] = {
        "webm_opus": lambda: encode("webm", "libopus"),
        "ogg_opus": lambda: encode("ogg", "libopus"),
        "mp4_aac": lambda: encode("mp4", "aac", rate=44100, channels=2),
        "mp3": lambda: encode("mp3", "libmp3lame", rate=44100),
        "flac": lambda: encode("flac", "flac", rate=16000),
        "wav": lambda: encode("wav", "pcm_s16le", rate=16000, channels=2),
        "webm_video": lambda: encode("webm", "libopus", video_codec="libvpx"),
        # What Chrome's MediaRecorder writes: no Duration, no Cues.
        "browser_webm": lambda: encode("webm", "libopus", seconds=3.0, options={"live": "1"}),
        "browser_webm_video": lambda: encode(
            "webm", "libopus", seconds=3.0, video_codec="libvpx", options={"live": "1"}
        ),
        # Chrome's "video/x-matroska;codecs=avc1,opus": H.264 is not allowed in WebM.
        "browser_mkv_h264": lambda: encode(
            "matroska", "libopus", seconds=2.0, video_codec="libx264", options={"live": "1"}
        ),
        "video_only_webm": lambda: encode("webm", None, video_codec="libvpx"),
        "png": make_png,
    }
    return makers[kind]()


def make_png() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="image2pipe") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
        picture = av.VideoFrame(8, 8, "rgb24")
        picture.planes[0].update(bytes(picture.planes[0].buffer_size))
        picture.pts = 0
        for packet in [*stream.encode(picture), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


class RawMemory(io.RawIOBase):
    """A seekable file object that is not a real file and not a BytesIO, whose writes
    accept at most ``max_write`` bytes per call, as a RawIOBase may (the vault's decrypting
    reader and encrypted scratch file are like this)."""

    def __init__(self, data: bytes = b"", max_write: int = 1000) -> None:
        self._data = bytearray(data)
        self._pos = 0
        self._max_write = max_write

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + min(len(buffer), 4096)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def write(self, data: Any) -> int:
        piece = bytes(data[: self._max_write])
        end = self._pos + len(piece)
        if self._pos > len(self._data):
            self._data.extend(bytes(self._pos - len(self._data)))
        self._data[self._pos : end] = piece
        self._pos = end
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        del self._data[size:]
        return size

    def getvalue(self) -> bytes:
        return bytes(self._data)


def packets(data: bytes) -> dict[str, list[tuple[int | None, str]]]:
    """Per codec: every packet's timestamp and payload hash, to prove a stream copy."""
    result: dict[str, list[tuple[int | None, str]]] = {}
    container: Any
    with av.open(io.BytesIO(data)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            name = packet.stream.codec_context.codec.canonical_name
            result.setdefault(name, []).append(
                (packet.pts, hashlib.sha256(bytes(packet)).hexdigest())
            )
    return result


def speech(relative: str) -> Path:
    path = SPEECH / relative
    if not path.is_file():
        reason = f"shared speech sample {path} is not available"
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (RELISTEN_REQUIRE_SERVICES=1, so this is a failure)")
        pytest.skip(reason)
    return path


# -- probing good recordings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "container", "codec", "channels", "rate", "duration"),
    [
        ("misc/jfk.flac", "flac", "flac", 2, 44100, 11.0),
        ("ljspeech/LJ001-0001.wav", "wav", "pcm_s16le", 1, 22050, 9.655),
        ("misc/stereo_diarization.wav", "wav", "pcm_s16le", 2, 16000, 5.0),
    ],
)
def test_probe_real_speech_recordings(
    relative: str, container: str, codec: str, channels: int, rate: int, duration: float
) -> None:
    with speech(relative).open("rb") as source:
        info = probe(source)
        assert source.tell() == 0
    assert info.duration_s == pytest.approx(duration, abs=0.01)
    assert info == MediaInfo(container, info.duration_s, codec, None, channels, rate)
    assert not info.has_video
    assert not needs_remux(info)


@pytest.mark.parametrize(
    ("kind", "container", "audio", "video", "channels", "rate", "encoder"),
    [
        ("webm_opus", "matroska,webm", "opus", None, 1, 48000, "libopus"),
        ("ogg_opus", "ogg", "opus", None, 1, 48000, "libopus"),
        ("mp4_aac", "mov,mp4,m4a,3gp,3g2,mj2", "aac", None, 2, 44100, "aac"),
        ("mp3", "mp3", "mp3", None, 1, 44100, "libmp3lame"),
        ("flac", "flac", "flac", None, 1, 16000, "flac"),
        ("wav", "wav", "pcm_s16le", None, 2, 16000, "pcm_s16le"),
        ("webm_video", "matroska,webm", "opus", "vp8", 1, 48000, "libvpx"),
    ],
)
def test_probe_generated_recordings(
    kind: str,
    container: str,
    audio: str,
    video: str | None,
    channels: int,
    rate: int,
    encoder: str,
) -> None:
    if not encoder_available(encoder):
        pytest.skip(f"PyAV's bundled FFmpeg has no {encoder} encoder")
    info = probe(io.BytesIO(sample(kind)))
    assert info.container == container
    assert info.audio_codec == audio
    assert info.video_codec == video
    assert info.has_video is (video is not None)
    assert (info.channels, info.sample_rate) == (channels, rate)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert not needs_remux(info)


def test_cover_art_does_not_make_a_recording_a_video() -> None:
    if not encoder_available("libmp3lame"):
        pytest.skip("PyAV's bundled FFmpeg has no libmp3lame encoder")
    audio: Any = av.open(io.BytesIO(sample("mp3")))
    picture: Any = av.open(io.BytesIO(make_png()))
    buffer = io.BytesIO()
    with audio, picture, av.open(buffer, mode="w", format="mp3") as out:
        sound = out.add_stream_from_template(audio.streams.audio[0])
        cover = out.add_stream_from_template(picture.streams.video[0])
        cover.disposition = av.stream.Disposition.attached_pic
        for source, target in ((picture, cover), (audio, sound)):
            for packet in source.demux():
                if packet.size:
                    packet.stream = target
                    out.mux(packet)
    info = probe(io.BytesIO(buffer.getvalue()))
    assert (info.audio_codec, info.video_codec, info.has_video) == ("mp3", None, False)
    # remux keeps the sound and leaves the picture out.
    fixed = io.BytesIO()
    remux(io.BytesIO(buffer.getvalue()), fixed)
    assert list(packets(fixed.getvalue())) == ["mp3"]


def test_probe_reads_from_a_raw_file_object_and_rewinds() -> None:
    source = RawMemory(sample("webm_video"))
    source.seek(123)
    info = probe(source)  # type: ignore[arg-type]
    assert info.video_codec == "vp8"
    assert source.tell() == 0


# -- refusing what is not a usable recording -----------------------------------------------

SECRET_TEXT = b"Session notes for Cora: talked about her mother.\n"


def refusals() -> list[tuple[str, Callable[[], bytes], int, str]]:
    rng = random.Random(3)
    return [
        ("empty", lambda: b"", 422, MSG_EMPTY),
        ("text", lambda: SECRET_TEXT * 40, 415, MSG_NOT_MEDIA),
        ("random", lambda: rng.randbytes(100_000), 415, MSG_NOT_MEDIA),
        ("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + SECRET_TEXT * 50, 415, MSG_NOT_MEDIA),
        ("png image", make_png, 415, MSG_UNSUPPORTED),
        (
            "subtitles",
            lambda: b"WEBVTT\n\n00:00.000 --> 00:01.000\n" + SECRET_TEXT,
            415,
            MSG_UNSUPPORTED,
        ),  # fmt: skip
        ("video without sound", lambda: sample("video_only_webm"), 415, MSG_NO_AUDIO),
        ("wav header cut short", lambda: sample("wav")[:20], 422, MSG_DAMAGED),
        (
            "wav header only",
            lambda: sample("wav")[: sample("wav").index(b"data") + 8],
            422,
            MSG_NO_SOUND,
        ),  # fmt: skip
        ("webm cut after the header", lambda: sample("webm_opus")[:300], 422, MSG_DAMAGED),
        (
            "mp4 cut in half",
            lambda: sample("mp4_aac")[: len(sample("mp4_aac")) // 2],
            422,
            MSG_DAMAGED,
        ),  # fmt: skip
        ("mp4 garbled", lambda: sample("mp4_aac")[:40] + rng.randbytes(20_000), 422, MSG_DAMAGED),
        ("flac garbled", lambda: sample("flac")[:120] + rng.randbytes(30_000), 422, MSG_DAMAGED),
        (
            "webm garbled",
            lambda: sample("webm_opus")[:200] + rng.randbytes(20_000),
            422,
            MSG_DAMAGED,
        ),  # fmt: skip
    ]


@pytest.mark.parametrize(
    ("label", "make", "status", "message"),
    refusals(),
    ids=[case[0] for case in refusals()],
)
def test_unusable_files_are_refused_kindly(
    label: str, make: Callable[[], bytes], status: int, message: str
) -> None:
    data = make()

    class NamedUpload(io.BytesIO):
        name = "Cora Example - session 3.webm"  # a clinical file name must not leak

    source = NamedUpload(data)
    with pytest.raises(MediaError) as caught:
        probe(source)
    error = caught.value
    assert (error.status, error.user_message) == (status, message)
    for text in (str(error), error.user_message, repr(error)):
        assert "Cora" not in text
        assert "mother" not in text
    assert source.tell() == 0
    # remux refuses the same files (it must not write a "repaired" copy of garbage).
    if status == 415 or label in ("empty", "wav header cut short", "webm cut after the header"):
        with pytest.raises(MediaError):
            remux(NamedUpload(data), io.BytesIO())


def test_messages_are_plain_sentences() -> None:
    for message in (MSG_DAMAGED, MSG_EMPTY, MSG_NO_AUDIO, MSG_NO_SOUND, MSG_NOT_MEDIA,
                    MSG_UNSUPPORTED):  # fmt: skip
        assert message.endswith(".")
        assert "ffmpeg" not in message.lower() and "codec" not in message.lower()
    assert MSG_NOT_MEDIA == "This file is not an audio or video recording."


def test_a_failing_source_is_not_mistaken_for_a_damaged_recording() -> None:
    """The vault's decrypting reader raises IntegrityError on tampering; that must reach
    the caller as such, not as 'damaged recording' and never as a shorter recording."""

    class Tampered(Exception):
        pass

    data = sample("webm_opus")

    class FailsHalfway(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > len(data) // 2:
                raise Tampered("chunk 3 failed authentication")
            return super().read(size)

    with pytest.raises(Tampered):
        remux(FailsHalfway(data), io.BytesIO())
    with pytest.raises(Tampered):
        # Zeros after the header make the demuxer scan on into the failing half.
        probe(FailsHalfway(data[:200] + bytes(len(data) - 200)))


# -- browser WebM: no Duration, no Cues --------------------------------------------------


@pytest.mark.parametrize("kind", ["browser_webm", "browser_webm_video"])
def test_browser_webm_is_remuxed_with_duration_and_cues(kind: str) -> None:
    original = sample(kind)
    info = probe(io.BytesIO(original))
    assert info.duration_s is None
    assert needs_remux(info)
    assert EBML_CUES not in original

    target = io.BytesIO()
    remux(io.BytesIO(original), target)
    assert target.tell() == 0
    fixed = target.getvalue()

    fixed_info = probe(io.BytesIO(fixed))
    assert fixed_info.duration_s == pytest.approx(3.0, abs=0.1)
    assert not needs_remux(fixed_info)
    assert (fixed_info.audio_codec, fixed_info.video_codec) == (info.audio_codec, info.video_codec)
    assert (fixed_info.channels, fixed_info.sample_rate) == (info.channels, info.sample_rate)
    assert EBML_CUES in fixed and b"webm" in fixed[:64]
    # A stream copy: the same packets, byte for byte, with the same timestamps.
    assert packets(fixed) == packets(original)


def test_remux_works_between_raw_file_objects() -> None:
    original = sample("browser_webm_video")
    source = RawMemory(original)
    target = RawMemory(b"old content that must not survive" * 1000, max_write=777)
    remux(source, target)  # type: ignore[arg-type]
    fixed = target.getvalue()
    assert probe(io.BytesIO(fixed)).duration_s == pytest.approx(3.0, abs=0.1)
    assert packets(fixed) == packets(original)
    assert b"old content" not in fixed


def test_remux_keeps_codecs_webm_does_not_allow_in_matroska() -> None:
    if not encoder_available("libx264"):
        pytest.skip("PyAV's bundled FFmpeg has no libx264 encoder")
    original = sample("browser_mkv_h264")
    assert needs_remux(probe(io.BytesIO(original)))
    target = io.BytesIO()
    remux(io.BytesIO(original), target)
    fixed = target.getvalue()
    info = probe(io.BytesIO(fixed))
    assert (info.audio_codec, info.video_codec) == ("opus", "h264")
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert b"matroska" in fixed[:64] and b"webm" not in fixed[:64]
    assert packets(fixed) == packets(original)


def test_remux_of_a_normal_recording_changes_nothing_but_the_wrapper() -> None:
    original = sample("webm_opus")
    target = io.BytesIO()
    remux(io.BytesIO(original), target)
    assert probe(io.BytesIO(target.getvalue())).duration_s == pytest.approx(
        probe(io.BytesIO(original)).duration_s, abs=0.01
    )
    assert packets(target.getvalue()) == packets(original)
