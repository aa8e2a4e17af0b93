"""Staging files of tus uploads: ciphertext only, one set per upload, used under a lock.

For upload U, `UPLOAD_DIR` holds:

* `U.part`: the STREAM object being built (header, then sealed chunks). Only the first
  `Upload.staged_size` bytes are committed; anything after them was appended by a request that
  died before its database commit and is cut off by `rollback_to` on the next request.
* `U.remux`: a re-encrypted copy under a new data key while finalize remuxes a WebM.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

SUFFIXES = (".part", ".remux", ".lock")
_NAME = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(part|remux|lock)$"
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


def discard(upload_id: uuid.UUID | str, *, lock_file: bool = True) -> None:
    """Remove U's files (call under U's lock; the lock file last, still held)."""
    part_path(upload_id).unlink(missing_ok=True)
    remux_path(upload_id).unlink(missing_ok=True)
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
