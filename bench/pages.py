"""Benchmark of the review workspace pages for a 50-minute session; prints ONE JSON object.

A throwaway SQLite database gets the demo cast and one therapy session with a 50-minute
recording: 700 transcript passages, 7,000 words (a few doubtful, a few passages corrected) and 50
comments in every scope. The real server (gunicorn, one sync worker, as bench/vault.py runs it)
then serves, to the signed-in therapist, the two pages that show the workspace:

* the session page, `GET /sessions/<id>/` (session facts, capture and sharing panels, the
  recordings list and the workspace), and
* the recording page, `GET /recordings/<id>/transcript/` (the workspace alone; clients use it).

Figures, each with its goal and `meets_goal`: the p95 server time of each page (goal < 150 ms),
measured on loopback from sending the request to reading the last byte, after one unsampled
warm-up request; and the number of SQL queries each page takes (counted in the helper process
with Django's test client), which must not grow with the transcript: it is counted again with 70
passages, and the two counts must be equal.

Usage: .venv/bin/python bench/pages.py [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relisten.accounts.models import User
    from relisten.recordings.models import Recording
    from relisten.transcripts.models import Transcript

# A 50-minute session, as issue 5 sizes it.
SEGMENTS = 700
WORDS_PER_SEGMENT = 10
COMMENTS = 50
SECONDS = 50 * 60
SMALL_SEGMENTS = 70  # the same session a tenth as long: the query count must not change
GOAL_P95_MS = 150.0
SEED = 5

VOCABULARY = (
    "I think that the week was hard because sleep did not come and then work felt heavy "
    "so we talked about what helps when worry grows at night and how to notice it early "
    "maybe next time I could call my sister or walk before bed and write things down"
).split()


# ---- the long session (also used by tests/test_workspace.py) ----------------------------------

def build_long_transcript(
    recording: Recording, *, author: User, segments: int = SEGMENTS,
    words_per_segment: int = WORDS_PER_SEGMENT, comments: int = COMMENTS,
    seconds: float = SECONDS,
) -> Transcript:
    """A transcript as the pipeline leaves it, bulk-inserted: two speakers taking turns, words
    evenly spread over each passage (every 23rd doubtful), every 100th passage corrected once;
    and `comments` comments spread over the recording in all three scopes, a fifth of them
    replies."""
    from relisten.review.models import Comment, Scope
    from relisten.transcripts.models import Correction, Segment, Speaker, Transcript, Word

    rng = random.Random(SEED)  # noqa: S311 - sample text, not secrets
    transcript = Transcript.objects.create(
        recording=recording, language="en", duration_s=seconds, model_name="bench",
        speaker_source="diarized")
    therapist = Speaker.objects.create(transcript=transcript, label="S1", name="Therapist",
                                       role=Speaker.Role.THERAPIST)
    client = Speaker.objects.create(transcript=transcript, label="S2", name="Client",
                                    role=Speaker.Role.CLIENT)
    step = seconds / segments
    texts = [[rng.choice(VOCABULARY) for _ in range(words_per_segment)] for _ in range(segments)]
    Segment.objects.bulk_create(
        Segment(transcript=transcript, index=n, speaker=therapist if n % 2 == 0 else client,
                start=n * step, end=(n + 0.9) * step, text=" ".join(texts[n]))
        for n in range(segments)
    )
    rows = list(Segment.objects.filter(transcript=transcript).order_by("index"))
    word_step = 0.9 * step / words_per_segment
    Word.objects.bulk_create(
        (Word(segment=segment, index=i, start=segment.start + i * word_step,
              end=segment.start + (i + 1) * word_step, text=" " + word,
              probability=0.31 if (segment.index * words_per_segment + i) % 23 == 0 else 0.93)
         for segment in rows for i, word in enumerate(texts[segment.index])),
        batch_size=2000,
    )
    for segment in rows[::100]:
        old = segment.text
        segment.text = old.replace(texts[segment.index][0], "(corrected)", 1)
        segment.save(update_fields=["text"])
        Correction.objects.create(segment=segment, field="text", old_value=old,
                                  new_value=segment.text, by=author)
    scopes = [Scope.PRIVATE, Scope.CARE_TEAM, Scope.CLIENT]
    roots = Comment.objects.bulk_create(
        Comment(recording=recording, author=author, start=round(n * seconds / comments, 1),
                end=round(n * seconds / comments + 20, 1) if n % 3 == 0 else None,
                body=f"Note {n}: " + " ".join(rng.choice(VOCABULARY) for _ in range(12)),
                tags=["sleep"] if n % 4 == 0 else [], scope=scopes[n % 3])
        for n in range(comments - comments // 5)
    )
    Comment.objects.bulk_create(
        Comment(recording=recording, author=author, parent=root, start=root.start, end=root.end,
                body="A reply: " + " ".join(rng.choice(VOCABULARY) for _ in range(8)),
                scope=root.scope)
        for root in roots[: comments // 5]
    )
    return transcript


# ---- the helper process (Django loaded) -------------------------------------------------------

def _prepare_main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client as HttpClient
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from relisten.clients.models import TherapySession
    from relisten.core.personas import build_cast
    from relisten.recordings.models import Kind, Recording, State

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: hashed names
    people = build_cast("correct-horse-battery-staple")
    therapist = people.therapist_a
    http = HttpClient(HTTP_HOST="127.0.0.1")  # a host the server's settings allow
    http.force_login(therapist)
    device, _ = TOTPDevice.objects.get_or_create(user=therapist, name="bench",
                                                 defaults={"confirmed": True})
    store = http.session
    store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    store.save()
    sessions = list(TherapySession.objects.filter(episode__client=people.client_a)[:1])
    if not sessions:
        raise SystemExit("the demo cast has no session for client A")
    session = sessions[0]

    def recording_with(segments: int) -> Recording:
        # The pages never open the media, so the row needs no stored object.
        recording = Recording.objects.create(
            session=session, kind=Kind.AUDIO, created_by=therapist, state=State.READY,
            ready_at=timezone.now(), content_type="audio/webm", container="webm",
            duration_s=SECONDS * segments / SEGMENTS, audio_codec="opus", channels=1,
            sample_rate=48000, object_name="bench/none")
        build_long_transcript(recording, author=therapist, segments=segments,
                              comments=COMMENTS * segments // SEGMENTS,
                              seconds=SECONDS * segments / SEGMENTS)
        return recording

    def measure(recording: Recording) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, path in _paths(str(session.public_id), str(recording.public_id)).items():
            with CaptureQueriesContext(connection) as queries:
                response = http.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{name} answered {response.status_code}")
            found[name] = {"queries": len(queries), "bytes": len(response.content)}
        return found

    small = measure(recording_with(SMALL_SEGMENTS))
    large_recording = recording_with(SEGMENTS)
    large = measure(large_recording)
    print(json.dumps({"cookie": http.cookies["sessionid"].value,
                      "session": str(session.public_id),
                      "recording": str(large_recording.public_id),
                      "large": large, "small": small}))


def _paths(session: str, recording: str) -> dict[str, str]:
    return {"session_page": f"/sessions/{session}/?r={recording}",
            "recording_page": f"/recordings/{recording}/transcript/"}


# ---- the benchmark --------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    cookie: str
    session: str
    recording: str
    large: dict[str, Any]
    small: dict[str, Any]


def prepare(root: Path, env: dict[str, str]) -> Prepared:
    from _server import REPO

    from relisten.lib.vault.keys import new_keyring, save_keyring

    save_keyring(new_keyring(), root / "kek.json")
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(Path(__file__).resolve()), "prepare"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the session failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Prepared(cookie=found["cookie"], session=found["session"],
                    recording=found["recording"], large=found["large"], small=found["small"])


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2)}


def timed_get(server: Any, cookie: str, path: str) -> float:
    """Seconds for one GET, from sending the request until the last body byte is read."""
    from _server import auth_headers

    conn = server.connection()
    try:
        conn.connect()
        began = time.perf_counter()
        conn.request("GET", path, headers=auth_headers(cookie))
        response = conn.getresponse()
        body = response.read()
        took = time.perf_counter() - began
    finally:
        conn.close()
    if response.status != 200 or not body:
        raise RuntimeError(f"GET {path} answered {response.status}")
    return took


def serve_and_time(root: Path, requests: int) -> dict[str, Any]:
    from _server import Server, gc_pauses, server_env

    env = server_env(root)
    prepared = prepare(root, env)
    server = Server(env=env, root=root)
    server.start()
    try:
        paths = _paths(prepared.session, prepared.recording)
        first = {name: round(timed_get(server, prepared.cookie, path) * 1000, 2)
                 for name, path in paths.items()}
        gc_pauses(server.gc_log)
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(requests):  # interleaved, so both pages see the same machine
            for name, path in paths.items():
                samples[name].append(timed_get(server, prepared.cookie, path))
        pauses = gc_pauses(server.gc_log)
    finally:
        server.stop()
    return {
        "prepared": prepared,
        "first_request_ms": first,
        "latency": {name: percentiles(values) for name, values in samples.items()},
        "worker_gc_during_requests": pauses,
    }


def figures(served: dict[str, Any]) -> dict[str, Any]:
    prepared: Prepared = served["prepared"]
    found: dict[str, Any] = {}
    for name in ("session_page", "recording_page"):
        p95 = served["latency"][name]["p95_ms"]
        found[f"{name}_p95_ms"] = {"value": p95, "unit": "ms", "goal": f"< {GOAL_P95_MS:g}",
                                   "meets_goal": p95 < GOAL_P95_MS}
        queries = prepared.large[name]["queries"]
        small = prepared.small[name]["queries"]
        found[f"{name}_queries"] = {
            "value": queries, "unit": "queries",
            "goal": f"bounded: the same with {SMALL_SEGMENTS} and {SEGMENTS} passages",
            "meets_goal": queries == small, "with_70_passages": small,
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the throwaway database goes")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="pages-bench-") as tmp:
        served = serve_and_time(Path(tmp), args.requests)
    prepared: Prepared = served["prepared"]
    found = figures(served)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "session": {"passages": SEGMENTS, "words": SEGMENTS * WORDS_PER_SEGMENT,
                    "comments": COMMENTS, "minutes": SECONDS // 60},
        "requests_per_page": args.requests,
        "all_goals_met": all(item["meets_goal"] for item in found.values()),
        "figures": found,
        "details": {
            "latency": served["latency"],
            "first_request_ms": served["first_request_ms"],
            "page_bytes": {name: prepared.large[name]["bytes"] for name in prepared.large},
            "worker_gc_during_requests": served["worker_gc_during_requests"],
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        _prepare_main()
    else:
        main()
