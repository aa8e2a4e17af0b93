"""A tamper-evident chain of HMACs over audit rows (framework-free).

Each row's MAC covers its own canonical payload and the previous row's MAC, so changing,
inserting or deleting any row breaks every later link. A deleted *tail* leaves a shorter but
valid chain; a signed checkpoint (last sequence number and MAC, kept elsewhere) catches that.
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
CHECKPOINT_FORMAT = "relisten-audit-checkpoint/1"


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """One byte string per payload, whatever the dict order or whitespace."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII text an attacker may have stored."""
    encode = "utf-8", "surrogatepass"
    return hmac.compare_digest(a.encode(*encode), b.encode(*encode))


def link_mac(key: bytes, previous_mac: str, payload: Mapping[str, Any]) -> str:
    # previous_mac is always 64 hex digits, so "<mac>\n<json>" can never be confused with the
    # checkpoint message below, which starts with a fixed text prefix.
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
    """ok, or the first row that does not fit (first_bad_seq) and why, in words."""

    ok: bool
    rows_checked: int
    last_seq: int
    last_mac: str
    first_bad_seq: int | None = None
    problem: str = ""


def _broken(count: int, seq: int, mac: str, bad_seq: int, problem: str) -> ChainReport:
    return ChainReport(False, count, seq, mac, bad_seq, problem)


def verify_rows(key: bytes, rows: Iterable[ChainRow]) -> ChainReport:
    """Walk rows in sequence order and report the first one that does not fit the chain.

    last_seq/last_mac always describe the last row that *did* verify, so a caller can still
    compare them with a separately stored tip or checkpoint.
    """
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for row in rows:
        if row.seq > expected_seq:
            return _broken(count, expected_seq - 1, expected_prev, expected_seq,
                           f"row {expected_seq} is missing (next row present is {row.seq})")
        if row.seq < expected_seq:
            return _broken(count, expected_seq - 1, expected_prev, row.seq,
                           f"row {row.seq} appears again or out of order")
        if not _same(row.previous_mac, expected_prev):
            return _broken(count, expected_seq - 1, expected_prev, row.seq,
                           f"row {row.seq} does not link to the row before it")
        if not _same(row.mac, link_mac(key, row.previous_mac, row.payload)):
            return _broken(count, expected_seq - 1, expected_prev, row.seq,
                           f"row {row.seq} was altered (its MAC does not match its contents)")
        expected_prev = row.mac
        expected_seq += 1
        count += 1
    return ChainReport(True, count, expected_seq - 1, expected_prev)


# ---- checkpoints: the tip, signed, stored away from the database ------------------------------

def checkpoint_signature(key: bytes, seq: int, mac: str, created_at: str) -> str:
    message = f"{CHECKPOINT_FORMAT}\n{seq}\n{mac}\n{created_at}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def make_checkpoint(key: bytes, seq: int, mac: str, created_at: str) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "seq": seq,
        "mac": mac,
        "created_at": created_at,
        "signature": checkpoint_signature(key, seq, mac, created_at),
    }


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, of an unknown format, or its signature is wrong."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    mac: str
    created_at: str


def parse_checkpoint(key: bytes, document: Any) -> Checkpoint:
    """The checkpoint's contents, only if this key signed exactly these values."""
    if not isinstance(document, Mapping):
        raise CheckpointError("checkpoint is not a JSON object")
    if document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("unknown checkpoint format")
    try:
        seq = document["seq"]
        mac = document["mac"]
        created_at = document["created_at"]
        signature = document["signature"]
    except KeyError as missing:
        raise CheckpointError(f"checkpoint lacks {missing.args[0]}") from None
    if (
        not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
        or not all(isinstance(value, str) for value in (mac, created_at, signature))
    ):
        raise CheckpointError("checkpoint fields have the wrong types")
    if not _same(signature, checkpoint_signature(key, seq, mac, created_at)):
        raise CheckpointError("checkpoint signature does not match this audit key "
                              "(the file was edited, or the key is not the one that signed it)")
    return Checkpoint(seq, mac, created_at)
