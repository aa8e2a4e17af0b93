"""Writes to recordings and their tus uploads. Each saves and audits in one transaction.

Crash safety rests on one ordering rule: files first, then the database. Ciphertext is
appended and fsynced before the transaction that records its length; the object is stored
before the transaction that makes the recording READY; files are deleted only after the
transaction that stops pointing at them. A crash anywhere therefore leaves either extra bytes
(cut off on the next request), a RECEIVED recording (`relisten vault recover` finishes it) or
unreferenced files (`relisten vault gc` removes them), never a row that claims missing data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from relisten.accounts.models import User
from relisten.audit.log import record_event
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.core.jobs import enqueue_on_commit
from relisten.lib.media.probe import MediaError, MediaInfo, needs_remux, probe, remux
from relisten.lib.vault.keys import wrap_with_active
from relisten.lib.vault.scratch import EncryptedScratchFile
from relisten.lib.vault.storage import ObjectMissing
from relisten.lib.vault.stream import (
    Encryptor,
    Header,
    IntegrityError,
    StreamReader,
    open_blob,
    open_unfinished,
    seal_blob,
    verify_all,
)
from relisten.recordings import staging
from relisten.recordings.models import Kind, Recording, State, Upload
from relisten.recordings.vault import (
    data_key,
    issue_data_key,
    keyring,
    object_name_for,
    report_integrity_failure,
    store,
)
from relisten.transcripts.hooks import recording_ready

logger = logging.getLogger(__name__)

READ_PIECE = 256 * 1024
CRASH_POINT_ENV = "RELISTEN_TEST_CRASH_POINT"

CONSENT_PURPOSE = {Kind.AUDIO: Purpose.AUDIO_RECORDING, Kind.VIDEO: Purpose.VIDEO_RECORDING}
CONSENT_MISSING = {
    Kind.AUDIO: "This client has not agreed to audio recording. Record their consent first.",
    Kind.VIDEO: "This client has not agreed to video recording. Record their consent first.",
}
LOST = ("The uploaded file could not be found on the server after it arrived. "
        "Please upload the recording again.")
DAMAGED = ("The uploaded file was damaged on the server before it could be checked. "
           "Please upload the recording again.")
CHECKSUM = ("The file that arrived is not the same as the file that was sent (its checksum "
            "does not match). Please upload the recording again.")
STAGING_LOST = "This upload's data was lost on the server. Please start the upload again."
VIDEO_AS_AUDIO = ("This file contains video, but it was sent as an audio recording. Upload it "
                  "as a video recording instead (the client must have agreed to video "
                  "recording).")


def crash_point(name: str) -> None:
    """Test hook for tests/test_upload_crash.py: die here, as a power cut would, when
    RELISTEN_TEST_CRASH_POINT names this point. Inert unless that variable is set."""
    if os.environ.get(CRASH_POINT_ENV) == name:
        os._exit(86)


# ---- refusals (the view turns each into its HTTP status) -------------------------------------

class UploadRefused(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConsentMissing(UploadRefused):
    status = 403


class UploadGone(UploadRefused):
    status = 404


class StaleOffset(UploadRefused):
    status = 409


class NotAccepting(UploadRefused):
    status = 409


class TooLarge(UploadRefused):
    status = 413


class Busy(UploadRefused):
    status = 423


class ChecksumMismatch(UploadRefused):
    status = 460


# ---- creating and appending -----------------------------------------------------------------

def _audit(actor: User | None, event_type: str, recording: Recording,
           changes: dict[str, object]) -> None:
    client = recording.session.episode.client
    record_event(actor=actor, event_type=event_type, target=recording, client=client,
                 clinic=client.clinic, changes=changes)


def expiry_from_now() -> dt.datetime:
    return timezone.now() + dt.timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)


def create_upload(
    *, actor: User, session: TherapySession, kind: str, length: int | None,
    expected_sha256: str = "",
) -> Upload:
    """A recording (invisible until READY) with its own data key, and its tus upload.
    Consent is asked inside the transaction, so a withdrawal a moment earlier is honoured."""
    kind = Kind(kind)
    if length is not None and length > settings.UPLOAD_MAX_BYTES:
        raise TooLarge(_too_large_message())
    client = session.episode.client
    with transaction.atomic():
        if not is_allowed(client, CONSENT_PURPOSE[kind]):
            raise ConsentMissing(CONSENT_MISSING[kind])
        recording = Recording(session=session, kind=kind, created_by=actor)
        issue_data_key(recording)
        recording.save()
        upload = Upload.objects.create(
            recording=recording, length=length, expected_sha256=expected_sha256,
            header=Header.new().to_bytes(), expires_at=expiry_from_now(),
        )
        _audit(actor, "recording.upload_started", recording,
               {"kind": kind.value, "length": length, "upload": str(upload.public_id)})
    return upload


def _too_large_message() -> str:
    limit_gib = settings.UPLOAD_MAX_BYTES / 1024**3
    limit = f"{limit_gib:.1f} GiB" if limit_gib >= 1 else f"{settings.UPLOAD_MAX_BYTES} bytes"
    return f"This recording is larger than this clinic's upload limit ({limit})."


@dataclass
class AppendResult:
    upload: Upload
    complete: bool


def _context(upload: Upload) -> bytes:
    return f"upload:{upload.public_id}".encode()


def _fresh_upload(upload_id: uuid.UUID) -> Upload:
    upload = (Upload.objects.select_related("recording__session__episode__client__clinic")
              .filter(public_id=upload_id).first())
    if upload is None:
        raise UploadGone("This upload no longer exists.")
    return upload


def resync_upload(upload: Upload) -> Upload:
    """The upload's committed state, after cutting off bytes a crashed request appended (HEAD)."""
    try:
        with staging.locked(upload.public_id):
            fresh = _fresh_upload(upload.public_id)
            if fresh.recording.state == State.UPLOADING:
                fresh = _cut_back(fresh)
            return fresh
    except staging.UploadBusy:
        raise Busy("This upload is busy with another request. Try again in a moment.") from None
    except staging.StagingLost:
        raise UploadGone(STAGING_LOST) from None


