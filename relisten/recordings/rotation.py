"""Key-encryption-key (KEK) rotation: re-wrap every data key, never rewrite media.

Each recording's data key is stored wrapped by one KEK version. Rotating adds a new version,
makes it active (new recordings use it at once) and re-wraps every existing data key with it;
the encrypted objects are untouched. The keyring file is saved *before* any row changes and
keeps every old version, so a rotation cut short leaves every recording playable; running
`relisten keys rewrap` finishes it. Old versions are removed only when asked to, and only once
no recording uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Count

from relisten.audit.log import record_event
from relisten.lib.vault.keys import (
    Keyring,
    load_keyring,
    new_keyring,
    rotated,
    save_keyring,
    unwrap_key,
    wrap_key,
)
from relisten.lib.vault.stream import IntegrityError
from relisten.recordings import vault
from relisten.recordings.models import Recording


class KeyringError(Exception):
    """The keyring cannot be changed as asked; the message says why in plain words."""


@dataclass(frozen=True)
class RewrapReport:
    active: int
    rewrapped: int
    failed: list[str]  # public ids whose wrapped key would not open (also audited)


def keyring_path() -> Path:
    return Path(settings.KEK_FILE)


def _writable_keyring() -> Keyring:
    if settings.KEK_TEXT:
        raise KeyringError(
            "The keys come from the RELISTEN_KEK environment secret, which Relisten cannot "
            "change. Move them to a key file (RELISTEN_KEK_FILE) to rotate here, or update "
            "the secret yourself."
        )
    path = keyring_path()
    if not path.exists():
        raise KeyringError(f"There is no keyring at {path}. Create one with `relisten keys init`.")
    return load_keyring(path)


def _keyed_models() -> tuple[type[Any], ...]:
    """Every table holding data keys wrapped by the KEK: recordings and voice enrolments."""
    from relisten.transcripts.models import VoiceEnrolment

    return (Recording, VoiceEnrolment)


def usage_by_version() -> dict[int, int]:
    """How many data keys (recordings not erased, voice enrolments) use each KEK version."""
    usage: dict[int, int] = {}
    for model in _keyed_models():
        rows = (model.objects.filter(wrapped_key__isnull=False).values("kek_version")
                .annotate(n=Count("id")).order_by("kek_version"))
        for row in rows:
            if row["kek_version"] is not None:
                version = int(row["kek_version"])
                usage[version] = usage.get(version, 0) + int(row["n"])
    return usage


def _report_failure(row: Any) -> None:
    if isinstance(row, Recording):
        vault.report_integrity_failure(row, "wrapped key (rotation)")
    else:
        with transaction.atomic():
            record_event(actor=None, event_type="vault.integrity_failure", target=row,
                         changes={"where": "wrapped key (rotation)"})


def rewrap_all(ring: Keyring) -> RewrapReport:
    """Re-wrap every data key not yet under the active version. Safe to run again."""
    active_kek = ring.keys[ring.active]
    rewrapped = 0
    failed: list[str] = []
    for model in _keyed_models():
        pending = (model.objects.filter(wrapped_key__isnull=False)
                   .exclude(kek_version=ring.active).values_list("pk", flat=True).order_by("pk"))
        for pk in list(pending):
            with transaction.atomic():
                # Locked and re-read: an erasure in between must win (its key stays NULL).
                row = model.objects.select_for_update().filter(pk=pk).first()
                if (row is None or row.wrapped_key is None
                        or row.kek_version is None or row.kek_version == ring.active):
                    continue
                old_kek = ring.keys.get(row.kek_version)
                if old_kek is None:
                    raise ImproperlyConfigured(
                        f"KEK version {row.kek_version} is missing from the keyring"
                    )
                public_id = str(row.public_id)
                try:
                    data_key = unwrap_key(old_kek, bytes(row.wrapped_key), public_id)
                except IntegrityError:
                    _report_failure(row)
                    failed.append(public_id)
                    continue
                row.wrapped_key = wrap_key(active_kek, data_key, public_id)
                row.kek_version = ring.active
                row.save(update_fields=["wrapped_key", "kek_version"])
                rewrapped += 1
    return RewrapReport(active=ring.active, rewrapped=rewrapped, failed=failed)


def rotate() -> tuple[Keyring, RewrapReport]:
    """Add and activate a new KEK version, then re-wrap every data key with it."""
    ring = rotated(_writable_keyring())
    save_keyring(ring, keyring_path())  # first: every row stays openable if we stop here
    report = rewrap_all(ring)
    with transaction.atomic():
        record_event(actor=None, event_type="vault.kek_rotated",
                     changes={"active_version": ring.active, "rewrapped": report.rewrapped,
                              "failed": len(report.failed)})
    return ring, report


def finish_rewrap() -> RewrapReport:
    """Finish a rotation that was cut short (re-wrap whatever is not on the active version)."""
    return rewrap_all(_writable_keyring())


def retire_unused() -> list[int]:
    """Remove every non-active version that no recording uses any more; returns them."""
    ring = _writable_keyring()
    used = usage_by_version()
    unused = sorted(v for v in ring.keys if v != ring.active and used.get(v, 0) == 0)
    if not unused:
        return []
    save_keyring(Keyring(active=ring.active,
                         keys={v: k for v, k in ring.keys.items() if v not in unused}),
                 keyring_path())
    with transaction.atomic():
        record_event(actor=None, event_type="vault.kek_retired",
                     changes={"versions": unused, "active_version": ring.active})
    return unused


def init_keyring() -> Path:
    """A new keyring file; refuses to replace one, which would make every recording unreadable."""
    if settings.KEK_TEXT:
        raise KeyringError("RELISTEN_KEK is set, so a key file would not be used. Unset it first, "
                           "or keep managing the keys in that secret.")
    path = keyring_path()
    if path.exists():
        raise KeyringError(
            f"{path} already exists; refusing to replace it. Replacing the keyring would make "
            "every existing recording impossible to decrypt."
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_keyring(new_keyring(), path)
    return path
