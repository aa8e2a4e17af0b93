"""relisten.lib.hashchain on its own: no Django, no database, just rows and a key."""

from __future__ import annotations

import dataclasses

import pytest

from relisten.lib.hashchain import (
    CHECKPOINT_FORMAT,
    GENESIS,
    ChainRow,
    CheckpointError,
    canonical_bytes,
    link_mac,
    make_checkpoint,
    parse_checkpoint,
    verify_rows,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def build_chain(count: int, key: bytes = KEY) -> list[ChainRow]:
    rows, previous = [], GENESIS
    for seq in range(1, count + 1):
        payload = {"seq": seq, "event_type": "record.viewed", "changes": {"n": seq}}
        mac = link_mac(key, previous, payload)
        rows.append(ChainRow(seq, payload, previous, mac))
        previous = mac
    return rows


def test_canonical_bytes_ignore_key_order_but_not_values() -> None:
    assert canonical_bytes({"a": 1, "b": [1, 2]}) == canonical_bytes({"b": [1, 2], "a": 1})
    assert canonical_bytes({"a": 1}) != canonical_bytes({"a": 2})
    assert canonical_bytes({"name": "Zoë"}) == b'{"name":"Zo\\u00eb"}'


def test_mac_depends_on_key_previous_mac_and_payload() -> None:
    base = link_mac(KEY, GENESIS, {"x": 1})
    assert len(base) == 64
    assert link_mac(OTHER_KEY, GENESIS, {"x": 1}) != base
    assert link_mac(KEY, "1" * 64, {"x": 1}) != base
    assert link_mac(KEY, GENESIS, {"x": 2}) != base


def test_intact_chain_verifies_and_reports_its_tip() -> None:
    rows = build_chain(5)
    report = verify_rows(KEY, rows)
    assert report.ok
    assert (report.rows_checked, report.last_seq, report.last_mac) == (5, 5, rows[-1].mac)
    assert report.first_bad_seq is None


def test_empty_chain_is_valid_with_genesis_tip() -> None:
    report = verify_rows(KEY, [])
    assert report.ok and report.last_seq == 0 and report.last_mac == GENESIS


def test_altered_payload_is_named() -> None:
    rows = build_chain(5)
    rows[2] = dataclasses.replace(rows[2], payload={**rows[2].payload, "changes": {"n": 99}})
    report = verify_rows(KEY, rows)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "altered" in report.problem
    assert (report.rows_checked, report.last_seq, report.last_mac) == (2, 2, rows[1].mac)


def test_recomputed_mac_without_the_key_still_breaks_the_next_link() -> None:
    rows = build_chain(4)
    forged_payload = {**rows[1].payload, "changes": {"n": 42}}
    # An attacker without the key can only guess a MAC; with the wrong key it fails here.
    forged_mac = link_mac(OTHER_KEY, rows[1].previous_mac, forged_payload)
    rows[1] = ChainRow(2, forged_payload, rows[1].previous_mac, forged_mac)
    report = verify_rows(KEY, rows)
    assert report.first_bad_seq == 2


def test_deleted_middle_row_is_named() -> None:
    rows = build_chain(5)
    del rows[2]
    report = verify_rows(KEY, rows)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "missing" in report.problem


def test_deleted_first_row_is_named() -> None:
    report = verify_rows(KEY, build_chain(3)[1:])
    assert report.first_bad_seq == 1


def test_renumbered_rows_after_a_deletion_do_not_link() -> None:
    rows = build_chain(5)
    renumbered = rows[:2] + [dataclasses.replace(r, seq=r.seq - 1) for r in rows[3:]]
    report = verify_rows(KEY, renumbered)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "does not link" in report.problem


def test_duplicate_row_is_reported() -> None:
    rows = build_chain(3)
    report = verify_rows(KEY, [rows[0], rows[1], rows[1], rows[2]])
    assert not report.ok and report.first_bad_seq == 2


def test_truncated_tail_alone_still_verifies() -> None:
    """Why checkpoints exist: a shorter chain is internally valid."""
    rows = build_chain(5)
    report = verify_rows(KEY, rows[:3])
    assert report.ok and report.last_seq == 3


def test_wrong_key_fails_at_the_first_row() -> None:
    report = verify_rows(OTHER_KEY, build_chain(3))
    assert not report.ok and report.first_bad_seq == 1


def test_non_ascii_garbage_in_a_mac_is_reported_not_crashed_on() -> None:
    rows = build_chain(2)
    rows[1] = dataclasses.replace(rows[1], mac="é" * 64)
    report = verify_rows(KEY, rows)
    assert report.first_bad_seq == 2


def test_checkpoint_round_trip() -> None:
    document = make_checkpoint(KEY, 7, "ab" * 32, "2026-01-01T00:00:00+00:00")
    assert document["format"] == CHECKPOINT_FORMAT
    checkpoint = parse_checkpoint(KEY, document)
    assert (checkpoint.seq, checkpoint.mac) == (7, "ab" * 32)


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 6), ("mac", "cd" * 32), ("created_at", "2027-01-01T00:00:00+00:00"),
     ("signature", "00" * 32)],
)
def test_checkpoint_with_any_field_changed_is_rejected(field: str, value: object) -> None:
    document = make_checkpoint(KEY, 7, "ab" * 32, "2026-01-01T00:00:00+00:00")
    document[field] = value
    with pytest.raises(CheckpointError, match="signature"):
        parse_checkpoint(KEY, document)


def test_checkpoint_signed_with_another_key_is_rejected() -> None:
    document = make_checkpoint(OTHER_KEY, 7, "ab" * 32, "2026-01-01T00:00:00+00:00")
    with pytest.raises(CheckpointError, match="signature"):
        parse_checkpoint(KEY, document)


@pytest.mark.parametrize(
    "document",
    [
        [],
        "checkpoint",
        {"seq": 1, "mac": "x", "created_at": "t", "signature": "s"},
        {"format": "other/1", "seq": 1, "mac": "x", "created_at": "t", "signature": "s"},
        {"format": CHECKPOINT_FORMAT, "mac": "x", "created_at": "t", "signature": "s"},
        {"format": CHECKPOINT_FORMAT, "seq": "1", "mac": "x", "created_at": "t", "signature": "s"},
        {"format": CHECKPOINT_FORMAT, "seq": True, "mac": "x", "created_at": "t", "signature": "s"},
        {"format": CHECKPOINT_FORMAT, "seq": -1, "mac": "x", "created_at": "t", "signature": "s"},
    ],
)
def test_malformed_checkpoints_are_rejected(document: object) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(KEY, document)
