"""`relisten transcribe`: transcribe recordings on this computer, for researchers.

No server, no database, no network: files in, transcripts out. Used through the Django
management command (which only supplies the RELISTEN_ASR_* settings), so the logic here
stays framework-free and testable on its own.

Exit status: 0 when every file was transcribed (silence included), 1 when some file could
not be, 2 when nothing could start (no model, bad arguments).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from relisten.lib.asr.audio import SAMPLE_RATE, AudioError, decode_audio, decode_channels
from relisten.lib.asr.export import FORMATS, export
from relisten.lib.asr.types import AsrSettings, Transcript
from relisten.lib.asr.whisper import ModelNotFound, WhisperTranscriber, transcribe_channels
from relisten.lib.env import SettingError, env_choice, env_int, env_str

__all__ = [
    "MEDIA_SUFFIXES", "CliOptions", "add_arguments", "expand_inputs", "main", "run",
    "settings_from_env",
]

# What we pick up from a folder. Files named explicitly are always tried, whatever the name.
MEDIA_SUFFIXES = frozenset({
    ".wav", ".w64", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".m4v", ".mov",
    ".3gp", ".3g2", ".webm", ".mkv", ".mka", ".aac", ".aif", ".aiff", ".amr", ".wma", ".asf",
    ".caf",
})  # fmt: skip

EXIT_OK, EXIT_SOME_FAILED, EXIT_CANNOT_START = 0, 1, 2
COMPUTE_TYPES = ("int8", "int8_float16", "int16", "float16", "float32")


@dataclass(frozen=True)
class CliOptions:
    inputs: tuple[str, ...]
    fmt: str = "vtt"
    speakers: int | None = None
    stereo: bool = False
    model: str | None = None
    out: str | None = None
    diarization: bool = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR",
                        help="recordings, or folders: every audio/video file inside is transcribed")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="vtt",
                        help="output format (default: vtt)")
    parser.add_argument("--speakers", type=_speaker_count, default=None, metavar="N",
                        help="number of speakers, if known (default: estimated)")
    parser.add_argument("--stereo", action="store_true",
                        help="one speaker per channel (e.g. telehealth recordings)")
    parser.add_argument("--model", default=None, metavar="M",
                        help="model name or CTranslate2 directory (default: RELISTEN_ASR_MODEL)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for the transcripts (default: next to each recording)")
    parser.add_argument("--no-diarization", dest="diarization", action="store_false",
                        help="skip speaker labels (faster)")


def options_from(values: dict[str, Any]) -> CliOptions:
    return CliOptions(
        inputs=tuple(values["inputs"]), fmt=values["fmt"], speakers=values["speakers"],
        stereo=bool(values["stereo"]), model=values["model"], out=values["out"],
        diarization=bool(values["diarization"]),
    )


def settings_from_env(environ: Mapping[str, str] | None = None) -> AsrSettings:
    """AsrSettings from RELISTEN_ASR_* variables, for running without Django (same names and
    defaults as relisten/settings.py)."""
    default = AsrSettings()
    language = env_str("RELISTEN_ASR_LANGUAGE", default.language or "auto", environ)
    return AsrSettings(
        model=env_str("RELISTEN_ASR_MODEL", default.model, environ),
        compute_type=env_choice("RELISTEN_ASR_COMPUTE_TYPE", default.compute_type,
                                COMPUTE_TYPES, environ),
        beam_size=env_int("RELISTEN_ASR_BEAM_SIZE", default.beam_size, environ,
                          minimum=1, maximum=10),
        threads=env_int("RELISTEN_ASR_THREADS", default.threads, environ,
                        minimum=0, maximum=256),
        language=None if language == "auto" else language,
        device=env_choice("RELISTEN_ASR_DEVICE", default.device, ("auto", "cpu", "cuda"), environ),
    )


def main(argv: Sequence[str] | None = None, base: AsrSettings | None = None) -> int:
    """Entry point without Django (``python -m relisten.lib.asr.cli``): no secret key, no
    database configuration needed; settings come from RELISTEN_ASR_* variables."""
    parser = argparse.ArgumentParser(prog="relisten transcribe", description=__doc__)
    add_arguments(parser)
    options = options_from(vars(parser.parse_args(argv)))
    try:
        settings = base or settings_from_env()
    except SettingError as error:
        print(f"relisten transcribe: configuration error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    return run(options, settings)


def run(options: CliOptions, base: AsrSettings, stderr: TextIO | None = None) -> int:
    err = stderr or sys.stderr
    # The progress bar is the feedback here; per-chunk library chatter would bury it.
    for noisy in ("faster_whisper", "relisten.lib.asr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    jobs, failures = expand_inputs(options.inputs, options.out, options.fmt)
    if not jobs and not failures:
        print("relisten transcribe: nothing to transcribe.", file=err)
        return EXIT_CANNOT_START
    settings = replace(base, model=options.model) if options.model else base
    try:
        transcriber = WhisperTranscriber(settings) if jobs else None
    except ModelNotFound as exc:
        print(f"relisten transcribe: {exc}", file=err)
        return EXIT_CANNOT_START
    speakers = _Speakers.load(options, err)
    done = 0
    for source, target in jobs:
        assert transcriber is not None
        try:
            _transcribe_one(source, target, transcriber, speakers, options, err)
            done += 1
        except AudioError as exc:
            failures.append((source, exc.user_message))
            print(f"{source}: {exc.user_message}", file=err)
        except OSError as exc:
            failures.append((source, f"could not be read or written ({exc.strerror or exc})"))
            print(f"{source}: {failures[-1][1]}", file=err)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a night's batch
            failures.append((source, f"unexpected error ({type(exc).__name__})"))
            print(f"{source}: {failures[-1][1]}", file=err)
    return _summary(done, failures, err)


def expand_inputs(
    inputs: Sequence[str], out: str | None, fmt: str
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(recording, transcript path) pairs in order, and inputs that are not there."""
    jobs: list[tuple[Path, Path]] = []
    failures: list[tuple[Path, str]] = []
    taken: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(_media_in(path))
            if not found:
                failures.append((path, "no audio or video files in this folder"))
            for source in found:
                relative = source.parent.relative_to(path)
                folder = Path(out) / relative if out else source.parent
                jobs.append((source, _output_for(source, folder, fmt, taken)))
        elif path.is_file():
            jobs.append((path, _output_for(path, Path(out) if out else path.parent, fmt, taken)))
        else:
            failures.append((path, "no such file or folder"))
    return jobs, failures


