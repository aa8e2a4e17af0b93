"""The project's promises to operators: configuration documented, CLI present, SQLite tuned, jobs
queued only after commit."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from relisten.core.jobs import enqueue_on_commit
from tests import jobs_for_tests

ROOT = Path(__file__).resolve().parent.parent


def _settings_variables() -> set[str]:
    source = (ROOT / "relisten" / "settings.py").read_text()
    return set(re.findall(r'"(RELISTEN_[A-Z0-9_]+)"', source))


def test_every_setting_is_in_env_example_and_readme() -> None:
    variables = _settings_variables()
    assert len(variables) >= 15
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    missing_example = {v for v in variables if not re.search(rf"^{v}=", example, re.M)}
    assert not missing_example, f"not in .env.example: {sorted(missing_example)}"
    missing_readme = {v for v in variables
                      if v not in readme and not v.startswith("RELISTEN_EMAIL_")}
    assert not missing_readme, f"not in the README configuration table: {sorted(missing_readme)}"


def test_relisten_console_command_lists_its_commands() -> None:
    script = Path(sys.executable).parent / "relisten"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("serve", "worker", "audit verify", "demo"):
        assert command in result.stdout


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite-only tuning; this run uses " + connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in connection.settings_dict["OPTIONS"]["init_command"]


@pytest.mark.django_db(transaction=True)
def test_jobs_are_enqueued_only_when_the_transaction_commits() -> None:
    jobs_for_tests.RAN.clear()
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    with transaction.atomic():
        enqueue_on_commit(jobs_for_tests.note_ran, kept)
        assert jobs_for_tests.RAN == []  # not before commit
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(jobs_for_tests.note_ran, dropped)
        raise RuntimeError("roll back")
    assert jobs_for_tests.RAN == [str(kept)]


def test_task_arguments_must_be_ids() -> None:
    with pytest.raises(TypeError, match="ids"):
        enqueue_on_commit(jobs_for_tests.note_ran, {"text": "what the client said"})
    with pytest.raises(TypeError):
        enqueue_on_commit(jobs_for_tests.note_ran, "x" * 500)


def _database_url_for_subprocess() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    host = settings.get("HOST") or "127.0.0.1"
    return f"postgres://{settings['USER']}@{host}:{settings.get('PORT') or 5432}/{settings['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_database_worker_runs_queued_jobs(settings: object) -> None:
    """The default backend end to end: enqueue in the web process, `relisten worker` runs it."""
    import os

    from django.test import override_settings
    from django_tasks_db.models import DBTaskResult

    if connection.vendor == "sqlite" and str(connection.settings_dict["NAME"]).startswith(
        "file:memorydb"
    ):
        pytest.skip("in-memory SQLite cannot be shared with a worker process")
    with override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}):
        with transaction.atomic():
            enqueue_on_commit(jobs_for_tests.note_ran, uuid.uuid4())
        assert DBTaskResult.objects.count() == 1
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT),
               "RELISTEN_TASKS_BACKEND": "database",
               "RELISTEN_DATABASE_URL": _database_url_for_subprocess()}
        result = subprocess.run(
            [str(Path(sys.executable).parent / "relisten"), "worker", "--burst"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert DBTaskResult.objects.get().status == "SUCCESSFUL"


def test_collectstatic_with_the_production_manifest_storage(tmp_path: Path, settings: Any) -> None:
    """`relisten serve` outside debug runs collectstatic with whitenoise's manifest storage,
    which refuses files that name missing source maps or other missing files."""
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert "relisten/player.js" in manifest and "vendor/tus-js-client-4.3.1.min.js" in manifest