def append_upload(
    *, actor: User, upload: Upload, offset: int, body: Iterable[bytes],
    body_length: int | None, checksum: bytes | None, new_length: int | None,
) -> AppendResult:
    """Encrypt one PATCH's bytes onto the staging file and commit the new offset.

    With a checksum the bytes go to an encrypted scratch file first and reach the encryptor only
    once they match: sealing bytes that are then thrown away would reuse the STREAM nonces of
    those chunk positions for the different bytes that replace them."""
    try:
        with staging.locked(upload.public_id):
            result = _append_locked(actor=actor, upload_id=upload.public_id, offset=offset,
                                    body=body, body_length=body_length, checksum=checksum,
                                    new_length=new_length)
    except staging.UploadBusy:
        raise Busy("This upload is busy with another request. Try again in a moment.") from None
    except staging.StagingLost:
        raise UploadGone(STAGING_LOST) from None
    if result.complete:
        # Outside the lock: with the immediate backend the job runs right here and takes the
        # lock itself. A crash before this line leaves a RECEIVED recording for `vault recover`.
        enqueue_on_commit(_finalize_task(), str(result.upload.recording.public_id))
    return result


def _finalize_task() -> object:
    from relisten.recordings.tasks import finalize_recording

    return finalize_recording


def _limit_for(upload: Upload, offset: int) -> int:
    """How many more bytes this upload may take."""
    if upload.length is not None:
        return upload.length - offset
    return settings.UPLOAD_MAX_BYTES - offset


