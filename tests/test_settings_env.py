"""RELISTEN_* readers fail loudly, naming the variable; a bad value stops start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relisten.lib.env import (
    SettingError,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_optional_str,
    env_path,
    env_str,
)

REPO = Path(__file__).resolve().parent.parent


# ---- booleans ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", "on", " on "])
def test_bool_true_forms(raw: str) -> None:
    assert env_bool("RELISTEN_X", False, {"RELISTEN_X": raw}) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "OFF"])
def test_bool_false_forms(raw: str) -> None:
    assert env_bool("RELISTEN_X", True, {"RELISTEN_X": raw}) is False


@pytest.mark.parametrize("environ", [{}, {"RELISTEN_X": ""}, {"RELISTEN_X": "   "}])
def test_bool_unset_or_blank_uses_default(environ: dict[str, str]) -> None:
    assert env_bool("RELISTEN_X", True, environ) is True
    assert env_bool("RELISTEN_X", False, environ) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "y", "tru"])
def test_bool_rejects_anything_else(raw: str) -> None:
    with pytest.raises(SettingError) as error:
        env_bool("RELISTEN_REQUIRE_MFA", True, {"RELISTEN_REQUIRE_MFA": raw})
    assert "RELISTEN_REQUIRE_MFA" in str(error.value)
    assert repr(raw) in str(error.value)


# ---- whole numbers -----------------------------------------------------------------------------

def test_int_reads_and_defaults() -> None:
    assert env_int("RELISTEN_N", 30, {"RELISTEN_N": " 45 "}) == 45
    assert env_int("RELISTEN_N", 30, {}) == 30


@pytest.mark.parametrize("raw", ["ten", "1.5", "30m", "0x10"])
def test_int_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(SettingError, match="RELISTEN_SESSION_IDLE_MINUTES must be a whole number"):
        env_int("RELISTEN_SESSION_IDLE_MINUTES", 30, {"RELISTEN_SESSION_IDLE_MINUTES": raw})


def test_int_enforces_bounds() -> None:
    environ = {"RELISTEN_N": "0"}
    with pytest.raises(SettingError, match="RELISTEN_N must be at least 1; got 0"):
        env_int("RELISTEN_N", 5, environ, minimum=1)
    with pytest.raises(SettingError, match="RELISTEN_N must be at most 10; got 11"):
        env_int("RELISTEN_N", 5, {"RELISTEN_N": "11"}, maximum=10)
    assert env_int("RELISTEN_N", 5, {"RELISTEN_N": "10"}, minimum=1, maximum=10) == 10


# ---- lists, choices, strings, paths ------------------------------------------------------------

def test_list_splits_and_trims() -> None:
    environ = {"RELISTEN_ALLOWED_HOSTS": "a.example, b.example ,c"}
    assert env_list("RELISTEN_ALLOWED_HOSTS", [], environ) == ["a.example", "b.example", "c"]
    default = ["localhost"]
    result = env_list("RELISTEN_ALLOWED_HOSTS", default, {})
    assert result == ["localhost"] and result is not default  # callers may append safely


@pytest.mark.parametrize("raw", ["a,,b", "a,", ",a", " , "])
def test_list_rejects_empty_items(raw: str) -> None:
    with pytest.raises(SettingError) as error:
        env_list("RELISTEN_ALLOWED_HOSTS", [], {"RELISTEN_ALLOWED_HOSTS": raw})
    assert "RELISTEN_ALLOWED_HOSTS" in str(error.value)


def test_choice_accepts_listed_values_only() -> None:
    choices = ("database", "rq", "immediate")
    assert env_choice("RELISTEN_TASKS_BACKEND", "database", choices, {}) == "database"
    assert env_choice("RELISTEN_TASKS_BACKEND", "database", choices,
                      {"RELISTEN_TASKS_BACKEND": "rq"}) == "rq"
    with pytest.raises(SettingError) as error:
        env_choice("RELISTEN_TASKS_BACKEND", "database", choices,
                   {"RELISTEN_TASKS_BACKEND": "celery"})
    message = str(error.value)
    assert "RELISTEN_TASKS_BACKEND" in message
    assert "database, rq, immediate" in message and "'celery'" in message


def test_strings_and_paths() -> None:
    assert env_str("RELISTEN_S", "d", {"RELISTEN_S": "  value "}) == "value"
    assert env_str("RELISTEN_S", "d", {"RELISTEN_S": ""}) == "d"
    assert env_optional_str("RELISTEN_S", {}) is None
    assert env_optional_str("RELISTEN_S", {"RELISTEN_S": " "}) is None
    assert env_path("RELISTEN_P", Path("/srv"), {}) == Path("/srv")
    assert env_path("RELISTEN_P", Path("/srv"), {"RELISTEN_P": "~/data"}) == Path.home() / "data"


def test_readers_use_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELISTEN_PROBE_FLAG", "no")
    assert env_bool("RELISTEN_PROBE_FLAG", True) is False
    monkeypatch.setenv("RELISTEN_PROBE_FLAG", "maybe")
    with pytest.raises(SettingError, match="RELISTEN_PROBE_FLAG"):
        env_bool("RELISTEN_PROBE_FLAG", True)


# ---- start-up ----------------------------------------------------------------------------------

def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELISTEN_", "DJANGO_"))}
    clean.update({"RELISTEN_DEBUG": "1", "RELISTEN_DATA_DIR": str(tmp_path),
                  "DJANGO_SETTINGS_MODULE": "relisten.settings", **env})
    return subprocess.run([sys.executable, str(REPO / "manage.py"), "check"], env=clean, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_good_environment_starts(tmp_path: Path) -> None:
    result = _start(tmp_path, RELISTEN_REQUIRE_MFA="off")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("RELISTEN_REQUIRE_MFA", "maybe"),
    ("RELISTEN_SESSION_IDLE_MINUTES", "half an hour"),
    ("RELISTEN_SESSION_IDLE_MINUTES", "0"),
    ("RELISTEN_LOGIN_FAILURE_LIMIT", "-3"),
    ("RELISTEN_ALLOWED_HOSTS", "relisten.example,,"),
    ("RELISTEN_TASKS_BACKEND", "celery"),
])
def test_bad_value_stops_start_up_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    result = _start(tmp_path, **{name: value})
    assert result.returncode != 0
    # The last line is what an operator reads first; it must say which variable to fix.
    last_line = result.stderr.strip().splitlines()[-1]
    assert name in last_line
    assert repr(value) in last_line or "must be" in last_line
