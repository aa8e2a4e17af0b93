"""The real Relisten server for benchmarks, and the media they feed it.

The approach of tests/test_upload_crash.py (not imported: it needs pytest and the tests
package): gunicorn (`python -m gunicorn relisten.wsgi`, one sync worker) on 127.0.0.1 with a temp
SQLite file, temp upload/media dirs, a KEK file and RELISTEN_TASKS_BACKEND=immediate, so finalize
runs inside the final PATCH, in the same worker whose memory is sampled. A helper process with
Django loaded (`python bench/_server.py prepare N`) migrates, builds the demo cast, prepares a
verified therapist's session cookie, and encrypts an N-byte WAV straight into the media store as a
READY recording (the plaintext is generated piece by piece and never exists whole, in memory or on
disk).

Run as a script, this module is that helper process (Django set up from the environment).
"""

from __future__ import annotations

import array
import hashlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from relisten.lib.vault.keys import new_keyring, save_keyring
from relisten.lib.vault.stream import Encryptor, Header

REPO = Path(__file__).resolve().parent.parent
CSRF = "c" * 32
MIB = 1024 * 1024

# The generated recordings: a 440 Hz tone, 48 kHz 16-bit stereo (192 kB per second of audio).
RATE = 48000
CHANNELS = 2
SAMPLE_WIDTH = 2
FRAME = CHANNELS * SAMPLE_WIDTH
WAV_HEADER = 44  # what the wave module writes for PCM: RIFF, fmt and data headers


# ---- media -------------------------------------------------------------------------------------

def _tone_block(seconds: int = 20) -> bytes:
    """Whole seconds of a 440 Hz tone (440 whole cycles a second, so blocks join seamlessly)."""
    one = array.array("h")
    for n in range(RATE):
        sample = int(8000 * math.sin(2 * math.pi * 440 * n / RATE))
        one.extend((sample, sample))
    if sys.byteorder == "big":
        one.byteswap()  # WAV is little-endian
    return one.tobytes() * seconds


def write_tone_wav(sink: BinaryIO, total_bytes: int) -> float:
    """Write a PCM WAV of exactly `total_bytes` (header included) to `sink` in ~4 MB pieces;
    return its duration in seconds. `sink` needs only write() and flush(): the frame count is
    declared up front, so the wave module never seeks back to patch the header."""
    frames = (total_bytes - WAV_HEADER) // FRAME
    if frames <= 0 or WAV_HEADER + frames * FRAME != total_bytes:
        raise ValueError("a WAV size must be 44 bytes plus a whole number of 4-byte frames")
    block = _tone_block()
    with wave.open(sink, "wb") as writer:
        writer.setnchannels(CHANNELS)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(RATE)
        writer.setnframes(frames)
        left = frames * FRAME
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            writer.writeframesraw(piece)
            left -= len(piece)
    return frames / RATE


class _EncryptingSink:
    """A write-only file that seals what is written into a vault object as it arrives."""

    def __init__(self, encryptor: Encryptor, out: BinaryIO) -> None:
        self._encryptor = encryptor
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._out.write(self._encryptor.update(data))
        return len(data)

    def flush(self) -> None:
        self._out.flush()


# ---- the server --------------------------------------------------------------------------------

def server_env(root: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("RELISTEN_")},
        "DJANGO_SETTINGS_MODULE": "relisten.settings",
        "PYTHONPATH": str(REPO),
        "RELISTEN_DATA_DIR": str(root),
        "RELISTEN_DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "RELISTEN_SECRET_KEY": "vault-bench-" + "q7Zp" * 15,
        "RELISTEN_AUDIT_KEY": "b2" * 32,
        "RELISTEN_HTTPS": "0",
        "RELISTEN_DEBUG": "0",
        "RELISTEN_TASKS_BACKEND": "immediate",
        "RELISTEN_KEK_FILE": str(root / "kek.json"),
        "RELISTEN_UPLOAD_DIR": str(root / "uploads"),
        "RELISTEN_MEDIA_DIR": str(root / "media"),
        "RELISTEN_LOG_LEVEL": "WARNING",
        "RELISTEN_EMAIL": "memory",
    }


@dataclass(frozen=True)
class Prepared:
    cookie: str
    session: str
    recording: str
    object_path: Path
    recording_size: int


