"""The RQ backend on the real Redis: a transcription queued with RELISTEN_TASKS_BACKEND=rq
is run by `relisten worker --burst` (rqworker) and leaves a transcript.

Everything runs out of process with the rq settings, as an operator would run it; this
process only looks at Redis and at the SQLite file. Skipped when Redis is unreachable, unless
RELISTEN_REQUIRE_SERVICES=1, which makes that a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.test_pipeline_kill import REPO, SPEECH, Harness, speech_or_skip

REDIS_URL = os.environ.get("RELISTEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
AUDIO = SPEECH / "misc" / "jfk.flac"


def redis_or_skip() -> object:
    from redis import Redis
    from redis.exceptions import RedisError

    connection = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except (RedisError, OSError) as error:
        reason = f"Redis at {REDIS_URL} is unreachable ({type(error).__name__})"
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return connection


def test_rq_worker_runs_a_queued_transcription(tmp_path: Path) -> None:
    from rq import Queue

    redis = redis_or_skip()
    speech_or_skip(AUDIO)
    harness = Harness(tmp_path, backend="rq", extra_env={"RELISTEN_REDIS_URL": REDIS_URL})
    queue = Queue("default", connection=redis)  # type: ignore[arg-type]
    before = set(queue.job_ids)
    harness.prepare(AUDIO)
    try:
        new = [job for job in queue.get_jobs() if job.id not in before]
        assert len(new) == 1, "starting a transcription queues exactly one job"
        job = new[0]
        # The job carries the run's id and nothing else: no audio, no names, no text.
        assert job.func_name == "relisten.transcripts.tasks.transcribe_recording"
        assert list(job.args) == [harness.run_id] and job.kwargs == {}
        uuid.UUID(harness.run_id)
        assert harness.run_row()["state"] == "queued"

        worker = harness.worker("--burst")
        assert worker.wait(timeout=300) == 0, harness.log()
    finally:
        for job_id in set(queue.job_ids) - before:
            queue.remove(job_id)

    run = harness.run_row()
    assert run["state"] == "done", (run, harness.log())
    assert harness.transcripts() == 1 and harness.segments() > 0
    job.refresh()
    assert job.get_status() == "finished"
    assert job.return_value() == "done"


def test_rq_settings_pass_the_system_checks(tmp_path: Path) -> None:
    """django-tasks-rq's own checks (django_rq installed, queues configured, rq version)."""
    harness = Harness(tmp_path, backend="rq", extra_env={"RELISTEN_REDIS_URL": REDIS_URL})
    done = subprocess.run([sys.executable, "-m", "relisten.cli", "check"], cwd=REPO,
                          env=harness.env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
