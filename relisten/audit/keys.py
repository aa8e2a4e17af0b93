"""Where the audit HMAC key comes from: an environment secret or a key file, never the database."""

from __future__ import annotations

import os
import secrets
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _read_key_file(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ImproperlyConfigured(f"audit key file {path} does not hold a hex key") from None
    if len(key) < 32:
        raise ImproperlyConfigured(f"audit key file {path} holds fewer than 32 bytes")
    return key


def create_key_file(path: Path) -> bytes:
    """Write a new random key readable only by its owner; refuse to overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


@cache
def audit_key() -> bytes:
    if settings.AUDIT_KEY_HEX:
        try:
            key = bytes.fromhex(settings.AUDIT_KEY_HEX)
        except ValueError:
            raise ImproperlyConfigured("RELISTEN_AUDIT_KEY must be hex") from None
        if len(key) < 32:
            raise ImproperlyConfigured(
                "RELISTEN_AUDIT_KEY must be at least 32 bytes (64 hex digits)"
            )
        return key
    path = Path(settings.AUDIT_KEY_FILE)
    if path.exists():
        return _read_key_file(path)
    if settings.DEBUG:
        # A laptop demo gets a key on first use; production must provision one deliberately
        # (`relisten audit init-key`), so a missing mount never silently starts a new chain.
        return create_key_file(path)
    raise ImproperlyConfigured(
        f"No audit key: set RELISTEN_AUDIT_KEY or create {path} with `relisten audit init-key`"
    )
