"""The glue between recordings and the framework-free vault: which store, which keys.

Everything that needs a data key or the object store goes through here, so key handling and
integrity-failure auditing live in one place.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from relisten.audit.log import record_event_now
from relisten.lib.vault.keys import (
    Keyring,
    keyring_from_text,
    load_keyring,
    new_keyring,
    save_keyring,
    unwrap_key,
    wrap_key,
)
from relisten.lib.vault.storage import LocalStore, ObjectStore, S3Store
from relisten.lib.vault.stream import IntegrityError, StreamReader, new_data_key
from relisten.recordings.models import Recording


@cache
def store() -> ObjectStore:
    if settings.MEDIA_STORAGE == "s3":
        return S3Store(
            settings.S3_BUCKET, endpoint_url=settings.S3_ENDPOINT_URL, region=settings.S3_REGION,
            access_key_id=settings.S3_ACCESS_KEY_ID,
            secret_access_key=settings.S3_SECRET_ACCESS_KEY,
        )
    return LocalStore(Path(settings.MEDIA_DIR))


def keyring() -> Keyring:
    """KEKs from RELISTEN_KEK or the key file (never the database, never media storage)."""
    if settings.KEK_TEXT:
        return keyring_from_text(settings.KEK_TEXT)
    path = Path(settings.KEK_FILE)
    if path.exists():
        return load_keyring(path)
    if settings.DEBUG:
        # A laptop demo gets a keyring on first use; production provisions one deliberately.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        ring = new_keyring()
        save_keyring(ring, path)
        return ring
    raise ImproperlyConfigured(
        "No media key-encryption key: run `relisten keys init` "
        f"(creates {path}) or set RELISTEN_KEK"
    )


def object_name_for(recording: Recording) -> str:
    return f"recordings/{recording.public_id}.rlv"


def issue_data_key(recording: Recording) -> bytes:
    """A fresh data key, wrapped under the active KEK and bound to this recording's id.
    Sets wrapped_key/kek_version on the instance; the caller saves it."""
    ring = keyring()
    key = new_data_key()
    recording.wrapped_key = wrap_key(ring.keys[ring.active], key, str(recording.public_id))
    recording.kek_version = ring.active
    return key


def report_integrity_failure(recording: Recording, where: str) -> None:
    record_event_now(
        actor=None, event_type="vault.integrity_failure", target=recording,
        client=recording.session.episode.client,
        clinic=recording.session.episode.client.clinic, changes={"where": where},
    )


def data_key(recording: Recording) -> bytes:
    if recording.wrapped_key is None or recording.kek_version is None:
        raise IntegrityError("recording has no data key (erased)")
    ring = keyring()
    kek = ring.keys.get(recording.kek_version)
    if kek is None:
        raise ImproperlyConfigured(
            f"KEK version {recording.kek_version} is missing from the keyring"
        )
    try:
        return unwrap_key(kek, bytes(recording.wrapped_key), str(recording.public_id))
    except IntegrityError:
        report_integrity_failure(recording, "wrapped key")
        raise


def open_reader(recording: Recording) -> StreamReader:
    """A verified reader: header parsed and final chunk authenticated, or IntegrityError
    (which is audited)."""
    key = data_key(recording)
    objects = store()
    name = recording.object_name or object_name_for(recording)
    try:
        size = objects.size(name)
        return StreamReader(key, lambda offset, length: objects.read_range(name, offset, length),
                            size)
    except IntegrityError:
        report_integrity_failure(recording, "object")
        raise