def _append_locked(
    *, actor: User, upload_id: uuid.UUID, offset: int, body: Iterable[bytes],
    body_length: int | None, checksum: bytes | None, new_length: int | None,
) -> AppendResult:
    upload = _fresh_upload(upload_id)
    recording = upload.recording
    if recording.state != State.UPLOADING:
        if offset == upload.offset and not body_length:
            return AppendResult(upload, complete=False)  # a harmless repeat of the last PATCH
        raise NotAccepting("This upload is already complete.")
    if upload.expires_at <= timezone.now():
        raise UploadGone("This upload has expired. Please start it again.")
    upload = _cut_back(upload)
    recording = upload.recording
    if offset != upload.offset:
        raise StaleOffset(f"The server has {upload.offset} bytes of this upload, "
                          f"not {offset}. Resume from {upload.offset}.")
    if new_length is not None:
        if upload.length is not None and new_length != upload.length:
            raise UploadRefused("Upload-Length cannot change once it is set.")
        if new_length < upload.offset:
            raise UploadRefused("Upload-Length is smaller than what was already uploaded.")
        if new_length > settings.UPLOAD_MAX_BYTES:
            raise TooLarge(_too_large_message())
        upload.length = new_length
    allowed = _limit_for(upload, offset)
    if body_length is not None and body_length > allowed:
        raise TooLarge(_too_large_message() if upload.length is None
                       else "This request holds more bytes than the upload's declared length.")

    key = data_key(recording)
    pending = open_blob(key, bytes(upload.pending_sealed), _context(upload)) \
        if upload.pending_sealed else b""
    header = Header.parse(bytes(upload.header))
    encryptor = Encryptor(key, header, upload.next_counter, pending)
    try:
        with staging.open_part(upload.public_id, upload.staged_size) as part:
            if upload.staged_size == 0:
                part.write(header.to_bytes())
            if checksum is None:
                received = _encrypt_body(body, allowed, encryptor, part)
            else:
                received = _encrypt_checked(body, allowed, checksum, encryptor, part)
            complete = upload.length is not None and offset + received == upload.length
            if complete:
                part.write(encryptor.finish())
            staging.sync(part)
            staged_size = part.tell()
    except UploadRefused:
        # Refused bytes never count. Chunks already sealed for them used this key's nonces,
        # so they are cut off the way a crashed request's are (re-keying if any were
        # written), now rather than on the next request.
        _cut_back(_fresh_upload(upload_id))
        raise
    crash_point("patch.after_fsync")
    with transaction.atomic():
        upload.offset = offset + received
        upload.staged_size = staged_size
        upload.next_counter = encryptor.next_counter
        upload.pending_sealed = b"" if complete else seal_blob(key, encryptor.pending,
                                                             _context(upload))
        upload.expires_at = expiry_from_now()  # active uploads do not expire under the user
        upload.save(update_fields=["offset", "staged_size", "next_counter", "pending_sealed",
                                   "length", "expires_at"])
        if complete:
            recording.state = State.RECEIVED
            recording.save(update_fields=["state"])
            _audit(actor, "recording.received", recording,
                   {"size": upload.length, "upload": str(upload.public_id)})
    crash_point("patch.after_commit")
    return AppendResult(upload, complete=complete)


# ---- cutting back uncommitted bytes, and re-keying when any were sealed ---------------------

def _cut_back(upload: Upload) -> Upload:
    """The upload with its staging file holding exactly the committed bytes (call under the
    lock, for an UPLOADING recording, before anything reads or appends).

    Bytes past `staged_size` were sealed by a request that crashed (or was refused) before
    its commit, under nonces (prefix, counter) that the next request would use again. If the
    client then sends different bytes at that offset, AES-GCM would seal two plaintexts under
    one key and nonce, which leaks their XOR and lets anyone forge tags. So whenever the cut
    removes bytes, the upload moves to a new data key and header before it accepts more."""
    staging.settle_rekey(upload.public_id, bytes(upload.header))
    cut = staging.uncommitted_bytes(upload.public_id, upload.staged_size)
    if not cut:
        return upload
    _rekey(upload, cut)
    return _fresh_upload(upload.public_id)


