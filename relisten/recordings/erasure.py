"""Erasing recordings (by a therapist, or by a clinic's retention rules).

Erasure is crypto-shredding: the wrapped data key is set to NULL in the same transaction that
marks the recording ERASED and writes the audit row. From that commit on, no copy of the
object anywhere (a backup, a replica, a bucket version) can be decrypted. Deleting the object
itself happens after the commit; if that fails, `relisten vault gc` removes it later, because
it deletes the stored object of every ERASED recording.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django_tasks import task

from relisten.accounts.models import User
from relisten.audit.log import record_event
from relisten.recordings import vault
from relisten.recordings.models import Kind, Recording, RetentionRule, State
from relisten.review.actions import erase_comments
from relisten.transcripts.actions import erase_transcript

logger = logging.getLogger(__name__)


def _delete_object(name: str) -> None:
    try:
        vault.store().delete(name)
    except Exception:  # noqa: BLE001 - any storage error: the key is gone already, gc retries
        logger.warning("could not delete stored object %s after erasure; "
                       "`relisten vault gc` will retry", name, exc_info=True)


def erase_recording(*, actor: User | None, recording: Recording,
                    reason: str = "requested") -> Recording:
    """Crypto-shred one recording and schedule its object's deletion. Idempotent.

    `actor` is None for the retention job. The audit row names the recording and why, never
    anything the recording contains.
    """
    with transaction.atomic():
        locked = (Recording.objects.select_for_update()
                  .select_related("session__episode__client__clinic").get(pk=recording.pk))
        if locked.state == State.ERASED:
            return locked
        previous = locked.state
        name = locked.object_name or vault.object_name_for(locked)
        locked.wrapped_key = None
        locked.kek_version = None
        locked.sha256 = ""  # a fingerprint of content that no longer exists
        locked.state = State.ERASED
        locked.erased_at = timezone.now()
        locked.object_name = name  # kept so gc can find and delete the object if needed
        locked.save(update_fields=["wrapped_key", "kek_version", "sha256", "state", "erased_at",
                                   "object_name"])
        client = locked.session.episode.client
        record_event(
            actor=actor, event_type="recording.erased", target=locked, client=client,
            clinic=client.clinic,
            changes={"kind": locked.kind, "reason": reason, "previous_state": previous},
        )
        erase_transcript(actor=actor, recording=locked, reason=reason)
        erase_comments(actor=actor, recording=locked, reason=reason)  # what was said about it
        transaction.on_commit(lambda: _delete_object(name))
    return locked


# ---- retention -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetentionItem:
    """One recording a rule says is due. No clinical text: ids, kind and the rule only."""

    recording_id: str
    kind: str
    reason: str
    due: dt.date

    def line(self) -> str:
        return f"{self.recording_id}  {self.kind}  {self.reason} (due {self.due.isoformat()})"


def _local_date(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment).date() if timezone.is_aware(moment) else moment.date()


def _due(rule: RetentionRule, today: dt.date) -> list[tuple[Recording, RetentionItem]]:
    """READY recordings of this rule's clinic and kind whose keep-until date has come.

    A recording is kept for `days` full days after its anchor date and is due on
    anchor + days: a 30-day rule for a session on 1 March erases it on 31 March.
    Discharge-anchored rules wait for the episode to be discharged.
    """
    candidates = Recording.objects.filter(
        state=State.READY, kind=rule.kind, session__episode__client__clinic=rule.clinic,
    ).select_related("session__episode").order_by("id")
    cutoff = today - dt.timedelta(days=rule.days)
    reason = f"{Kind(rule.kind).label.lower()}: {rule.days} days {rule.get_anchor_display()}"
    found: list[tuple[Recording, RetentionItem]] = []
    for recording in candidates:
        if rule.anchor == RetentionRule.Anchor.SESSION:
            anchor: dt.date | None = _local_date(recording.session.scheduled_at)
        else:
            anchor = recording.session.episode.end_date
        if anchor is None or anchor > cutoff:
            continue
        found.append((recording, RetentionItem(
            recording_id=str(recording.public_id), kind=recording.kind, reason=reason,
            due=anchor + dt.timedelta(days=rule.days),
        )))
    return found


def run_retention(*, today: dt.date | None = None, dry_run: bool = True) -> list[RetentionItem]:
    """What the clinics' retention rules say to erase today, erasing it unless `dry_run`.

    Each recording is erased in its own transaction, so one failure does not undo the rest;
    a recording erased meanwhile by someone else is skipped by erase_recording itself.
    """
    today = today or timezone.localdate()
    report: list[RetentionItem] = []
    for rule in RetentionRule.objects.select_related("clinic").order_by("id"):
        for recording, item in _due(rule, today):
            if not dry_run:
                erase_recording(actor=None, recording=recording, reason="retention rule")
            report.append(item)
    return report


@task()
def apply_retention() -> int:
    """The periodic job: erase what the retention rules say is due; returns how many."""
    erased = run_retention(dry_run=False)
    logger.info("retention: %d recording(s) erased", len(erased))
    return len(erased)
