"""Verifying the stored audit chain and anchoring it with signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from relisten.audit.keys import audit_key
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.hashchain import (
    GENESIS,
    ChainReport,
    ChainRow,
    make_checkpoint,
    parse_checkpoint,
    verify_rows,
)


def _rows() -> Iterator[ChainRow]:
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        yield ChainRow(event.seq, event.chain_payload(), event.previous_mac, event.mac)


def _fail(report: ChainReport, bad_seq: int, problem: str) -> ChainReport:
    return ChainReport(False, report.rows_checked, report.last_seq, report.last_mac, bad_seq,
                       problem)


def verify_chain() -> ChainReport:
    """Every row links to the one before it, and the stored tip (head row) matches the last row.

    The head row is written in the same transaction as every append, so a chain that stops
    short of it has lost its tail. The head is not itself signed: someone who rewrites it too
    can only be caught with a checkpoint (verify_against_checkpoint).
    """
    report = verify_rows(audit_key(), _rows())
    if not report.ok:
        return report
    head = AuditHead.objects.filter(pk=1).first()
    if head is None:
        if report.last_seq == 0:
            return report  # a fresh installation: nothing appended yet
        return _fail(report, report.last_seq + 1,
                     "the record of the chain's tip (audit head) is missing")
    if head.seq > report.last_seq:
        return _fail(report, report.last_seq + 1,
                     f"rows {report.last_seq + 1} to {head.seq} are missing: the log ends at row "
                     f"{report.last_seq} but its tip was row {head.seq}")
    if head.seq < report.last_seq or head.mac != report.last_mac:
        return _fail(report, report.last_seq,
                     f"the record of the chain's tip (row {head.seq}) does not match the log")
    return report


def export_checkpoint() -> dict[str, Any]:
    """A signed note of the current tip, to keep where the database's users cannot write."""
    report = verify_chain()
    if not report.ok:
        raise ValueError(f"refusing to checkpoint a broken chain: {report.problem}")
    return make_checkpoint(audit_key(), report.last_seq, report.last_mac,
                           timezone.now().isoformat())


def verify_against_checkpoint(document: Any) -> ChainReport:
    """The chain must be intact *and* still contain the checkpointed row unchanged.

    Raises CheckpointError when the document is not a checkpoint signed with this key.
    """
    checkpoint = parse_checkpoint(audit_key(), document)
    report = verify_chain()
    if not report.ok:
        return report
    if report.last_seq < checkpoint.seq:
        return _fail(report, report.last_seq + 1,
                     f"the log ends at row {report.last_seq} but the checkpoint of "
                     f"{checkpoint.created_at} vouches for row {checkpoint.seq}: "
                     "rows were deleted from the end")
    expected = GENESIS if checkpoint.seq == 0 else (
        AuditEvent.objects.filter(seq=checkpoint.seq).values_list("mac", flat=True).first()
    )
    if expected != checkpoint.mac:
        return _fail(report, checkpoint.seq, f"row {checkpoint.seq} differs from the checkpoint")
    return report
