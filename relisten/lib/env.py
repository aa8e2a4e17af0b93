"""Typed readers for RELISTEN_* environment variables.

Every reader fails loudly with the variable's name and the accepted forms, because a
silently ignored typo in a clinical system's configuration (say, MFA off) is worse than a
refusal to start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingError(ValueError):
    """A RELISTEN_* variable holds a value we cannot use."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_optional_str(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    return _raw(name, environ)


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingError(f"{name} must be at least {minimum}; got {number}")
    if maximum is not None and number > maximum:
        raise SettingError(f"{name} must be at most {maximum}; got {number}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise SettingError(f"{name} is a comma-separated list without empty items; got {value!r}")
    return items


def env_choice(
    name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    value = env_str(name, default, environ)
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_path(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    return default if value is None else Path(value).expanduser()