def _rekey(upload: Upload, cut: int) -> None:
    """Re-encrypt the committed staged chunks (and the sealed pending tail) under a new data
    key and nonce prefix, and drop the uncommitted tail.

    Order, for crash safety (the rule: the database never describes a file that is not
    there under the name it expects):
    1. write `U.rekey` completely (new header, re-sealed chunks) and fsync it and the folder;
    2. one transaction saves the new wrapped key on the recording and the new header and
       sealed tail on the upload;
    3. rename `U.rekey` over `U.part` and fsync the folder.
    A crash before 2 commits leaves the old key and `U.part` in force (with its tail still
    there, so the next request re-keys afresh); a crash after it leaves `U.rekey` starting
    with the committed header, which `staging.settle_rekey` puts in place on the next request
    before anything reads `U.part`. The old data key is gone from the row once 2 commits, so
    cut-off ciphertext that survives in freed disk blocks can no longer be decrypted.
    """
    recording = upload.recording
    context = _context(upload)
    try:
        old_key = data_key(recording)  # audits a damaged wrapped key itself
    except IntegrityError:
        _fail(recording, upload, DAMAGED, "key_damaged")
        raise UploadGone(DAMAGED) from None
    try:
        pending = open_blob(old_key, bytes(upload.pending_sealed), context) \
            if upload.pending_sealed else b""
        old_header = Header.parse(bytes(upload.header))
    except IntegrityError:
        report_integrity_failure(recording, "staging")
        _fail(recording, upload, DAMAGED, "staging_damaged")
        raise UploadGone(DAMAGED) from None
    new_key = issue_data_key(recording)  # sets wrapped_key/kek_version on the instance
    new_header = Header.new(old_header.chunk_size)
    encryptor = Encryptor(new_key, new_header)
    if upload.staged_size:
        try:
            staged_size = staging.write_rekeyed(
                upload.public_id, _resealed(upload, old_key, new_header, encryptor, pending))
        except IntegrityError:
            staging.rekey_path(upload.public_id).unlink(missing_ok=True)
            report_integrity_failure(recording, "staging")
            _fail(recording, upload, DAMAGED, "staging_damaged")
            raise UploadGone(DAMAGED) from None
        if (staged_size != upload.staged_size or encryptor.next_counter != upload.next_counter
                or encryptor.pending != pending):
            raise RuntimeError("re-keyed staging file does not match the committed state")
    with transaction.atomic():
        _save_rekeyed(upload, recording, new_key, new_header, pending, cut)
    crash_point("rekey.after_commit")
    if upload.staged_size:
        staging.install_rekeyed(upload.public_id)
    else:
        # Nothing committed, not even the header: no file to swap. The first PATCH writes
        # the new header; until then the residue is only cut (a crash before this line just
        # re-keys once more on the next request).
        staging.resync(upload.public_id, 0)


def _resealed(upload: Upload, old_key: bytes, header: Header, encryptor: Encryptor,
              pending: bytes) -> Iterable[bytes]:
    """The new staging file piece by piece: the committed chunks opened with the old key
    (each verified) and sealed again, chunk for chunk, with the new one."""
    yield header.to_bytes()
    for plain in open_unfinished(
            old_key, lambda offset, length: staging.read_part(upload.public_id, offset, length),
            upload.staged_size):
        yield encryptor.update(plain)
    # The pending tail completes the last committed chunk's "a byte follows" condition, so
    # the new encryptor emits exactly the chunks the old one did and keeps the same tail.
    yield encryptor.update(pending)


def _save_rekeyed(upload: Upload, recording: Recording, new_key: bytes, header: Header,
                  pending: bytes, cut: int) -> None:
    """Step 2 of `_rekey` (inside its transaction)."""
    locked = Recording.objects.select_for_update().get(pk=recording.pk)
    if locked.state != State.UPLOADING or locked.wrapped_key is None:
        raise UploadGone("This upload no longer exists.")
    if keyring().active != recording.kek_version:
        # A KEK rotation ran while the file was re-encrypted: wrap with the active version,
        # so a `--retire-old` cannot leave this row on a removed KEK.
        recording.kek_version, recording.wrapped_key = wrap_with_active(
            keyring(), new_key, str(recording.public_id))
    recording.save(update_fields=["wrapped_key", "kek_version"])
    upload.header = header.to_bytes()
    upload.pending_sealed = (seal_blob(new_key, pending, _context(upload))
                             if upload.pending_sealed else b"")
    upload.save(update_fields=["header", "pending_sealed", "staged_size", "next_counter"])
    _audit(None, "recording.upload_rekeyed", recording,
           {"upload": str(upload.public_id), "cut_bytes": cut})


def _encrypt_body(body: Iterable[bytes], allowed: int, encryptor: Encryptor,
                  part: BinaryIO) -> int:
    received = 0
    for piece in body:
        received += len(piece)
        if received > allowed:
            raise TooLarge("This upload is larger than its declared length or the upload limit.")
        part.write(encryptor.update(piece))
    return received


