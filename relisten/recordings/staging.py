"""Staging files of tus uploads: ciphertext only, one set per upload, used under a lock.

For upload U, `UPLOAD_DIR` holds:

* `U.part`: the STREAM object being built (header, then sealed chunks). Only the first
  `Upload.staged_size` bytes are committed; anything after them was appended by a request that
  died before its database commit and is cut off by `rollback_to` on the next request.
* `U.remux`: a re-encrypted copy under a new data key while finalize remuxes a WebM.
* `U.rekey`: the committed part of `U.part` re-encrypted under a new data key, written when a
  cut-back removed sealed bytes (see `actions._rekey`). It replaces `U.part` once the database
  points at its header; `settle_rekey` finishes or drops one that a crash left behind.
* `U.lock`: an empty file whose `flock` serialises every request and job that touches U's files
  (PATCH, HEAD, DELETE, finalize, gc), across threads and processes. A lock file separate from
  `U.part` means the lock still works when the staging file is missing.

Holders always re-read the Upload row after taking the lock: whoever removed the row (DELETE,
gc, finalize) did so under the same lock, so a holder that finds the row gone does nothing.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

SUFFIXES = (".part", ".remux", ".rekey", ".lock")
_NAME = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(part|remux|rekey|lock)$"
)


class UploadBusy(Exception):
    """Another request or job is using this upload right now."""


class StagingLost(Exception):
    """The staging file is shorter than the committed size: storage lost acknowledged data."""


def upload_dir() -> Path:
    path = Path(settings.UPLOAD_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def part_path(upload_id: uuid.UUID | str) -> Path:
    return upload_dir() / f"{upload_id}.part"


def remux_path(upload_id: uuid.UUID | str) -> Path:
    return upload_dir() / f"{upload_id}.remux"


def rekey_path(upload_id: uuid.UUID | str) -> Path:
    return upload_dir() / f"{upload_id}.rekey"


def _lock_path(upload_id: uuid.UUID | str) -> Path:
    return upload_dir() / f"{upload_id}.lock"


@contextmanager
def locked(upload_id: uuid.UUID | str, *, wait: bool = False) -> Iterator[None]:
    """Hold U's lock. wait=False raises UploadBusy at once (requests answer 423 and the client
    retries); jobs wait, since the holder is a live process that will finish."""
    fd = os.open(_lock_path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise UploadBusy(str(upload_id)) from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


def try_locked(upload_id: uuid.UUID | str) -> bool:
    """Whether U's lock is free right now (for gc, which skips busy uploads)."""
    try:
        with locked(upload_id):
            return True
    except UploadBusy:
        return False


def open_part(upload_id: uuid.UUID | str, staged_size: int) -> BinaryIO:
    """The staging file for appending, cut back to its committed size (call under the lock).

    Bytes after `staged_size` were written by a request that crashed before committing; they
    were never acknowledged, so dropping them loses nothing the client was told is safe."""
    path = part_path(upload_id)
    flags = os.O_RDWR | (os.O_CREAT if staged_size == 0 else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        raise StagingLost(str(upload_id)) from None
    handle = os.fdopen(fd, "r+b")
    try:
        rollback_to(handle, staged_size)
    except BaseException:
        handle.close()
        raise
    handle.seek(staged_size)
    return handle


def rollback_to(handle: BinaryIO, staged_size: int) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size < staged_size:
        raise StagingLost("staging file shorter than committed")
    if size > staged_size:
        handle.truncate(staged_size)
        os.fsync(handle.fileno())


def resync(upload_id: uuid.UUID | str, staged_size: int) -> None:
    """Undo uncommitted appends without writing anything new (HEAD, finalize)."""
    path = part_path(upload_id)
    if staged_size == 0 and not path.exists():
        return
    open_part(upload_id, staged_size).close()


def sync(handle: BinaryIO) -> None:
    """Make appended ciphertext durable before the database says it is there."""
    handle.flush()
    os.fsync(handle.fileno())


def uncommitted_bytes(upload_id: uuid.UUID | str, staged_size: int) -> int:
    """How many bytes after `staged_size` a crashed or refused request left (call under the
    lock). StagingLost if the file is shorter than what was committed."""
    try:
        size = part_path(upload_id).stat().st_size
    except FileNotFoundError:
        if staged_size == 0:
            return 0
        raise StagingLost(str(upload_id)) from None
    if size < staged_size:
        raise StagingLost("staging file shorter than committed")
    return size - staged_size


def read_part(upload_id: uuid.UUID | str, offset: int, length: int) -> bytes:
    with open(part_path(upload_id), "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def write_rekeyed(upload_id: uuid.UUID | str, pieces: Iterable[bytes]) -> int:
    """Write `U.rekey` from scratch and make it durable; returns its size (call under the
    lock). Nothing reads it until `install_rekeyed` or `settle_rekey` puts it in place."""
    path = rekey_path(upload_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        for piece in pieces:
            out.write(piece)
        sync(out)
        size = out.tell()
    _sync_dir()
    return size


def install_rekeyed(upload_id: uuid.UUID | str) -> None:
    """`U.rekey` becomes `U.part` in one step (the old staging file, and the cut-off bytes
    with it, is unlinked by the rename)."""
    os.replace(rekey_path(upload_id), part_path(upload_id))
    _sync_dir()


def settle_rekey(upload_id: uuid.UUID | str, committed_header: bytes) -> None:
    """Finish or undo a re-keying that a crash interrupted (call under the lock, first).

    `U.rekey` is only ever written completely and fsynced before the transaction that
    records its header, and every header has a fresh random nonce prefix. So a `U.rekey`
    that starts with the committed header is the file the database describes (the crash
    came after the commit): put it in place. Any other `U.rekey` belongs to a transaction
    that never committed: the database still describes `U.part`, so drop it."""
    path = rekey_path(upload_id)
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(committed_header))
    except FileNotFoundError:
        return
    if committed_header and start == committed_header:
        install_rekeyed(upload_id)
    else:
        path.unlink(missing_ok=True)


def _sync_dir() -> None:
    """Make a create, rename or unlink in UPLOAD_DIR itself durable."""
    fd = os.open(upload_dir(), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(upload_id: uuid.UUID | str, *, lock_file: bool = True) -> None:
    """Remove U's files (call under U's lock; the lock file last, still held)."""
    part_path(upload_id).unlink(missing_ok=True)
    remux_path(upload_id).unlink(missing_ok=True)
    rekey_path(upload_id).unlink(missing_ok=True)
    if lock_file:
        _lock_path(upload_id).unlink(missing_ok=True)


def staged_upload_ids() -> set[str]:
    """Ids of uploads with any file in UPLOAD_DIR (for gc's sweep of orphans)."""
    found: set[str] = set()
    for entry in os.scandir(upload_dir()):
        match = _NAME.match(entry.name)
        if match:
            found.add(match.group(1))
    return found
