"""Key-encryption keys (KEKs) and wrapping of per-recording data keys (framework-free).

Each recording has its own random data key. The database stores that key only wrapped
(AES-256-GCM) under a versioned KEK that lives outside the database (a file with mode 0600 or an
environment secret). The recording's id is the associated data of the wrap, so a wrapped key
copied onto another recording's row does not open. Rotation adds a new KEK version and makes it
active; old versions stay in the ring so existing recordings remain readable until re-wrapped.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relisten.lib.vault.stream import KEY_SIZE, TAG_SIZE, IntegrityError

_WRAP_VERSION = 1
_WRAP_NONCE_SIZE = 12
_WRAP_LABEL = b"relisten-vault-key/1\x00"
WRAPPED_KEY_SIZE = 1 + _WRAP_NONCE_SIZE + KEY_SIZE + TAG_SIZE


@dataclass
class Keyring:
    active: int
    keys: dict[int, bytes] = field(default_factory=dict)

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]


def new_keyring() -> Keyring:
    return Keyring(active=1, keys={1: os.urandom(KEY_SIZE)})


def rotated(ring: Keyring) -> Keyring:
    """A new ring (the given one is left untouched) with version max+1 active."""
    version = max(ring.keys, default=0) + 1
    return Keyring(active=version, keys={**ring.keys, version: os.urandom(KEY_SIZE)})


def keyring_to_text(ring: Keyring) -> str:
    _check_ring(ring)
    keys = {str(version): key.hex() for version, key in sorted(ring.keys.items())}
    return json.dumps({"active": ring.active, "keys": keys}, indent=2) + "\n"


def keyring_from_text(text: str) -> Keyring:
    """Parse {"active": 2, "keys": {"1": "<64 hex digits>", ...}}; ValueError names the problem
    (never the key material)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"The vault keyring is not valid JSON (line {exc.lineno}).") from None
    if not isinstance(data, dict):
        raise ValueError("The vault keyring must be a JSON object with 'active' and 'keys'.")
    active = data.get("active")
    if not isinstance(active, int) or isinstance(active, bool):
        raise ValueError("The vault keyring needs 'active', the number of the key in use.")
    raw_keys = data.get("keys")
    if not isinstance(raw_keys, dict) or not raw_keys:
        raise ValueError("The vault keyring needs 'keys', an object of version: hex key.")
    keys: dict[int, bytes] = {}
    for name, value in raw_keys.items():
        if not name.isdigit() or int(name) < 1:
            raise ValueError(f"Vault key version {name!r} is not a positive whole number.")
        if not isinstance(value, str) or len(value) != 2 * KEY_SIZE:
            raise ValueError(f"Vault key version {name} must be {2 * KEY_SIZE} hex digits.")
        try:
            keys[int(name)] = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"Vault key version {name} is not valid hex.") from None
    ring = Keyring(active=active, keys=keys)
    _check_ring(ring)
    return ring


def _check_ring(ring: Keyring) -> None:
    if ring.active not in ring.keys:
        raise ValueError(f"The active vault key version {ring.active} is not in the keyring.")
    for version, key in ring.keys.items():
        if len(key) != KEY_SIZE:
            raise ValueError(f"Vault key version {version} must be {KEY_SIZE} bytes.")


def load_keyring(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"The vault keyring file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise ValueError(f"The vault keyring file {path} is not text.") from None
    try:
        return keyring_from_text(text)
    except ValueError as exc:
        raise ValueError(f"{exc} (file: {path})") from None


def save_keyring(ring: Keyring, path: Path) -> None:
    """Write atomically: a reader (or a crash) sees the old file or the new one, never half.

    The temporary file is created with mode 0600 in the same directory, so the key is never
    readable by others, not even for a moment, and os.replace stays on one filesystem.
    """
    text = keyring_to_text(ring).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def _aad(recording_id: str) -> bytes:
    return _WRAP_LABEL + recording_id.encode("utf-8")


def wrap_key(kek: bytes, data_key: bytes, recording_id: str) -> bytes:
    """version(1) || nonce(12) || AES-256-GCM(kek, data_key, aad=label || recording_id)."""
    if len(kek) != KEY_SIZE or len(data_key) != KEY_SIZE:
        raise ValueError("key-encryption and data keys must be 32 bytes")
    nonce = os.urandom(_WRAP_NONCE_SIZE)
    sealed = AESGCM(kek).encrypt(nonce, data_key, _aad(recording_id))
    return bytes([_WRAP_VERSION]) + nonce + sealed


def unwrap_key(kek: bytes, wrapped: bytes, recording_id: str) -> bytes:
    if len(kek) != KEY_SIZE:
        raise ValueError("a key-encryption key must be 32 bytes")
    if len(wrapped) != WRAPPED_KEY_SIZE or wrapped[0] != _WRAP_VERSION:
        raise IntegrityError("The recording's stored key is malformed.")
    nonce = wrapped[1 : 1 + _WRAP_NONCE_SIZE]
    try:
        return AESGCM(kek).decrypt(nonce, wrapped[1 + _WRAP_NONCE_SIZE :], _aad(recording_id))
    except InvalidTag:
        raise IntegrityError(
            "The recording's stored key does not open with this key version "
            "or belongs to another recording."
        ) from None


def wrap_with_active(ring: Keyring, data_key: bytes, recording_id: str) -> tuple[int, bytes]:
    """Convenience: (KEK version to store next to the wrapped key, wrapped key)."""
    return ring.active, wrap_key(ring.active_key, data_key, recording_id)


def unwrap_with(ring: Keyring, version: int, wrapped: bytes, recording_id: str) -> bytes:
    """Convenience: unwrap with the stored KEK version; a missing version is an IntegrityError
    (the key cannot be recovered with this keyring)."""
    kek = ring.keys.get(version)
    if kek is None:
        raise IntegrityError(f"Vault key version {version} is not in the keyring.")
    return unwrap_key(kek, wrapped, recording_id)
