"""Verifying the stored audit chain and anchoring it with signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from relisten.audit.keys import audit_key
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.hashchain import (
    ChainReport,
    ChainRow,
    make_checkpoint,
    parse_checkpoint,
    verify_rows,
)


def _rows() -> Iterator[ChainRow]:
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        yield ChainRow(event.seq, event.chain_payload(), event.previous_mac, event.mac)


def verify_chain() -> ChainReport:
    report = verify_rows(audit_key(), _rows())
    if not report.ok:
        return report
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != report.last_seq or head.mac != report.last_mac):
        # The head row records the tip at every append: a shorter chain means a cut tail.
        return ChainReport(False, report.rows_checked, report.last_seq, report.last_mac,
                           report.last_seq + 1,
                           f"rows after {report.last_seq} are missing (the chain tip was "
                           f"{head.seq})")
    return report


def export_checkpoint() -> dict[str, Any]:
    report = verify_chain()
    if not report.ok:
        raise ValueError(f"refusing to checkpoint a broken chain: {report.problem}")
    return make_checkpoint(audit_key(), report.last_seq, report.last_mac,
                           timezone.now().isoformat())


def verify_against_checkpoint(document: dict[str, Any]) -> ChainReport:
    """The chain must be intact *and* still contain the checkpointed row unchanged."""
    seq, mac = parse_checkpoint(audit_key(), document)
    report = verify_chain()
    if not report.ok:
        return report
    if report.last_seq < seq:
        return ChainReport(False, report.rows_checked, report.last_seq, report.last_mac,
                           report.last_seq + 1,
                           f"the log ends at row {report.last_seq} but the checkpoint vouches "
                           f"for row {seq}: the tail was truncated")
    row = AuditEvent.objects.filter(seq=seq).first()
    if row is None or row.mac != mac:
        return ChainReport(False, report.rows_checked, report.last_seq, report.last_mac, seq,
                           f"row {seq} differs from the checkpoint")
    return report
