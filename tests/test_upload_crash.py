"""Crash safety of upload completion, against the real server killed with SIGKILL.

The harness runs gunicorn (`python -m gunicorn relisten.wsgi`, one sync worker, app preloaded so
a killed worker is replaced in milliseconds) on 127.0.0.1 with a temp SQLite file, temp
upload/media dirs, a KEK file and RELISTEN_TASKS_BACKEND=immediate (finalize runs inside the
final PATCH). A verified therapist's session cookie is prepared in the database beforehand.

Each round uploads a fresh WAV over tus with http.client, sends the final PATCH and SIGKILLs the
server a random moment later: usually the worker that serves the request, every fifth round
the whole server (master and worker), which is then started again. Then `relisten vault
recover` runs (in a helper process that keeps Django loaded, so 50 rounds fit in CI time; the
real CLI runs too), and the invariants are checked from outside the app, with sqlite3 and the
framework-free vault library:

* never a READY recording whose object is partial or undecryptable, or whose plaintext differs
  from the source (open the object, verify every chunk, compare SHA-256);
* never an acknowledged upload lost: if a PATCH was answered 204 with offset N, HEAD after the
  restart reports >= N, or the recording is READY;
* nothing is left RECEIVED after recover, nothing valid ends FAILED, and an interrupted upload
  can always be resumed from HEAD to READY.

Extra rounds use the RELISTEN_TEST_CRASH_POINT hook (relisten/recordings/actions.py:
crash_point, inert unless that variable is set) to die at each named step for certain.

Run as a script, this module is also the helper process: `python -m tests.test_upload_crash
prepare|controller` (Django set up from the environment the harness gives it).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 50
WHOLE_SERVER_EVERY = 5
CRASH_POINTS = ("patch.after_fsync", "patch.after_commit", "finalize.after_verify",
                "finalize.after_put", "finalize.after_commit")
CSRF = "c" * 32


# ---- helper process (runs with Django configured for the temp database) --------------------

def _prepare() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client as HttpClient

    from relisten.clients.models import TherapySession
    from relisten.core.personas import build_cast
    from relisten.recordings.vault import keyring
    from tests.conftest import sign_in

    call_command("migrate", verbosity=0)
    cast = build_cast("correct-horse-battery-staple")
    # This harness is about uploads: without transcription consent, finalize does not go on
    # to transcribe (which the immediate backend would do inline, slowing every round).
    from relisten.consent.actions import revoke
    from relisten.consent.models import Method, Purpose

    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.TRANSCRIPTION,
           method=Method.PAPER_ATTESTED)
    http = sign_in(HttpClient(), cast.therapist_a)
    session = TherapySession.objects.filter(episode__client=cast.client_a).first()
    assert session is not None
    keyring()  # fails loudly now if the KEK file is missing
    print(json.dumps({"cookie": http.cookies["sessionid"].value,
                      "session": str(session.public_id)}))


def _controller() -> None:
    """Run `vault recover` on request, one line in, one line out, keeping Django loaded."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    for line in sys.stdin:
        if line.strip() != "recover":
            continue
        out = io.StringIO()
        try:
            call_command("vault", "recover", stdout=out)
            reply = out.getvalue().strip()
        except Exception as error:  # reported to the harness, which fails the test
            reply = f"ERROR {type(error).__name__}: {error}"
        connections.close_all()
        print(json.dumps(reply), flush=True)


# ---- the harness ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(part) for part in text.split()]
    except OSError:
        return []


GUNICORN_CONFIG = """
def when_ready(server):
    # Load what a request needs in the master, so a replacement worker is ready at once.
    from django.urls import get_resolver
    from django.db import connections
    import relisten.recordings.tus, relisten.recordings.actions, relisten.lib.media.probe
    get_resolver().url_patterns
    connections.close_all()
"""