def _media_in(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if not hidden and path.suffix.lower() in MEDIA_SUFFIXES and path.is_file():
            yield path


def _output_for(source: Path, folder: Path, fmt: str, taken: set[Path]) -> Path:
    """``name.fmt`` beside or under ``folder``; never the recording itself or another output."""
    candidates = (folder / f"{source.stem}.{fmt}", folder / f"{source.name}.{fmt}",
                  folder / f"{source.name}.transcript.{fmt}")
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved != source.resolve() and resolved not in taken:
            taken.add(resolved)
            return candidate
    raise AssertionError("unreachable: the last candidate is unique per source")


def _transcribe_one(
    source: Path, target: Path, transcriber: WhisperTranscriber, speakers: _Speakers | None,
    options: CliOptions, err: TextIO,
) -> None:
    started = time.monotonic()
    with source.open("rb") as stream:
        channels = decode_channels(stream) if options.stereo else []
        audio = decode_audio(stream) if not channels else channels[0]
    bar = ProgressBar(source.name, err)
    if len(channels) >= 2:
        # One speaker per channel: the channel is the speaker label, no diarization needed.
        transcript = transcribe_channels(transcriber, channels, progress=bar)
        bar.finish()
    else:
        if options.stereo:
            print(f"{source.name}: this recording has one channel; telling speakers apart by "
                  "voice instead.", file=err)
        transcript = transcriber.transcribe(audio, bar)
        bar.finish()
        if speakers is not None and not transcript.is_empty:
            print(f"{source.name}: telling speakers apart...", file=err)
            transcript = speakers.label(transcript, audio, source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, export(transcript, options.fmt, title=source.stem))
    elapsed = max(time.monotonic() - started, 1e-6)
    audio_s = audio.size / SAMPLE_RATE
    note = "no speech detected; " if transcript.is_empty else ""
    print(f"{source.name}: {note}{audio_s:.1f} s of audio in {elapsed:.1f} s "
          f"({audio_s / elapsed:.1f}x real time) -> {target}", file=err)


class _Speakers:
    """Speaker labels from relisten.lib.diarize, used when that module is installed."""

    def __init__(self, pipeline: Any, encoder_type: Any, options: CliOptions, err: TextIO) -> None:
        self.pipeline = pipeline
        self.encoder_type = encoder_type
        self._encoder: Any = None
        self.options = options
        self.err = err

    @property
    def encoder(self) -> Any:
        # Loaded on first use, once: stereo files and silent ones never need it.
        if self._encoder is None:
            self._encoder = self.encoder_type()
        return self._encoder

    @classmethod
    def load(cls, options: CliOptions, err: TextIO) -> _Speakers | None:
        if not options.diarization:
            return None
        try:
            # Imported by name so transcription works (without speakers) where it is absent.
            pipeline = importlib.import_module("relisten.lib.diarize.pipeline")
            encoder_module = importlib.import_module("relisten.lib.diarize.encoder")
        except ImportError:
            if options.speakers is not None:
                print("relisten transcribe: speaker labels are not available in this "
                      "installation (relisten.lib.diarize is missing); transcribing without "
                      "them.", file=err)
            return None
        return cls(pipeline, encoder_module.SpeakerEncoder, options, err)

    def label(self, transcript: Transcript, audio: np.ndarray, name: str) -> Transcript:
        try:
            turns = self.pipeline.diarize(
                audio, SAMPLE_RATE, num_speakers=self.options.speakers, encoder=self.encoder
            )
            roles = self.pipeline.assign_roles(turns, audio, None, self.encoder, SAMPLE_RATE)
            segments = self.pipeline.label_segments(transcript.segments, turns, roles)
        except Exception as exc:  # noqa: BLE001 - a transcript without speakers still helps
            print(f"{name}: speaker labels skipped ({type(exc).__name__}: {exc}).", file=self.err)
            return transcript
        return replace(transcript, segments=tuple(segments))


class ProgressBar:
    """A text progress bar on stderr: redrawn in place on a terminal, a few lines otherwise."""

    def __init__(self, label: str, stream: TextIO, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = -1

    def __call__(self, fraction: float) -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        # In a log file one line per quarter is plenty; on a terminal every percent.
        step = 1 if self.tty else 25
        if percent == self.shown or (percent // step == self.shown // step and percent < 100):
            return
        self.shown = percent
        filled = self.width * percent // 100
        bar = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}%"
        self.stream.write(f"\r{bar}" if self.tty else f"{bar}\n")
        self.stream.flush()

    def finish(self) -> None:
        self(1.0)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _write_atomically(target: Path, data: bytes) -> None:
    """A half-written transcript must never look finished; write aside, then rename."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _summary(done: int, failures: list[tuple[Path, str]], err: TextIO) -> int:
    if not failures:
        print(f"relisten transcribe: transcribed {done} file{'s' if done != 1 else ''}.", file=err)
        return EXIT_OK
    print(f"relisten transcribe: transcribed {done}, could not transcribe {len(failures)}:",
          file=err)
    for path, why in failures:
        print(f"  {path}: {why}", file=err)
    return EXIT_SOME_FAILED


def _speaker_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--speakers needs a whole number, e.g. 2") from None
    if not 1 <= count <= 20:
        raise argparse.ArgumentTypeError("--speakers must be between 1 and 20")
    return count


if __name__ == "__main__":
    raise SystemExit(main())