def _encrypt_checked(body: Iterable[bytes], allowed: int, checksum: bytes,
                     encryptor: Encryptor, part: BinaryIO) -> int:
    digest = hashlib.sha256()
    received = 0
    with EncryptedScratchFile(staging.upload_dir()) as scratch:
        for piece in body:
            received += len(piece)
            if received > allowed:
                raise TooLarge("This upload is larger than its declared length "
                               "or the upload limit.")
            digest.update(piece)
            scratch.write(piece)
        if digest.digest() != checksum:
            raise ChecksumMismatch("The bytes that arrived do not match Upload-Checksum; "
                                   "nothing from this request was kept. Send them again.")
        scratch.seek(0)
        while piece := scratch.read(READ_PIECE):
            part.write(encryptor.update(piece))
    return received


# ---- termination and garbage collection -----------------------------------------------------

def _remove_recording(recording: Recording, *, actor: User | None, event_type: str,
                      changes: dict[str, object]) -> None:
    """Delete an unfinished recording's row (its upload row goes with it), audited."""
    with transaction.atomic():
        _audit(actor, event_type, recording, changes)
        recording.delete()


def terminate_upload(*, actor: User, upload: Upload) -> None:
    """tus termination: the recording, its key and every staged byte are removed."""
    try:
        with staging.locked(upload.public_id):
            fresh = _fresh_upload(upload.public_id)
            if fresh.recording.state != State.UPLOADING:
                raise NotAccepting("This upload has finished and is being checked; it can be "
                                   "deleted from the session once it is ready.")
            _remove_recording(fresh.recording, actor=actor, event_type="recording.upload_cancelled",
                              changes={"upload": str(fresh.public_id), "offset": fresh.offset})
            staging.discard(fresh.public_id)
    except staging.UploadBusy:
        raise Busy("This upload is busy with another request. Try again in a moment.") from None


@dataclass
class Collected:
    expired: int = 0
    orphan_files: int = 0
    orphan_objects: int = 0
    busy: int = 0
    failed_leftovers: list[str] = field(default_factory=list)


def collect_expired_uploads(now: dt.datetime | None = None) -> Collected:
    """Remove uploads past their expiry (never finished: no row, file, object or key stays),
    staged files no upload owns, and objects of recordings that failed or no longer exist."""
    now = now or timezone.now()
    done = Collected()
    expired = Upload.objects.filter(expires_at__lte=now, recording__state=State.UPLOADING)
    for upload in expired.select_related("recording__session__episode__client__clinic"):
        try:
            with staging.locked(upload.public_id):
                fresh = Upload.objects.filter(pk=upload.pk, expires_at__lte=now,
                                              recording__state=State.UPLOADING).first()
                if fresh is None:
                    continue  # resumed or finished since we looked
                _remove_recording(upload.recording, actor=None,
                                  event_type="recording.upload_expired",
                                  changes={"upload": str(upload.public_id),
                                           "offset": fresh.offset})
                staging.discard(upload.public_id)
                done.expired += 1
        except staging.UploadBusy:
            done.busy += 1
    _sweep_orphan_files(done)
    _sweep_orphan_objects(done)
    return done


def _sweep_orphan_files(done: Collected) -> None:
    """Files left by a crash after their row was deleted (finalize, termination, gc)."""
    on_disk = staging.staged_upload_ids()
    if not on_disk:
        return
    live = {str(value) for value in Upload.objects.filter(public_id__in=on_disk)
            .values_list("public_id", flat=True)}
    for upload_id in sorted(on_disk - live):
        try:
            with staging.locked(upload_id):
                if Upload.objects.filter(public_id=upload_id).exists():
                    continue
                staging.discard(upload_id)
                done.orphan_files += 1
        except staging.UploadBusy:
            done.busy += 1


def _sweep_orphan_objects(done: Collected) -> None:
    """Objects of FAILED or ERASED recordings (an erasure whose delete failed after commit is
    retried here), or of rows that are gone (a crash after put_file)."""
    objects = store()
    by_id: dict[str, str] = {}
    for name in objects.names("recordings/"):
        stem = name.removeprefix("recordings/").removesuffix(".rlv")
        if name.endswith(".rlv") and "/" not in stem and _is_uuid(stem):
            by_id[stem] = name
    if not by_id:
        return
    states = dict(Recording.objects.filter(public_id__in=list(by_id))
                  .values_list("public_id", "state"))
    known = {str(public_id): state for public_id, state in states.items()}
    for recording_id, name in by_id.items():
        state = known.get(recording_id)
        if state is None or state in (State.FAILED, State.ERASED):
            objects.delete(name)
            done.orphan_objects += 1
            if state == State.FAILED:
                done.failed_leftovers.append(recording_id)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# ---- finalize: check, probe, (remux), store, READY ------------------------------------------