@dataclass
class Server:
    env: dict[str, str]
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Any = None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        config = self.root / "gunicorn.conf.py"
        config.write_text(GUNICORN_CONFIG)
        self.log = open(self.root / "server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "relisten.wsgi", "--preload", "--workers", "1",
             "--bind", f"127.0.0.1:{self.port}", "--config", str(config),
             "--log-level", "warning", "--graceful-timeout", "1"],
            cwd=REPO, env={**self.env, **(extra_env or {})}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_worker(old=None)

    def worker(self) -> int | None:
        assert self.process is not None
        found = _children(self.process.pid)
        return found[0] if found else None

    def wait_worker(self, old: int | None, timeout: float = 30) -> None:
        """Until a (new) worker answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "server.log").read_text()[-3000:])
            pid = self.worker()
            if pid is not None and pid != old:
                try:
                    status, _, _ = self.request("GET", "/healthz", timeout=2)
                    if status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.01)
        raise RuntimeError("server did not come up")

    def kill_worker(self) -> None:
        pid = self.worker()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        self.wait_worker(old=pid)

    def kill_all(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for pid in _children(self.process.pid):
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        time.sleep(0.05)  # the orphaned worker dies with its process group

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def _tus_headers(cookie: str, **extra: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Cookie": f"sessionid={cookie}; csrftoken={CSRF}",
            "X-CSRFToken": CSRF, **extra}


def _wav(rng: random.Random, seconds: float = 4.0) -> bytes:
    """A different noise WAV each round (~128 KB, 2 full chunks and a tail)."""
    rate = 16000
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(rng.randbytes(int(seconds * rate) * 2))
    return out.getvalue()


@dataclass
class Round:
    upload_path: str
    recording_hex: str
    data: bytes
    acked: int = 0
    kind: str = ""


@dataclass
class Stats:
    worker_kills: int = 0
    server_kills: int = 0
    hook_crashes: int = 0
    killed_before_answer: int = 0
    killed_after_answer: int = 0
    resumed: int = 0
    states_after_recover: dict[str, int] = field(default_factory=dict)


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "db.sqlite3"
        self.kek = root / "kek.json"
        self.media = root / "media"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELISTEN_")},
            "DJANGO_SETTINGS_MODULE": "relisten.settings",
            "PYTHONPATH": str(REPO),
            "RELISTEN_DATA_DIR": str(root),
            "RELISTEN_DATABASE_URL": f"sqlite:///{self.db}",
            "RELISTEN_SECRET_KEY": "crash-harness-" + "q7Zp" * 15,
            "RELISTEN_AUDIT_KEY": "b2" * 32,
            "RELISTEN_HTTPS": "0",
            "RELISTEN_DEBUG": "0",
            "RELISTEN_TASKS_BACKEND": "immediate",
            "RELISTEN_KEK_FILE": str(self.kek),
            "RELISTEN_UPLOAD_DIR": str(root / "uploads"),
            "RELISTEN_MEDIA_DIR": str(self.media),
            "RELISTEN_LOG_LEVEL": "WARNING",
            "RELISTEN_EMAIL": "memory",
        }
        self.server = Server(self.env, root)
        self.controller: subprocess.Popen[str] | None = None
        self.cookie = ""
        self.session = ""
        self.stats = Stats()

    # -- setup ------------------------------------------------------------------------------

    def prepare(self) -> None:
        from relisten.lib.vault.keys import new_keyring, save_keyring

        save_keyring(new_keyring(), self.kek)
        done = subprocess.run([sys.executable, "-m", "tests.test_upload_crash", "prepare"],
                              cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        self.cookie, self.session = prepared["cookie"], prepared["session"]
        self.controller = subprocess.Popen(
            [sys.executable, "-m", "tests.test_upload_crash", "controller"], cwd=REPO,
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def close(self) -> None:
        if self.controller is not None:
            assert self.controller.stdin is not None
            self.controller.stdin.close()
            self.controller.wait(timeout=10)
        if self.server.process is not None and self.server.process.poll() is None:
            self.server.kill_all()

    def recover(self) -> str:
        assert self.controller is not None and self.controller.stdin is not None
        assert self.controller.stdout is not None
        self.controller.stdin.write("recover\n")
        self.controller.stdin.flush()
        reply = str(json.loads(self.controller.stdout.readline()))
        assert not reply.startswith("ERROR"), reply
        return reply

    def recover_with_cli(self) -> None:
        done = subprocess.run([sys.executable, "-m", "relisten.cli", "vault", "recover"],
                              cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    # -- tus --------------------------------------------------------------------------------

    def create(self, data: bytes, with_sha: bool) -> Round:
        import base64

        values = {"session": self.session, "kind": "audio"}
        if with_sha:
            values["sha256"] = hashlib.sha256(data).hexdigest()
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())
        status, headers, body = self.server.request(
            "POST", "/uploads/", headers=_tus_headers(self.cookie, **{
                "Upload-Length": str(len(data)), "Upload-Metadata": meta}))
        assert status == 201, (status, body)
        path = "/" + headers["Location"].split("/", 3)[3]
        upload_hex = uuid.UUID(path.rstrip("/").rsplit("/", 1)[1]).hex
        with self._db() as db:
            row = db.execute(
                "SELECT r.public_id FROM recordings_upload u JOIN recordings_recording r "
                "ON r.id = u.recording_id WHERE u.public_id = ?", (upload_hex,)).fetchone()
        return Round(upload_path=path, recording_hex=row[0], data=data)

    def patch(self, job: Round, offset: int, piece: bytes) -> int:
        status, headers, body = self.server.request(
            "PATCH", job.upload_path, piece, _tus_headers(
                self.cookie, **{"Upload-Offset": str(offset),
                                "Content-Type": "application/offset+octet-stream"}))
        assert status == 204, (status, body)
        job.acked = int(headers["Upload-Offset"])
        return job.acked

    def head(self, job: Round) -> int | None:
        status, headers, _ = self.server.request("HEAD", job.upload_path,
                                                 headers=_tus_headers(self.cookie))
        if status == 404:
            return None
        assert status == 200, status
        return int(headers["Upload-Offset"])

    def send_final(self, job: Round, offset: int) -> http.client.HTTPConnection:
        conn = self.server.connection(timeout=10)
        conn.request("PATCH", job.upload_path, body=job.data[offset:], headers=_tus_headers(
            self.cookie, **{"Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream"}))
        return conn

    def read_final(self, job: Round, conn: http.client.HTTPConnection) -> bool:
        """Whether the final PATCH was answered 204 (then its offset counts as acknowledged)."""
        try:
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        if response.status == 204:
            job.acked = int(response.getheader("Upload-Offset") or 0)
            return True
        return False

    # -- checks (from outside the app) -------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=20)

    def state_of(self, job: Round) -> tuple[str, Any, Any, str, str]:
        with self._db() as db:
            row = db.execute(
                "SELECT state, wrapped_key, kek_version, object_name, sha256 "
                "FROM recordings_recording WHERE public_id = ?", (job.recording_hex,)).fetchone()
        assert row is not None, "the recording row vanished"
        return row  # type: ignore[no-any-return]

    def assert_ready_intact(self, recording_hex: str, expected_sha: str | None) -> None:
        from relisten.lib.vault.keys import load_keyring, unwrap_key
        from relisten.lib.vault.storage import LocalStore
        from relisten.lib.vault.stream import StreamReader, verify_all

        with self._db() as db:
            state, wrapped, version, name, sha = db.execute(
                "SELECT state, wrapped_key, kek_version, object_name, sha256 "
                "FROM recordings_recording WHERE public_id = ?", (recording_hex,)).fetchone()
        assert state == "ready"
        ring = load_keyring(self.kek)
        key = unwrap_key(ring.keys[version], bytes(wrapped), str(uuid.UUID(recording_hex)))
        objects = LocalStore(self.media)
        reader = StreamReader(key, lambda o, n: objects.read_range(name, o, n), objects.size(name))
        plain_sha = verify_all(reader)
        assert plain_sha == sha
        if expected_sha is not None:
            assert plain_sha == expected_sha

    def check_round(self, job: Round) -> None:
        """After kill, restart and recover: the invariants, then resume to READY."""
        state = self.state_of(job)[0]
        self.stats.states_after_recover[state] = self.stats.states_after_recover.get(state, 0) + 1
        assert state in ("ready", "uploading"), f"after recover the recording is {state}"
        if state == "uploading":
            offset = self.head(job)
            assert offset is not None and offset >= job.acked, (offset, job.acked)
            if offset < len(job.data):
                self.patch(job, offset, job.data[offset:])  # resume: completes and finalizes
            self.stats.resumed += 1
            assert self.state_of(job)[0] == "ready"
        self.assert_ready_intact(job.recording_hex, hashlib.sha256(job.data).hexdigest())

    # -- rounds -----------------------------------------------------------------------------

    def start_round(self, rng: random.Random) -> tuple[Round, int]:
        data = _wav(rng)
        job = self.create(data, with_sha=rng.random() < 0.5)
        offset = 0
        final_from = rng.randint(len(data) // 2, len(data) - 1)
        while offset < final_from:  # one or two acknowledged PATCHes before the final one
            step = rng.randint(1, final_from - offset)
            offset = self.patch(job, offset, data[offset: offset + step])
        return job, offset

    def calibrate(self, rng: random.Random) -> float:
        """How long a final PATCH (with finalize) takes here, to aim the kills inside it."""
        times = []
        for _ in range(3):
            job, offset = self.start_round(rng)
            started = time.monotonic()
            assert self.read_final(job, self.send_final(job, offset))
            times.append(time.monotonic() - started)
            self.assert_ready_intact(job.recording_hex, hashlib.sha256(job.data).hexdigest())
        return sorted(times)[1]

    def kill_round(self, rng: random.Random, window: float, whole: bool) -> None:
        job, offset = self.start_round(rng)
        conn = self.send_final(job, offset)
        time.sleep(rng.uniform(0, window))
        if whole:
            self.server.kill_all()
            self.stats.server_kills += 1
        else:
            self.server.kill_worker()
            self.stats.worker_kills += 1
        answered = self.read_final(job, conn)
        if answered:
            self.stats.killed_after_answer += 1
        else:
            self.stats.killed_before_answer += 1
        if whole:
            self.server.start()
        self.recover()
        self.check_round(job)

    def hook_round(self, rng: random.Random, point: str) -> None:
        """Die for certain at a named point (the whole upload in one PATCH), restart, recover
        with the real `relisten vault recover` CLI, check."""
        self.server.kill_all()
        self.server.start({"RELISTEN_TEST_CRASH_POINT": point})
        data = _wav(rng)
        job = self.create(data, with_sha=True)
        conn = self.send_final(job, 0)
        answered = self.read_final(job, conn)
        assert not answered, point  # every named point dies before the answer
        self.stats.hook_crashes += 1
        self.server.kill_all()
        self.server.start()
        self.recover_with_cli()
        self.check_round(job)

    def all_ready_intact(self) -> int:
        with self._db() as db:
            rows = db.execute("SELECT public_id FROM recordings_recording "
                              "WHERE state = 'ready'").fetchall()
        for (recording_hex,) in rows:
            self.assert_ready_intact(recording_hex, None)
        return len(rows)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    running = Harness(tmp_path)
    running.prepare()
    running.server.start()
    try:
        yield running
    finally:
        running.close()


def test_sigkill_during_upload_completion_never_loses_or_corrupts(harness: Harness) -> None:
    started = time.monotonic()
    rng = random.Random(int(os.environ.get("RELISTEN_CRASH_SEED", "20261130")))
    window = harness.calibrate(rng) * 1.3
    for index in range(ROUNDS):
        whole = index % WHOLE_SERVER_EVERY == WHOLE_SERVER_EVERY - 1
        harness.kill_round(rng, window, whole=whole)
    for point in CRASH_POINTS:
        harness.hook_round(rng, point)
    checked = harness.all_ready_intact()
    stats = harness.stats
    elapsed = time.monotonic() - started
    print(f"\ncrash harness: {stats.worker_kills} worker kills + {stats.server_kills} whole-server "
          f"kills + {stats.hook_crashes} crash-point exits in {elapsed:.1f}s; "
          f"{stats.killed_before_answer} killed before the final PATCH was answered, "
          f"{stats.killed_after_answer} after; states after recover: "
          f"{stats.states_after_recover}; {stats.resumed} resumed from HEAD; "
          f"{checked} READY recordings verified; final PATCH window {window * 1000:.0f} ms")
    assert stats.worker_kills + stats.server_kills >= ROUNDS
    assert checked == ROUNDS + 3 + len(CRASH_POINTS)
    # The kills must actually land inside completion, not only after it.
    assert stats.killed_before_answer >= ROUNDS // 3
    assert stats.states_after_recover.get("uploading", 0) > 0


if __name__ == "__main__":
    {"prepare": _prepare, "controller": _controller}[sys.argv[1]]()
