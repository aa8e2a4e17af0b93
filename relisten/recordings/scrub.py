"""`relisten vault scrub`: decrypt every READY recording end to end and name the damaged ones.

Bit rot, a bad disk or a tampered bucket shows up here before anyone presses play. Every
chunk is authenticated and the plaintext's SHA-256 is compared with the one taken at upload.
Damage is written to the audit trail (`vault.integrity_failure`); the report names
recordings by public id only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

from relisten.lib.vault.storage import ObjectMissing
from relisten.lib.vault.stream import IntegrityError, verify_all
from relisten.recordings import vault
from relisten.recordings.models import Recording, State

logger = logging.getLogger(__name__)


@dataclass
class ScrubReport:
    checked: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (public id, problem)

    @property
    def ok(self) -> bool:
        return not self.damaged


def scrub_recording(recording: Recording) -> str | None:
    """None if the recording decrypts completely and matches its hash, else the problem."""
    try:
        reader = vault.open_reader(recording)  # audits wrapped-key and header/tail failures
    except IntegrityError:
        return "failed its integrity check (key or stored object damaged)"
    except ObjectMissing:
        vault.report_integrity_failure(recording, "scrub: object missing")
        return "stored object is missing"
    except ImproperlyConfigured as error:
        return f"cannot be opened: {error}"
    try:
        digest = verify_all(reader)
    except IntegrityError:
        vault.report_integrity_failure(recording, "scrub: chunk")
        return "a chunk failed its integrity check"
    if recording.sha256 and digest != recording.sha256:
        vault.report_integrity_failure(recording, "scrub: sha256 mismatch")
        return "decrypts, but does not match the SHA-256 taken at upload"
    return None


def scrub_all() -> ScrubReport:
    report = ScrubReport()
    recordings = (Recording.objects.filter(state=State.READY)
                  .select_related("session__episode__client__clinic").order_by("id"))
    for recording in recordings.iterator():
        report.checked += 1
        problem = scrub_recording(recording)
        if problem is not None:
            logger.error("scrub: recording %s %s", recording.public_id, problem)
            report.damaged.append((str(recording.public_id), problem))
    return report