class _Unusable(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(reason)
        self.message = message
        self.reason = reason


@dataclass
class _Stored:
    reader: StreamReader
    info: MediaInfo
    sha256: str
    remuxed: bool
    source: Path


def _as_binary(file: io.RawIOBase) -> BinaryIO:
    """The vault's raw files are seekable binary files; probe/remux are typed for BinaryIO."""
    return cast(BinaryIO, file)


def _file_reader(key: bytes, path: Path, size: int) -> StreamReader:
    def read_at(offset: int, length: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    return StreamReader(key, read_at, size)


def finalize_upload(recording_id: str | uuid.UUID) -> Recording | None:
    """Turn a RECEIVED recording into READY or FAILED. Idempotent: safe to run twice, at once
    from two processes (the upload lock serialises them), or again after a crash anywhere."""
    recording = Recording.objects.filter(public_id=recording_id).first()
    if recording is None or recording.state != State.RECEIVED:
        return recording
    upload = Upload.objects.filter(recording=recording).first()
    if upload is None:
        return _fail(recording, None, LOST, "upload_missing")
    with staging.locked(upload.public_id, wait=True):
        recording = Recording.objects.select_related("session__episode__client__clinic").get(
            pk=recording.pk)
        if recording.state != State.RECEIVED:
            return recording  # another run finished it while we waited
        try:
            stored = _check_and_store(recording, upload)
        except _Unusable as problem:
            return _fail(recording, upload, problem.message, problem.reason)
        crash_point("finalize.after_put")
        with transaction.atomic():
            _fill_media_fields(recording, stored)
            recording.save()
            upload.delete()
            _audit(None, "recording.ready", recording,
                   {"size": recording.size, "container": recording.container,
                    "duration_s": recording.duration_s, "remuxed": recording.remuxed})
            transaction.on_commit(partial(recording_ready, recording.public_id), robust=True)
        crash_point("finalize.after_commit")
        staging.discard(upload.public_id)
    return recording


def _check_and_store(recording: Recording, upload: Upload) -> _Stored:
    try:
        key = data_key(recording)
    except IntegrityError:
        raise _Unusable(DAMAGED, "key_damaged") from None
    reader, source = _received_reader(recording, upload, key)
    try:
        sha256 = verify_all(reader)
    except IntegrityError:
        report_integrity_failure(recording, "staging")
        raise _Unusable(DAMAGED, "staging_damaged") from None
    if upload.expected_sha256 and sha256 != upload.expected_sha256:
        raise _Unusable(CHECKSUM, "sha256_mismatch")
    crash_point("finalize.after_verify")
    try:
        info = probe(_as_binary(reader.raw_file()))
        if recording.kind == Kind.AUDIO and info.has_video:
            raise _Unusable(VIDEO_AS_AUDIO, "video_as_audio")
        remuxed = needs_remux(info)
        if remuxed:
            reader, source = _remux_reencrypted(recording, upload, reader)
            sha256 = verify_all(reader)
            info = probe(_as_binary(reader.raw_file()))
    except MediaError as error:
        raise _Unusable(error.user_message[:300], f"media_{error.status}") from None
    name = object_name_for(recording)
    # Staged files are never written again once RECEIVED (re-keying replaces them by rename).
    store().put_file(name, source, source_is_final=True)
    # Read back the header and the authenticated final chunk: the stored object has the size
    # and key we are about to record (put_file is atomic, so this is the whole object).
    objects = store()
    stored = StreamReader(data_key(recording),
                          lambda offset, length: objects.read_range(name, offset, length),
                          objects.size(name))
    if stored.length != reader.length:
        raise RuntimeError("stored object length differs from what was checked")
    return _Stored(reader=stored, info=info, sha256=sha256, remuxed=remuxed, source=source)


def _received_reader(recording: Recording, upload: Upload,
                     key: bytes) -> tuple[StreamReader, Path]:
    path = staging.part_path(upload.public_id)
    try:
        staging.resync(upload.public_id, upload.staged_size)
    except staging.StagingLost:
        raise _Unusable(LOST, "staging_short") from None
    if not path.exists():
        raise _Unusable(LOST, "staging_missing")
    try:
        return _file_reader(key, path, upload.staged_size), path
    except IntegrityError:
        report_integrity_failure(recording, "staging")
        raise _Unusable(DAMAGED, "staging_damaged") from None


def _remux_reencrypted(recording: Recording, upload: Upload,
                       reader: StreamReader) -> tuple[StreamReader, Path]:
    """Remux into an encrypted scratch file, then encrypt that under a NEW data key (set on
    the instance, saved only with READY) into `U.remux`. The original staging file stays
    until READY commits, so a crash here just means doing it again."""
    key = issue_data_key(recording)
    header = Header.new()
    encryptor = Encryptor(key, header)
    target = staging.remux_path(upload.public_id)
    with EncryptedScratchFile(staging.upload_dir()) as scratch:
        remux(_as_binary(reader.raw_file()), _as_binary(scratch))
        scratch.seek(0)
        with open(target, "wb") as out:
            out.write(header.to_bytes())
            while piece := scratch.read(READ_PIECE):
                out.write(encryptor.update(piece))
            out.write(encryptor.finish())
            staging.sync(out)
    return _file_reader(key, target, target.stat().st_size), target


CONTENT_TYPES = {
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
}


def content_type_for(info: MediaInfo) -> str:
    if info.container in CONTENT_TYPES:
        return CONTENT_TYPES[info.container]
    family = "video" if info.has_video else "audio"
    if "webm" in info.container or "matroska" in info.container:
        return f"{family}/webm"
    if "mp4" in info.container:
        return f"{family}/mp4"
    return "application/octet-stream"


def _fill_media_fields(recording: Recording, stored: _Stored) -> None:
    info = stored.info
    objects = store()
    name = object_name_for(recording)
    recording.state = State.READY
    recording.ready_at = timezone.now()
    recording.object_name = name
    recording.ciphertext_size = objects.size(name)
    recording.size = stored.reader.length
    recording.sha256 = stored.sha256
    recording.content_type = content_type_for(info)
    recording.container = info.container[:100]
    recording.duration_s = info.duration_s
    recording.audio_codec = (info.audio_codec or "")[:50]
    recording.video_codec = (info.video_codec or "")[:50]
    recording.channels = info.channels
    recording.sample_rate = info.sample_rate
    recording.remuxed = stored.remuxed
    recording.failure = ""


def _fail(recording: Recording, upload: Upload | None, message: str, reason: str) -> Recording:
    """FAILED with a message a clinician can act on; the key is destroyed in the same commit,
    then every staged byte and any stored object are removed (gc finishes it after a crash)."""
    with transaction.atomic():
        recording = Recording.objects.select_related("session__episode__client__clinic").get(
            pk=recording.pk)
        recording.state = State.FAILED
        recording.failure = message[:300]
        recording.wrapped_key = None
        recording.kek_version = None
        recording.save(update_fields=["state", "failure", "wrapped_key", "kek_version"])
        if upload is not None:
            Upload.objects.filter(pk=upload.pk).delete()
        _audit(None, "recording.failed", recording, {"reason": reason})
    if upload is not None:
        staging.discard(upload.public_id)
    try:
        store().delete(object_name_for(recording))
    except ObjectMissing:
        pass
    return recording


def recover_received() -> list[Recording]:
    """Finalize every RECEIVED recording (after a crash, or a lost job)."""
    done: list[Recording] = []
    for public_id in Recording.objects.filter(state=State.RECEIVED).values_list("public_id",
                                                                               flat=True):
        try:
            result = finalize_upload(public_id)
        except Exception:
            # One broken recording must not stop the rest; it stays RECEIVED for the next run.
            logger.exception("finalize failed for recording %s", public_id)
            continue
        if result is not None:
            done.append(result)
    return done


__all__ = [
    "AppendResult", "Collected", "append_upload", "collect_expired_uploads",
    "create_upload", "finalize_upload", "recover_received", "resync_upload", "terminate_upload",
]