def prepare(root: Path, env: dict[str, str], recording_bytes: int) -> Prepared:
    """KEK, database, signed-in therapist and a READY recording of `recording_bytes`."""
    save_keyring(new_keyring(), root / "kek.json")
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(Path(__file__).resolve()), "prepare", str(recording_bytes)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the server failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Prepared(cookie=found["cookie"], session=found["session"],
                    recording=found["recording"], object_path=Path(found["object_path"]),
                    recording_size=int(found["size"]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(part) for part in (task / "children").read_text().split())
        except OSError:
            continue
    return found


@dataclass
class Server:
    env: dict[str, str]
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    freeze_gc: bool = False

    @property
    def gc_log(self) -> Path:
        return self.root / ("gc-frozen.log" if self.freeze_gc else "gc.log")

    def start(self) -> None:
        self.port = _free_port()
        config = write_config(self.root, freeze=self.freeze_gc)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server keeps it
        # One sync worker, as `relisten serve` runs (it starts three): requests here are
        # sequential, and one process makes the memory figure unambiguous. The long timeout is
        # for finalize, which the immediate tasks backend runs inside the final PATCH (in
        # production it runs in `relisten worker`, outside any request).
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "relisten.wsgi", "--workers", "1",
             "--bind", f"127.0.0.1:{self.port}", "--timeout", "600",
             "--log-level", "warning", "--config", str(config)],
            cwd=REPO, env={**self.env, "BENCH_GC_LOG": str(self.gc_log)}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "server.log").read_text()[-3000:])
            if self.worker() is not None:
                try:
                    if self.request("GET", "/healthz", timeout=5)[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("the server did not come up")

    def worker(self) -> int | None:
        assert self.process is not None
        found = children(self.process.pid)
        return found[0] if found else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection(timeout)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


# The benchmark's gunicorn config: it times the worker's full garbage collections (generation 2)
# into the file named by BENCH_GC_LOG, so tail latency can be matched to GC pauses. With
# freeze=True it is an experiment, not how Relisten runs: once the app is loaded, every view is
# imported and everything that exists moves to the permanent generation (gc.freeze), so later
# full collections scan only what requests made.
GUNICORN_CONFIG = """
import os

FREEZE = {freeze}


def post_worker_init(worker):
    import gc
    import time

    log = open(os.environ["BENCH_GC_LOG"], "a", buffering=1)
    began = [0.0]

    def timed(phase, info):
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            log.write(f"{{(time.perf_counter() - began[0]) * 1000:.2f}}\\n")

    if FREEZE:
        from django.urls import get_resolver

        get_resolver().url_patterns
        gc.collect()
        gc.freeze()
    gc.callbacks.append(timed)
"""


def write_config(root: Path, *, freeze: bool) -> Path:
    path = root / ("gunicorn-gc-freeze.conf.py" if freeze else "gunicorn.conf.py")
    path.write_text(GUNICORN_CONFIG.format(freeze=freeze))
    return path


def gc_pauses(log: Path) -> dict[str, float]:
    """The worker's full collections logged since the last call (the log is emptied)."""
    try:
        pauses = [float(line) for line in log.read_text().split()]
    except FileNotFoundError:
        pauses = []
    log.write_text("")
    return {"full_collections": len(pauses), "max_ms": round(max(pauses, default=0.0), 1),
            "total_ms": round(sum(pauses), 1)}


def auth_headers(cookie: str, **extra: str) -> dict[str, str]:
    return {"Cookie": f"sessionid={cookie}; csrftoken={CSRF}", "X-CSRFToken": CSRF, **extra}


# ---- memory ------------------------------------------------------------------------------------

def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (a finalize that spawned one counts too)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _status_kib(current, "VmRSS")
        todo.extend(children(current))
    return total


def hwm_kib(pid: int) -> int:
    """The kernel's own peak RSS of one process since it started (catches spikes between
    samples)."""
    return _status_kib(pid, "VmHWM")


@dataclass
class RssSampler:
    """Samples a process tree's RSS every `interval` seconds in a thread, peak per phase."""

    pid: int
    interval: float = 0.05
    phase: str = "start"
    peaks_kib: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = tree_rss_kib(self.pid)
            self.peaks_kib[self.phase] = max(self.peaks_kib.get(self.phase, 0), rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


def mb(kib: int) -> float:
    """kB as /proc reports them (KiB) in megabytes (10**6 bytes)."""
    return round(kib * 1024 / 1e6, 1)


# ---- the helper process ------------------------------------------------------------------------

def _prepare_main(recording_bytes: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client as HttpClient
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from relisten.clients.models import TherapySession
    from relisten.core.personas import build_cast
    from relisten.recordings.models import Kind, Recording, State
    from relisten.recordings.vault import issue_data_key, object_name_for

    call_command("migrate", verbosity=0)
    people = build_cast("correct-horse-battery-staple")
    therapist = people.therapist_a
    # Signed in with a confirmed second factor, as tests/conftest.py's sign_in does.
    http = HttpClient()
    http.force_login(therapist)
    device, _ = TOTPDevice.objects.get_or_create(user=therapist, name="bench",
                                                 defaults={"confirmed": True})
    session_store = http.session
    session_store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session_store.save()
    session = TherapySession.objects.filter(episode__client=people.client_a).first()
    assert session is not None

    recording = Recording(session=session, kind=Kind.AUDIO, created_by=therapist)
    key = issue_data_key(recording)
    name = object_name_for(recording)
    # LocalStore keeps object `a/b` at MEDIA_DIR/a/b; writing there directly (temp file, fsync,
    # rename) spares a second 2 GiB copy through put_file.
    target = Path(settings.MEDIA_DIR).joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = target.with_name(f".{target.name}~bench")
    header = Header.new()
    encryptor = Encryptor(key, header)
    with open(temp, "wb") as out:
        out.write(header.to_bytes())
        sink = _EncryptingSink(encryptor, out)
        duration = write_tone_wav(cast(BinaryIO, sink), recording_bytes)
        out.write(encryptor.finish())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    recording.state = State.READY
    recording.ready_at = timezone.now()
    recording.object_name = name
    recording.ciphertext_size = target.stat().st_size
    recording.size = sink.size
    recording.sha256 = sink.digest.hexdigest()
    recording.content_type = "audio/wav"
    recording.container = "wav"
    recording.duration_s = duration
    recording.audio_codec = "pcm_s16le"
    recording.channels = CHANNELS
    recording.sample_rate = RATE
    recording.save()
    print(json.dumps({"cookie": http.cookies["sessionid"].value, "session": str(session.public_id),
                      "recording": str(recording.public_id), "object_path": str(target),
                      "size": sink.size}))


if __name__ == "__main__":
    if sys.argv[1:2] != ["prepare"] or len(sys.argv) != 3:
        raise SystemExit("usage: _server.py prepare RECORDING_BYTES (run by bench/vault.py)")
    _prepare_main(int(sys.argv[2]))
