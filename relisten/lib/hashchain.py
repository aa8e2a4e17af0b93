"""A tamper-evident chain of HMACs over audit rows.

Each row's MAC covers its own canonical payload and the previous row's MAC, so changing,
inserting or deleting any row breaks every later link. A deleted *tail* leaves a shorter but
valid chain; a signed checkpoint (last sequence number and MAC, exported elsewhere) catches that.
The key never lives in the database: whoever can edit rows cannot recompute MACs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """One byte string per payload, whatever the dict order or whitespace."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def link_mac(key: bytes, previous_mac: str, payload: Mapping[str, Any]) -> str:
    message = previous_mac.encode() + b"\n" + canonical_bytes(payload)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    seq: int
    payload: Mapping[str, Any]
    previous_mac: str
    mac: str


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows_checked: int
    last_seq: int
    last_mac: str
    first_bad_seq: int | None = None
    problem: str = ""


def verify_rows(key: bytes, rows: Iterable[ChainRow]) -> ChainReport:
    """Walk rows in sequence order and report the first one that does not fit the chain."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for row in rows:
        if row.seq != expected_seq:
            return ChainReport(
                False, count, expected_seq - 1, expected_prev, expected_seq,
                f"row {expected_seq} is missing (next row present is {row.seq})",
            )
        if not hmac.compare_digest(row.previous_mac, expected_prev):
            return ChainReport(
                False, count, expected_seq - 1, expected_prev, row.seq,
                f"row {row.seq} does not link to the row before it",
            )
        if not hmac.compare_digest(row.mac, link_mac(key, row.previous_mac, row.payload)):
            return ChainReport(
                False, count, expected_seq - 1, expected_prev, row.seq,
                f"row {row.seq} was altered (its MAC does not match its contents)",
            )
        expected_prev = row.mac
        expected_seq += 1
        count += 1
    return ChainReport(True, count, expected_seq - 1, expected_prev)


def checkpoint_signature(key: bytes, seq: int, mac: str) -> str:
    return hmac.new(key, f"relisten-audit-checkpoint\n{seq}\n{mac}".encode(), hashlib.sha256).hexdigest()


def make_checkpoint(key: bytes, seq: int, mac: str, created_at: str) -> dict[str, Any]:
    return {
        "format": "relisten-audit-checkpoint/1",
        "seq": seq,
        "mac": mac,
        "created_at": created_at,
        "signature": checkpoint_signature(key, seq, mac),
    }


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or its signature is wrong."""


def parse_checkpoint(key: bytes, document: Mapping[str, Any]) -> tuple[int, str]:
    try:
        seq = int(document["seq"])
        mac = str(document["mac"])
        signature = str(document["signature"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("checkpoint lacks seq, mac or signature") from None
    if document.get("format") != "relisten-audit-checkpoint/1":
        raise CheckpointError("unknown checkpoint format")
    if not hmac.compare_digest(signature, checkpoint_signature(key, seq, mac)):
        raise CheckpointError("checkpoint signature does not match this audit key")
    return seq, mac
