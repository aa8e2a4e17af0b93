"""relisten.lib.vault.keys: versioned key-encryption keys and wrapped data keys, no Django."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from relisten.lib.vault.keys import (
    WRAPPED_KEY_SIZE,
    Keyring,
    keyring_from_text,
    keyring_to_text,
    load_keyring,
    new_keyring,
    rotated,
    save_keyring,
    unwrap_key,
    unwrap_with,
    wrap_key,
    wrap_with_active,
)
from relisten.lib.vault.stream import (
    Encryptor,
    Header,
    IntegrityError,
    StreamReader,
    new_data_key,
)

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))
HEX = "ab" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- keyring ----------------------------------------------------------------------------------


def test_new_keyring_has_one_random_active_key() -> None:
    ring = new_keyring()
    assert ring.active == 1
    assert list(ring.keys) == [1]
    assert len(ring.keys[1]) == 32
    assert new_keyring().keys[1] != ring.keys[1]


def test_rotation_adds_a_new_active_version_and_keeps_the_old() -> None:
    ring = new_keyring()
    newer = rotated(ring)
    assert newer.active == 2
    assert newer.keys[1] == ring.keys[1]
    assert newer.keys[2] != ring.keys[1] and len(newer.keys[2]) == 32
    assert ring.active == 1 and list(ring.keys) == [1]  # the original is not changed
    assert rotated(Keyring(active=3, keys={3: KEK, 7: OTHER_KEK})).active == 8


def test_save_and_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    ring = rotated(new_keyring())
    path = tmp_path / "vault-keys.json"
    save_keyring(ring, path)
    assert mode(path) == 0o600
    assert load_keyring(path) == ring
    assert json.loads(path.read_text())["active"] == 2
    assert os.listdir(tmp_path) == ["vault-keys.json"]  # no temp file left behind


def test_saving_over_a_loose_file_tightens_it_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "vault-keys.json"
    path.write_text("old")
    path.chmod(0o644)
    save_keyring(new_keyring(), path)
    assert mode(path) == 0o600
    assert load_keyring(path).active == 1


def test_a_failed_save_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vault-keys.json"
    old = new_keyring()
    save_keyring(old, path)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_keyring(rotated(old), path)
    monkeypatch.undo()
    assert load_keyring(path) == old
    assert os.listdir(tmp_path) == ["vault-keys.json"]


def test_keyring_text_round_trip_for_environment_secrets() -> None:
    ring = Keyring(active=2, keys={1: KEK, 2: OTHER_KEK})
    text = keyring_to_text(ring)
    assert keyring_from_text(text) == ring
    assert keyring_from_text('{"active": 1, "keys": {"1": "%s"}}'.replace("%s", HEX)).keys == {
        1: bytes.fromhex(HEX)
    }
    assert (
        keyring_from_text('{"active": 1, "keys": {"1": "%s"}}'.replace("%s", HEX.upper())).active
        == 1
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"keys": {"1": "%s"}}'.replace("%s", HEX), "needs 'active'"),
        ('{"active": true, "keys": {"1": "%s"}}'.replace("%s", HEX), "needs 'active'"),
        ('{"active": "1", "keys": {"1": "%s"}}'.replace("%s", HEX), "needs 'active'"),
        ('{"active": 1}', "needs 'keys'"),
        ('{"active": 1, "keys": {}}', "needs 'keys'"),
        ('{"active": 1, "keys": ["%s"]}'.replace("%s", HEX), "needs 'keys'"),
        (
            '{"active": 1, "keys": {"one": "%s"}}'.replace("%s", HEX),
            "'one' is not a positive whole number",
        ),
        (
            '{"active": 0, "keys": {"0": "%s"}}'.replace("%s", HEX),
            "'0' is not a positive whole number",
        ),
        (
            '{"active": 1, "keys": {"1": "%s"}}'.replace("%s", "zz" * 32),
            "version 1 is not valid hex",
        ),
        ('{"active": 1, "keys": {"1": "%s"}}'.replace("%s", "ab" * 16), "must be 64 hex digits"),
        ('{"active": 1, "keys": {"1": 12}}', "must be 64 hex digits"),
        (
            '{"active": 2, "keys": {"1": "%s"}}'.replace("%s", HEX),
            "active vault key version 2 is not in",
        ),
    ],
)
def test_malformed_keyrings_name_the_problem_without_the_key(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        keyring_from_text(text)
    assert HEX not in str(caught.value)


def test_loading_a_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vault-keys.json"
    with pytest.raises(ValueError, match="does not exist"):
        load_keyring(path)
    path.write_text('{"active": 1, "keys": {"1": "xyz"}}')
    with pytest.raises(ValueError, match=r"64 hex digits.*vault-keys\.json"):
        load_keyring(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not text"):
        load_keyring(path)


# -- wrapping ---------------------------------------------------------------------------------


def test_wrap_and_unwrap_round_trip_with_a_fresh_nonce() -> None:
    data_key = new_data_key()
    wrapped = wrap_key(KEK, data_key, "rec-1")
    assert len(wrapped) == WRAPPED_KEY_SIZE
    assert data_key not in wrapped
    assert wrap_key(KEK, data_key, "rec-1") != wrapped
    assert unwrap_key(KEK, wrapped, "rec-1") == data_key


def test_a_wrapped_key_moved_to_another_recording_does_not_open() -> None:
    wrapped = wrap_key(KEK, new_data_key(), "0b5f5a4e-0000-4000-8000-000000000001")
    with pytest.raises(IntegrityError, match="another recording"):
        unwrap_key(KEK, wrapped, "0b5f5a4e-0000-4000-8000-000000000002")


def test_wrapped_keys_swapped_between_two_recordings_open_neither_stream() -> None:
    """Two rows, each with its own encrypted object and wrapped key; an attacker with database
    access swaps the wrapped-key columns. Neither recording can be decrypted any more."""
    rows = {}
    for recording_id, content in (("rec-a", b"A" * 70_000), ("rec-b", b"B" * 70_000)):
        data_key, header = new_data_key(), Header.new()
        enc = Encryptor(data_key, header)
        ct = header.to_bytes() + enc.update(content) + enc.finish()
        rows[recording_id] = {"wrapped": wrap_key(KEK, data_key, recording_id), "object": ct}
    rows["rec-a"]["wrapped"], rows["rec-b"]["wrapped"] = (
        rows["rec-b"]["wrapped"],
        rows["rec-a"]["wrapped"],
    )
    for recording_id, row in rows.items():
        with pytest.raises(IntegrityError):
            unwrap_key(KEK, row["wrapped"], recording_id)
    # And even if someone skipped the wrap check, the other recording's key does not open it.
    other_key = unwrap_key(KEK, rows["rec-a"]["wrapped"], "rec-b")
    ct = rows["rec-a"]["object"]
    with pytest.raises(IntegrityError):
        StreamReader(other_key, lambda offset, length: ct[offset : offset + length], len(ct))


@pytest.mark.parametrize(
    "damage",
    [
        lambda w: w[:-1],
        lambda w: w + b"\x00",
        lambda w: b"\x02" + w[1:],
        lambda w: w[:5] + bytes([w[5] ^ 1]) + w[6:],
        lambda w: w[:-1] + bytes([w[-1] ^ 0x80]),
    ],
)
def test_damaged_wrapped_keys_are_refused(damage: Callable[[bytes], bytes]) -> None:
    wrapped = wrap_key(KEK, new_data_key(), "rec-1")
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, damage(wrapped), "rec-1")


def test_wrong_key_encryption_key_is_refused() -> None:
    wrapped = wrap_key(KEK, new_data_key(), "rec-1")
    with pytest.raises(IntegrityError):
        unwrap_key(OTHER_KEK, wrapped, "rec-1")
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_key(b"short", new_data_key(), "rec-1")
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_key(KEK, b"short", "rec-1")


def test_rotation_keeps_old_recordings_readable_and_wraps_new_ones_with_the_new_version() -> None:
    ring = new_keyring()
    data_key = new_data_key()
    old_version, old_wrapped = wrap_with_active(ring, data_key, "rec-1")
    ring = rotated(ring)
    new_version, new_wrapped = wrap_with_active(ring, data_key, "rec-1")
    assert (old_version, new_version) == (1, 2)
    assert unwrap_with(ring, old_version, old_wrapped, "rec-1") == data_key
    assert unwrap_with(ring, new_version, new_wrapped, "rec-1") == data_key
    with pytest.raises(IntegrityError):
        unwrap_with(ring, new_version, old_wrapped, "rec-1")  # stored version must match
    with pytest.raises(IntegrityError, match="version 9 is not in the keyring"):
        unwrap_with(ring, 9, old_wrapped, "rec-1")
