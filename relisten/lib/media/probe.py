"""Recognise an uploaded recording, and repair browser WebM so it can be played and seeked.

Everything here works on seekable binary file objects (a real file, ``io.BytesIO``, the
vault's decrypting ``StreamReader.raw_file()``, an ``EncryptedScratchFile``), so a recording
never has to exist as plaintext on disk.

Accepted containers (FFmpeg demuxer names): WAV/W64, MP3, FLAC, Ogg, Matroska/WebM,
MP4/M4A/MOV/3GP, ADTS AAC, AIFF, AMR, ASF/WMA, CAF. FFmpeg is told to refuse every other
demuxer, which keeps its large attack surface of rarely used parsers away from uploads.
A recording must have at least one audio stream whose first packets decode.

Problems are reported as ``MediaError`` with an HTTP status (415: not a recording we
accept; 422: a recording that is damaged or unusable) and a sentence a clinician can act
on. Neither message ever contains file content or the uploaded file's name.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

import av
import av.error
import av.stream

__all__ = [
    "ACCEPTED_DEMUXERS",
    "MediaError",
    "MediaInfo",
    "needs_remux",
    "probe",
    "remux",
]

# FFmpeg's demuxer short names. ``format_whitelist`` matches these one by one, and the
# container names we report are FFmpeg's long forms (e.g. "mov,mp4,m4a,3gp,3g2,mj2").
ACCEPTED_DEMUXERS: tuple[str, ...] = (
    "wav", "w64", "mp3", "flac", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "3gp",
    "3g2", "mj2", "aac", "aiff", "amr", "asf", "caf",
)  # fmt: skip
_WHITELIST = ",".join(ACCEPTED_DEMUXERS)
_MATROSKA = "matroska,webm"
# WebM allows only these; anything else (H.264 from Chrome's "x-matroska", PCM) stays in
# Matroska, which browsers other than Safari play as well.
_WEBM_CODECS = {"opus", "vorbis", "vp8", "vp9", "av1"}
# How far into the audio stream we look for a frame that decodes before calling the
# recording damaged: generous enough for codec priming, small enough to stay fast.
_DECODE_PACKET_LIMIT = 64

MSG_NOT_MEDIA = "This file is not an audio or video recording."
MSG_UNSUPPORTED = (
    "This type of file is not supported. Please upload an audio or video recording, "
    "for example WAV, MP3, M4A, FLAC, Ogg or WebM."
)
MSG_NO_AUDIO = (
    "This recording has no sound track, so it cannot be used. Please upload a recording with sound."
)
MSG_EMPTY = "This file is empty. The upload may have been interrupted; please try again."
MSG_NO_SOUND = "This recording contains no sound. It may have been stopped right after it started."
MSG_DAMAGED = (
    "This recording seems to be damaged and cannot be played. "
    "Try exporting it again from the recorder."
)


class MediaError(Exception):
    """An upload we cannot use. ``str()`` is a technical reason for logs, without content."""

    def __init__(self, status: int, user_message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.user_message = user_message


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float | None
    audio_codec: str | None
    video_codec: str | None
    channels: int | None
    sample_rate: int | None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


class _Reader:
    """What PyAV sees of the caller's source.

    It has no ``name`` (PyAV would put the upload's file name into error messages), turns
    ``None``/``bytearray`` reads into ``bytes``, and remembers any exception the source
    raised: PyAV sometimes only logs such an exception and reports end of file, and an
    integrity failure in the vault must never be mistaken for a short recording.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._source.read(size)
        except BaseException as exc:
            self.failure = self.failure or exc
            raise
        return b"" if data is None else bytes(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._source.seek(offset, whence)
        except BaseException as exc:
            self.failure = self.failure or exc
            raise

    def tell(self) -> int:
        return self._source.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


class _Writer:
    """What PyAV sees of the caller's target: writes loop until every byte is taken
    (a ``RawIOBase`` may accept fewer bytes per call, which FFmpeg would not notice)."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = self._target.write(view)
            if written is None or written <= 0:
                raise OSError("the target accepted no bytes")
            view = view[written:]
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._target.seek(offset, whence)

    def tell(self) -> int:
        return self._target.tell()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


def _rewind(source: BinaryIO) -> None:
    if not source.seekable():
        raise ValueError("media probing needs a seekable file object")
    source.seek(0)


def _is_empty(source: BinaryIO) -> bool:
    first = source.read(1)
    source.seek(0)
    return not first


def _looks_like_accepted_media(head: bytes) -> bool:
    """Magic numbers of the containers we accept. When FFmpeg cannot open a file that
    starts like one of these, the file is a damaged recording (422), not a wrong type."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True
    starts = (
        b"fLaC",
        b"OggS",
        b"\x1a\x45\xdf\xa3",  # EBML: Matroska / WebM
        b"ID3",
        b"#!AMR",
        b"caff",
        b"riff\x2e\x91\xcf\x11",  # Sony Wave64
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF / WMA
    )
    if head.startswith(starts):
        return True
    # MPEG audio or ADTS AAC frame sync.
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def _open_failed(exc: av.error.FFmpegError, source: BinaryIO) -> MediaError:
    reason = f"cannot open media ({type(exc).__name__}, errno {exc.errno})"
    source.seek(0)
    head = source.read(16) or b""
    source.seek(0)
    if isinstance(exc, av.error.ArgumentError):
        # EINVAL from avformat_open_input: FFmpeg recognised the file, but as a format
        # outside our whitelist (an image, subtitles, AVI, ...).
        return MediaError(415, MSG_UNSUPPORTED, reason)
    if _looks_like_accepted_media(bytes(head)):
        return MediaError(422, MSG_DAMAGED, reason)
    return MediaError(415, MSG_NOT_MEDIA, reason)


def _open_input(reader: _Reader) -> Any:
    return av.open(reader, mode="r", options={"format_whitelist": _WHITELIST})


def _stream_duration(stream: Any) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _first_audio_decodes(container: Any, stream: Any) -> tuple[int, int]:
    """Decode the start of ``stream``; return (packets read, frames decoded)."""
    frames = packets = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            break  # the demuxer's end-of-stream marker
        packets += 1
        try:
            frames += len(packet.decode())
        except av.error.FFmpegError:
            pass  # a bad packet; the recording is damaged if none of the first ones decode
        if frames or packets >= _DECODE_PACKET_LIMIT:
            return packets, frames
    if packets:
        try:
            frames += len(stream.codec_context.decode(None))  # drain a decoder with delay
        except av.error.FFmpegError:
            pass
    return packets, frames


def probe(source: BinaryIO) -> MediaInfo:
    """Describe a recording, or raise MediaError. Leaves ``source`` positioned at 0.

    An exception raised by ``source`` itself (the vault's IntegrityError, an I/O error)
    reaches the caller as it is, never disguised as a damaged or short recording."""
    _rewind(source)
    if _is_empty(source):
        raise MediaError(422, MSG_EMPTY, "empty file")
    reader = _Reader(source)
    try:
        info = _probe_with(reader, source)
        reader.raise_failure()
        return info
    except MediaError:
        reader.raise_failure()
        raise
    finally:
        source.seek(0)


def _probe_with(reader: _Reader, source: BinaryIO) -> MediaInfo:
    try:
        container = _open_input(reader)
    except av.error.FFmpegError as exc:
        reader.raise_failure()
        raise _open_failed(exc, source) from None
    try:
        return _describe(container)
    except av.error.FFmpegError as exc:
        reader.raise_failure()
        raise MediaError(422, MSG_DAMAGED, f"cannot read media ({type(exc).__name__})") from None
    finally:
        container.close()


def _describe(container: Any) -> MediaInfo:
    audio_streams = [s for s in container.streams.audio if s.codec_context is not None]
    video_streams = [s for s in container.streams.video if s.codec_context is not None]
    if not audio_streams:
        raise MediaError(415, MSG_NO_AUDIO, "no audio stream")
    audio = audio_streams[0]
    ctx = audio.codec_context
    channels = int(ctx.channels or 0)
    sample_rate = int(ctx.sample_rate or 0)
    if channels <= 0 or sample_rate <= 0:
        raise MediaError(422, MSG_DAMAGED, "audio stream without channels or sample rate")

    if container.duration is not None:
        duration: float | None = container.duration / 1_000_000
    else:
        duration = _stream_duration(audio)

    packets, frames = _first_audio_decodes(container, audio)
    if frames == 0:
        if packets == 0 and (duration is None or duration < 0.1):
            # Headers and nothing else: a recording stopped as soon as it started.
            raise MediaError(422, MSG_NO_SOUND, "audio stream has no packets")
        # The file promises sound (packets, or a length in its header) but none decodes.
        raise MediaError(422, MSG_DAMAGED, f"audio does not decode ({packets} packets read)")

    # Images (cover art) inside audio files are video streams to FFmpeg; they do not
    # make a recording a video.
    moving = [s for s in video_streams if not _is_attached_picture(s)]
    return MediaInfo(
        container=str(container.format.name),
        duration_s=duration,
        audio_codec=_codec_name(ctx),
        video_codec=_codec_name(moving[0].codec_context) if moving else None,
        channels=channels,
        sample_rate=sample_rate,
    )


def _codec_name(ctx: Any) -> str:
    # The codec's own name ("mp3"), not the decoder FFmpeg picked for it ("mp3float").
    return str(ctx.codec.canonical_name)


def _is_attached_picture(stream: Any) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def needs_remux(info: MediaInfo) -> bool:
    """True for Matroska/WebM that does not state its duration, like the files browsers'
    MediaRecorder writes (they also lack Cues, so players can neither show the length nor
    seek). ``remux`` fixes both without re-encoding."""
    return info.container == _MATROSKA and info.duration_s is None


def remux(source: BinaryIO, target: BinaryIO) -> None:
    """Copy the audio and video streams of ``source`` into ``target`` as WebM (Matroska if
    a codec is not allowed in WebM), packet for packet, with Duration and Cues.

    ``target`` must be seekable (the muxer goes back to write Duration and the index); it
    is truncated first and left positioned at 0. Raises MediaError for unusable input.
    """
    _rewind(source)
    _rewind(target)
    try:
        target.truncate(0)
    except (io.UnsupportedOperation, OSError):
        # Without truncate, old bytes past the new end would follow the WebM; only an
        # empty target is safe then.
        if target.seek(0, io.SEEK_END) != 0:
            raise ValueError("remux needs an empty or truncatable target") from None
        target.seek(0)
    reader = _Reader(source)
    try:
        _remux_with(reader, source, _Writer(target))
        reader.raise_failure()
    except MediaError:
        reader.raise_failure()
        raise
    finally:
        source.seek(0)
        target.seek(0)


def _remux_with(reader: _Reader, source: BinaryIO, writer: _Writer) -> None:
    try:
        container = _open_input(reader)
    except av.error.FFmpegError as exc:
        reader.raise_failure()
        raise _open_failed(exc, source) from None
    try:
        _copy_streams(container, writer)
    except av.error.FFmpegError as exc:
        reader.raise_failure()
        raise MediaError(422, MSG_DAMAGED, f"cannot copy media ({type(exc).__name__})") from None
    finally:
        container.close()


def _copy_streams(container: Any, writer: _Writer) -> None:
    streams = [
        s
        for s in (*container.streams.audio, *container.streams.video)
        if not _is_attached_picture(s)
    ]
    if not any(s.type == "audio" for s in streams):
        raise MediaError(415, MSG_NO_AUDIO, "no audio stream")
    codecs = {_codec_name(s.codec_context) for s in streams}
    out_format = "webm" if codecs <= _WEBM_CODECS else "matroska"
    with av.open(writer, mode="w", format=out_format) as output:
        mapping = {s.index: output.add_stream_from_template(s) for s in streams}
        for packet in container.demux(*streams):
            # The demuxer ends each stream with an empty flush packet; the muxer must not
            # see it. (Do not test ``dts is None``: Matroska stores only pts, so H.264 with
            # B-frames has real packets, keyframes included, whose dts is unknown.)
            if packet.size == 0:
                continue
            packet.stream = mapping[packet.stream.index]
            output.mux(packet)
