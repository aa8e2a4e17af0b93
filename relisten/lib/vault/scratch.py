"""An encrypted, seekable scratch file for muxer output (framework-free).

PyAV's WebM muxer seeks back to fill in Duration and Cues, so remuxing needs a real read/write/
seek file. Writing that to a plain temp file would leave a recording's plaintext on disk (and in
backups of the data directory, and after a crash). Here the file on disk holds only
AES-256-GCM-sealed chunks under a key that exists only in this process's memory; the file is
unlinked right after it is created, so nothing is left behind even if the process dies.

Disk layout: chunk i lives in a fixed slot at i * (12 + chunk_size + 16) as
nonce(12) || ciphertext || tag(16), with the chunk index as associated data (so slots cannot be
swapped). Every time a chunk is written back it gets a fresh random nonce, so rewriting a chunk
never reuses a nonce. Only the last chunk may be shorter than chunk_size; the logical length is
kept in memory. One chunk is cached in memory (plaintext, like the key) so the muxer's many small
sequential writes do not re-seal the same chunk for every few bytes.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relisten.lib.vault.stream import TAG_SIZE, IntegrityError, seek_target

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

_NONCE_SIZE = 12
_INDEX = struct.Struct(">Q")


class EncryptedScratchFile(io.RawIOBase):
    """A readable, writable, seekable temp file whose bytes on disk are always encrypted: each
    chunk is re-sealed with a fresh random nonce on every write (so rewriting never reuses a
    nonce); the key lives only in memory and the file is deleted on close. For PyAV's muxer
    output (which seeks back to write Duration/Cues) without plaintext at rest."""

    def __init__(self, directory: Path, chunk_size: int = 64 * 1024) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._chunk_size = chunk_size
        self._slot = _NONCE_SIZE + chunk_size + TAG_SIZE
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        fd, name = tempfile.mkstemp(prefix=".scratch-", suffix=".enc", dir=directory)
        # Unlinked at once: the open descriptor keeps the data reachable for us only, and a
        # crash cannot leave the (encrypted) file behind.
        os.unlink(name)
        self._fd: int | None = fd
        self._size = 0
        self._pos = 0
        self._cached: int | None = None  # index of the chunk held in _buffer
        self._buffer = bytearray()
        self._dirty = False

    # -- chunk plumbing -------------------------------------------------------------------

    def _chunk_length(self, index: int) -> int:
        """Plaintext length of chunk `index` for the current logical size."""
        return max(0, min(self._chunk_size, self._size - index * self._chunk_size))

    def _flush_cached(self) -> None:
        if self._cached is None or not self._dirty:
            return
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, bytes(self._buffer), _INDEX.pack(self._cached))
        os.pwrite(self._require_fd(), nonce + sealed, self._cached * self._slot)
        self._dirty = False

    def _load(self, index: int, stored_length: int) -> bytearray:
        """Make chunk `index` the cached one; `stored_length` is its plaintext length on disk."""
        if self._cached == index:
            return self._buffer
        self._flush_cached()
        if stored_length == 0:
            plain = b""
        else:
            want = _NONCE_SIZE + stored_length + TAG_SIZE
            data = os.pread(self._require_fd(), want, index * self._slot)
            if len(data) != want:
                raise IntegrityError("The encrypted scratch file is shorter than expected.")
            try:
                nonce, sealed = data[:_NONCE_SIZE], data[_NONCE_SIZE:]
                plain = self._aead.decrypt(nonce, sealed, _INDEX.pack(index))
            except InvalidTag:
                raise IntegrityError("The encrypted scratch file was changed on disk.") from None
        self._cached, self._buffer, self._dirty = index, bytearray(plain), False
        return self._buffer

    def _resize(self, size: int) -> None:
        """Grow with zero bytes (like a sparse file / BytesIO) or shrink, keeping every chunk
        but the last exactly chunk_size long."""
        old = self._size
        if size == old:
            return
        step = self._chunk_size
        if size > old:
            first = old // step
            last = (size - 1) // step
            for index in range(first, last + 1):
                buffer = self._load(index, self._chunk_length(index))
                target = min(step, size - index * step)
                buffer.extend(bytes(target - len(buffer)))
                self._dirty = True
            self._size = size
            return
        keep = -(-size // step)  # chunks left after shrinking
        if self._cached is not None and self._cached >= keep:
            self._cached, self._buffer, self._dirty = None, bytearray(), False
        if size % step:
            buffer = self._load(keep - 1, self._chunk_length(keep - 1))
            del buffer[size - (keep - 1) * step :]
            self._dirty = True
        self._size = size
        os.ftruncate(self._require_fd(), keep * self._slot)

    # -- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._require_fd()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._require_fd()
        target = seek_target(self._pos, self._size, offset, whence)
        self._pos = target
        return target

    def read(self, size: int | None = -1) -> bytes:
        self._require_fd()
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        pieces: list[bytes] = []
        pos = self._pos
        step = self._chunk_size
        while pos < end:
            index = pos // step
            buffer = self._load(index, self._chunk_length(index))
            lo = pos - index * step
            hi = min(len(buffer), end - index * step)
            pieces.append(bytes(buffer[lo:hi]))
            pos += hi - lo
        self._pos = pos
        return b"".join(pieces)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def write(self, data: ReadableBuffer) -> int:
        self._require_fd()
        view = memoryview(data).cast("B")
        if not view:
            return 0
        if self._pos > self._size:
            self._resize(self._pos)
        step = self._chunk_size
        pos, done = self._pos, 0
        while done < len(view):
            index = pos // step
            buffer = self._load(index, self._chunk_length(index))
            lo = pos - index * step
            take = min(step - lo, len(view) - done)
            buffer[lo : lo + take] = view[done : done + take]
            self._dirty = True
            done += take
            pos += take
            self._size = max(self._size, pos)
        self._pos = pos
        return done

    def truncate(self, size: int | None = None) -> int:
        self._require_fd()
        size = self._pos if size is None else size
        if size < 0:
            raise ValueError("negative size value")
        self._resize(size)
        return size

    def flush(self) -> None:
        # Nothing to make durable: the file is anonymous and dies with the process. Only the
        # closed check of io.IOBase applies.
        super().flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._buffer = bytearray()
            self._cached = None
        super().close()

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError("I/O operation on closed file.")
        return self._fd
