"""Killing the worker mid-transcription (SIGKILL) and starting it again ends with exactly one
transcript and a DONE run.

The real thing, out of process: `relisten worker` (database backend) on a temp SQLite file,
a READY recording of real speech encrypted in a temp vault, the run queued the way the READY
hook queues it. The harness polls the run's row until its step is "transcribe", SIGKILLs the
worker, waits until the heartbeat is older than RELISTEN_TRANSCRIPT_STALE_S, and runs
`relisten worker --burst`: on start it queues stale runs again (and marks the killed task's
own RUNNING result row failed), then works the queue and exits.

Run as a script, this module is also the helper process that prepares the database:
`python -m tests.test_pipeline_kill prepare AUDIO` (shared with tests/test_tasks_rq.py).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "data" / "speech"
LONG_AUDIO = SPEECH / "ami" / "trn00.wav"  # 30 s of a real meeting
STALE_S = 3


# ---- helper process (Django configured for the temp database by the environment) -----------

def _prepare(audio: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from relisten.core.personas import build_cast
    from relisten.transcripts.actions import start_transcription
    from tests.test_media_playback import first_session, make_recording

    call_command("migrate", verbosity=0)
    cast = build_cast("correct-horse-battery-staple")
    recording = make_recording(first_session(cast), Path(audio).read_bytes(),
                               created_by=cast.therapist_a, content_type="audio/wav")
    with transaction.atomic():  # the task is queued when this commits, as in production
        run = start_transcription(actor=None, recording=recording)
    print(json.dumps({"run": str(run.public_id), "recording": str(recording.public_id)}))


# ---- the harness (also used by tests/test_tasks_rq.py) --------------------------------------

class Harness:
    def __init__(self, root: Path, backend: str = "database",
                 extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.db = root / "db.sqlite3"
        self.kek = root / "kek.json"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELISTEN_")},
            "DJANGO_SETTINGS_MODULE": "relisten.settings",
            "PYTHONPATH": str(REPO),
            "RELISTEN_DATA_DIR": str(root),
            "RELISTEN_DATABASE_URL": f"sqlite:///{self.db}",
            "RELISTEN_SECRET_KEY": "pipeline-harness-" + "w3Rt" * 15,
            "RELISTEN_AUDIT_KEY": "c3" * 32,
            "RELISTEN_HTTPS": "0",
            "RELISTEN_DEBUG": "0",
            "RELISTEN_TASKS_BACKEND": backend,
            "RELISTEN_KEK_FILE": str(self.kek),
            "RELISTEN_UPLOAD_DIR": str(root / "uploads"),
            "RELISTEN_MEDIA_DIR": str(root / "media"),
            "RELISTEN_LOG_LEVEL": "WARNING",
            "RELISTEN_EMAIL": "memory",
            "RELISTEN_TRANSCRIPT_STALE_S": str(STALE_S),
            **(extra_env or {}),
        }
        self.run_id = ""
        self.recording_id = ""

    def prepare(self, audio: Path) -> None:
        from relisten.lib.vault.keys import new_keyring, save_keyring

        save_keyring(new_keyring(), self.kek)
        done = subprocess.run([sys.executable, "-m", "tests.test_pipeline_kill", "prepare",
                               str(audio)], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        self.run_id, self.recording_id = prepared["run"], prepared["recording"]

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.root / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "relisten.cli", "worker", *args],
                                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def log(self) -> str:
        path = self.root / "worker.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as db:
            return list(db.execute(sql, params).fetchall())

    def run_row(self) -> dict[str, Any]:
        rows = self.query("SELECT state, step, attempts, heartbeat_at, error, recording_id "
                          "FROM transcripts_transcriptrun WHERE public_id = ?",
                          self.run_id.replace("-", ""))
        assert rows, "the run row is missing"
        state, step, attempts, heartbeat, error, recording = rows[0]
        return {"state": state, "step": step, "attempts": attempts, "heartbeat_at": heartbeat,
                "error": error, "recording_pk": recording}

    def transcripts(self) -> int:
        pk = self.run_row()["recording_pk"]
        return int(self.query("SELECT count(*) FROM transcripts_transcript "
                              "WHERE recording_id = ?", pk)[0][0])

    def segments(self) -> int:
        pk = self.run_row()["recording_pk"]
        return int(self.query(
            "SELECT count(*) FROM transcripts_segment s JOIN transcripts_transcript t "
            "ON s.transcript_id = t.id WHERE t.recording_id = ?", pk)[0][0])


def speech_or_skip(path: Path) -> None:
    if not path.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{path} is missing")
        pytest.skip(f"speech sample {path} not present")


def wait_for(predicate: Any, timeout: float, what: str, harness: Harness) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{harness.log()}")


def test_sigkill_mid_transcription_then_restart_gives_exactly_one_transcript(
    tmp_path: Path,
) -> None:
    speech_or_skip(LONG_AUDIO)
    harness = Harness(tmp_path)
    harness.prepare(LONG_AUDIO)
    assert harness.run_row()["state"] == "queued"

    first = harness.worker()
    try:
        wait_for(lambda: harness.run_row()["step"] == "transcribe", 120,
                 "the run to reach the transcribe step", harness)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    killed = harness.run_row()
    assert (killed["state"], killed["step"], killed["attempts"]) == ("running", "transcribe", 1)
    assert harness.transcripts() == 0
    # The database backend's own row for the killed task is left RUNNING by the kill.
    task_path = "relisten.transcripts.tasks.transcribe_recording"
    assert harness.query("SELECT status FROM django_tasks_database_dbtaskresult "
                         "WHERE task_path = ?", task_path) == [("RUNNING",)]

    # Until its heartbeat is stale the run counts as alive: a worker starting now leaves it.
    time.sleep(STALE_S + 1.5)
    second = harness.worker("--burst")
    assert second.wait(timeout=300) == 0, harness.log()

    done = harness.run_row()
    assert done["state"] == "done", (done, harness.log())
    assert done["attempts"] == 2 and done["error"] == ""
    assert harness.transcripts() == 1
    assert harness.segments() > 0
    statuses = sorted(row[0] for row in harness.query(
        "SELECT status FROM django_tasks_database_dbtaskresult WHERE task_path = ?", task_path))
    assert statuses == ["FAILED", "SUCCESSFUL"]
    requeued = harness.query("SELECT count(*) FROM audit_auditevent "
                             "WHERE event_type = 'transcript.run_requeued'")
    assert requeued == [(1,)]
    # The audit chain written by two workers, one killed mid-write, still verifies.
    check = subprocess.run([sys.executable, "-m", "relisten.cli", "audit", "verify"],
                           cwd=REPO, env=harness.env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        _prepare(sys.argv[2])
    else:
        raise SystemExit("usage: python -m tests.test_pipeline_kill prepare AUDIO")
