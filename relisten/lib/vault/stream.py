"""Chunked authenticated encryption of one recording (framework-free).

The STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, CRYPTO 2015), as used by age and
Tink's streaming AEAD, on AES-256-GCM. Every chunk is sealed on its own, so any byte range can be
decrypted and verified without touching the rest of the object, yet the object as a whole is
tamper-evident:

* the nonce of chunk *i* is ``prefix(7) || i (4, big-endian) || last (1)``, so chunks cannot be
  reordered, dropped from the middle, or moved between objects (each object has its own random
  prefix and, normally, its own data key);
* only the final chunk carries ``last = 1``, so truncation at a chunk boundary and appended
  chunks are detected when the final chunk is checked, which the reader does before it reports
  any length;
* the header (magic, version, chunk size, nonce prefix) is the associated data of every chunk,
  so changing any header field breaks every chunk.

The byte layout is documented in ``docs/vault-format.md``.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
KEY_SIZE = 32
NONCE_PREFIX_SIZE = 7
MAGIC = b"RLVAULT\x00"
VERSION = 1
# A cap on the chunk size a header may claim, so a damaged header cannot make the reader
# allocate or fetch gigabytes before authentication fails.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# The counter is 4 bytes: 2**32 chunks of 64 KiB is 256 TiB, far beyond any recording.
MAX_CHUNKS = 2**32

_HEADER = struct.Struct(">8sBI7s")
HEADER_SIZE: int = _HEADER.size
_COUNTER_AND_FLAG = struct.Struct(">IB")

# Domain separation for seal_blob: its associated data starts with a label that can never equal
# a stream header (which starts with MAGIC), so a blob can never be passed off as a chunk.
_BLOB_VERSION = 1
_BLOB_LABEL = b"relisten-vault-blob/1\x00"
_BLOB_NONCE_SIZE = 12

# How much ciphertext one read_at call may fetch at once: large enough that an S3 range request
# carries a useful amount of data, small enough to keep memory flat while streaming.
_READ_BATCH_BYTES = 1024 * 1024


class IntegrityError(Exception):
    """The encrypted data (or the key) is not what was written. Never contains plaintext."""


def _damaged(detail: str) -> IntegrityError:
    return IntegrityError(f"The encrypted recording failed its integrity check ({detail}).")


@dataclass(frozen=True)
class Header:
    version: int
    chunk_size: int
    nonce_prefix: bytes

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.chunk_size, self.nonce_prefix)

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) != HEADER_SIZE:
            raise _damaged("the header is incomplete")
        magic, version, chunk_size, prefix = _HEADER.unpack(data)
        if magic != MAGIC:
            raise _damaged("this is not a Relisten vault object")
        if version != VERSION:
            raise _damaged(f"unsupported format version {version}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise _damaged("the header names an impossible chunk size")
        return cls(version=version, chunk_size=chunk_size, nonce_prefix=prefix)

    @classmethod
    def new(cls, chunk_size: int = CHUNK_SIZE) -> Header:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        return cls(VERSION, chunk_size, os.urandom(NONCE_PREFIX_SIZE))


def new_data_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError("a vault key must be 32 bytes (AES-256)")


def _chunk_count(plaintext_size: int, chunk_size: int) -> int:
    # An empty object still has one (empty) final chunk, so it is authenticated like any other.
    return max(1, -(-plaintext_size // chunk_size))


def ciphertext_size(plaintext_size: int, chunk_size: int = CHUNK_SIZE) -> int:
    if plaintext_size < 0:
        raise ValueError("plaintext_size must not be negative")
    return HEADER_SIZE + plaintext_size + TAG_SIZE * _chunk_count(plaintext_size, chunk_size)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + _COUNTER_AND_FLAG.pack(counter, 1 if last else 0)


class Encryptor:
    """Incremental, resumable across HTTP requests. Emits a chunk only once at least one more
    byte is known to follow it, so `pending` (plaintext not yet sealed) is at most chunk_size."""

    def __init__(
        self, key: bytes, header: Header, next_counter: int = 0, pending: bytes = b""
    ) -> None:
        _check_key(key)
        if len(pending) > header.chunk_size:
            raise ValueError("pending data is longer than one chunk")
        if next_counter < 0 or next_counter >= MAX_CHUNKS:
            raise ValueError("next_counter is out of range")
        if next_counter > 0 and not pending:
            # A sealed chunk is only emitted once a byte after it is known, so a resumed state
            # with sealed chunks always has pending bytes; anything else is a caller's bug.
            raise ValueError("a resumed encryptor with sealed chunks must have pending data")
        self._aead = AESGCM(key)
        self._header = header
        self._aad = header.to_bytes()
        self._counter = next_counter
        self._pending = bytes(pending)
        self._finished = False

    @property
    def next_counter(self) -> int:
        return self._counter

    @property
    def pending(self) -> bytes:
        return self._pending

    def _seal(self, chunk: bytes | memoryview, last: bool) -> bytes:
        if self._counter >= MAX_CHUNKS:
            raise ValueError("the object is too large for the vault format")
        nonce = _nonce(self._header.nonce_prefix, self._counter, last)
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, self._aad)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._finished:
            raise ValueError("the encryptor has already finished")
        size = self._header.chunk_size
        view = memoryview(data).cast("B")
        out: list[bytes] = []
        pos = 0
        if self._pending:
            need = size - len(self._pending)
            if len(view) <= need:
                self._pending += view.tobytes()
                return b""
            out.append(self._seal(self._pending + view[:need].tobytes(), last=False))
            pos = need
        # Strictly greater: a full chunk with nothing known after it may still be the last one.
        while len(view) - pos > size:
            out.append(self._seal(view[pos : pos + size], last=False))
            pos += size
        self._pending = view[pos:].tobytes()
        return b"".join(out)

    def finish(self) -> bytes:
        if self._finished:
            raise ValueError("the encryptor has already finished")
        self._finished = True
        sealed = self._seal(self._pending, last=True)
        self._pending = b""
        return sealed


def seal_blob(key: bytes, data: bytes, context: bytes) -> bytes:
    """Seal small state (such as an upload's pending tail) under a random 96-bit nonce.

    Layout: version(1) || nonce(12) || ciphertext || tag(16); `context` is bound as associated
    data, so a blob saved for one purpose or upload cannot be opened as another.
    """
    _check_key(key)
    nonce = os.urandom(_BLOB_NONCE_SIZE)
    sealed = AESGCM(key).encrypt(nonce, data, _BLOB_LABEL + context)
    return bytes([_BLOB_VERSION]) + nonce + sealed


def open_blob(key: bytes, blob: bytes, context: bytes) -> bytes:
    _check_key(key)
    if len(blob) < 1 + _BLOB_NONCE_SIZE + TAG_SIZE or blob[0] != _BLOB_VERSION:
        raise _damaged("saved upload state is malformed")
    nonce = blob[1 : 1 + _BLOB_NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + _BLOB_NONCE_SIZE :], _BLOB_LABEL + context)
    except InvalidTag:
        raise _damaged("saved upload state does not match its key or purpose") from None


class StreamReader:
    """Random access. __init__ parses the header and authenticates the final chunk before
    `length` is available (a truncated or extended object raises IntegrityError here)."""

    def __init__(
        self, key: bytes, read_at: Callable[[int, int], bytes], ciphertext_size: int
    ) -> None:
        _check_key(key)
        if ciphertext_size < HEADER_SIZE + TAG_SIZE:
            raise _damaged("the object is too short")
        self._read_at = read_at
        self._aead = AESGCM(key)
        self._aad = self._fetch(0, HEADER_SIZE)
        self.header = Header.parse(self._aad)
        size = self.header.chunk_size
        self._chunk_ct = size + TAG_SIZE
        body = ciphertext_size - HEADER_SIZE
        self._count = -(-body // self._chunk_ct)
        last_ct = body - (self._count - 1) * self._chunk_ct
        if self._count > MAX_CHUNKS:
            raise _damaged("the object is larger than the format allows")
        if last_ct < TAG_SIZE or (self._count > 1 and last_ct == TAG_SIZE):
            # A final chunk cut inside its tag, or an empty final chunk after full ones (which
            # the encryptor never writes): truncated or extended.
            raise _damaged("the object has been cut short or extended")
        last = self._count - 1
        self._last_plain = self._open(
            last, self._fetch(HEADER_SIZE + last * self._chunk_ct, last_ct)
        )
        self.length: int = last * size + len(self._last_plain)
        # One recently decrypted chunk, so small sequential reads (PyAV reads a few KiB at a time)
        # do not decrypt the same 64 KiB again and again.
        self._recent: tuple[int, bytes] = (last, self._last_plain)

    def _fetch(self, offset: int, length: int) -> bytes:
        data = self._read_at(offset, length)
        if len(data) != length:
            raise _damaged("the stored object is shorter than expected")
        return data

    def _open(self, index: int, sealed: bytes | memoryview) -> bytes:
        nonce = _nonce(self.header.nonce_prefix, index, index == self._count - 1)
        try:
            return self._aead.decrypt(nonce, sealed, self._aad)
        except InvalidTag:
            raise _damaged(f"chunk {index + 1} of {self._count}") from None

    def _chunks(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        """Verified plaintext of chunks first..last (inclusive), fetched in batches."""
        index = first
        batch = max(1, _READ_BATCH_BYTES // self._chunk_ct)
        final = self._count - 1
        while index <= last:
            if index == self._recent[0]:
                yield self._recent
            elif index == final:
                # Verified in __init__ and kept: never fetched or decrypted twice.
                self._recent = (final, self._last_plain)
                yield self._recent
            else:
                # Full chunks only (the final one is cached), so the batch length is exact.
                stop = min(last + 1, index + batch, final)
                offset = HEADER_SIZE + index * self._chunk_ct
                data = memoryview(self._fetch(offset, (stop - index) * self._chunk_ct))
                for i in range(index, stop):
                    at = (i - index) * self._chunk_ct
                    self._recent = (i, self._open(i, data[at : at + self._chunk_ct]))
                    yield self._recent
                index = stop
                continue
            index += 1

    def _clamp(self, start: int, end: int) -> tuple[int, int]:
        if start < 0 or end < start:
            raise ValueError("a range needs 0 <= start <= end")
        return min(start, self.length), min(end, self.length)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        """Plaintext [start, end) piece by piece; each chunk is verified before any of its bytes
        is yielded. `end` past the plaintext length is clamped, like reading a file."""
        start, end = self._clamp(start, end)
        if start == end:
            return
        size = self.header.chunk_size
        for index, plain in self._chunks(start // size, (end - 1) // size):
            base = index * size
            lo, hi = max(start - base, 0), min(end - base, len(plain))
            yield plain if (lo == 0 and hi == len(plain)) else plain[lo:hi]

    def read(self, start: int, end: int) -> bytes:
        return b"".join(self.iter_range(start, end))

    def raw_file(self) -> io.RawIOBase:
        return _PlaintextFile(self)


def seek_target(position: int, size: int, offset: int, whence: int) -> int:
    """The new position for io-style seek(offset, whence); shared by the vault's file views."""
    if whence == io.SEEK_SET:
        target = offset
    elif whence == io.SEEK_CUR:
        target = position + offset
    elif whence == io.SEEK_END:
        target = size + offset
    else:
        raise ValueError(f"invalid whence ({whence})")
    if target < 0:
        raise ValueError("negative seek position")
    return target


class _PlaintextFile(io.RawIOBase):
    """Read-only seekable view of a StreamReader's plaintext (for PyAV and similar readers)."""

    def __init__(self, reader: StreamReader) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        target = seek_target(self._pos, self._reader.length, offset, whence)
        self._pos = target
        return target

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        end = self._reader.length if size is None or size < 0 else self._pos + size
        data = self._reader.read(self._pos, max(end, self._pos))
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")


def open_unfinished(
    key: bytes, read_at: Callable[[int, int], bytes], ciphertext_size: int
) -> Iterator[bytes]:
    """Plaintext of each sealed chunk of a stream that has no final chunk YET (the staging file
    of an upload in progress), in order, each verified before it is yielded.

    Every chunk is opened as non-final, so a finished object does not open here (its last
    chunk fails) and this can never be used to read a complete recording while ignoring its
    end. It does not prove that chunks are missing at the end: use it only where the length
    is known from elsewhere (an upload's committed `staged_size`).
    """
    _check_key(key)
    if ciphertext_size < HEADER_SIZE:
        raise _damaged("the object is too short")

    def fetch(offset: int, length: int) -> bytes:
        data = read_at(offset, length)
        if len(data) != length:
            raise _damaged("the stored object is shorter than expected")
        return data

    aad = fetch(0, HEADER_SIZE)
    header = Header.parse(aad)
    chunk_ct = header.chunk_size + TAG_SIZE
    count, rest = divmod(ciphertext_size - HEADER_SIZE, chunk_ct)
    if rest or count > MAX_CHUNKS:
        raise _damaged("an unfinished object must hold whole chunks only")
    aead = AESGCM(key)
    batch = max(1, _READ_BATCH_BYTES // chunk_ct)
    for first in range(0, count, batch):
        stop = min(count, first + batch)
        data = memoryview(fetch(HEADER_SIZE + first * chunk_ct, (stop - first) * chunk_ct))
        for index in range(first, stop):
            at = (index - first) * chunk_ct
            try:
                yield aead.decrypt(_nonce(header.nonce_prefix, index, False),
                                   data[at : at + chunk_ct], aad)
            except InvalidTag:
                raise _damaged(f"chunk {index + 1} of the unfinished object") from None


def verify_all(reader: StreamReader) -> str:
    """Decrypt and verify every chunk; return the hex SHA-256 of the whole plaintext."""
    digest = hashlib.sha256()
    for piece in reader.iter_range(0, reader.length):
        digest.update(piece)
    return digest.hexdigest()
