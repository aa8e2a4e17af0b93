"""relisten.lib.vault.stream: chunked AES-256-GCM (STREAM) on its own, no Django.

Tamper evidence, random-access correctness and resumable encryption, each checked against the
plaintext byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Callable

import pytest

from relisten.lib.vault.stream import (
    CHUNK_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    Encryptor,
    Header,
    IntegrityError,
    StreamReader,
    ciphertext_size,
    new_data_key,
    open_blob,
    open_unfinished,
    seal_blob,
    verify_all,
)

KEY = bytes(range(32))
FULL = CHUNK_SIZE + TAG_SIZE  # one full chunk on disk


def plaintext(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def encrypt(data: bytes, key: bytes = KEY, header: Header | None = None) -> bytes:
    header = header or Header.new()
    enc = Encryptor(key, header)
    return header.to_bytes() + enc.update(data) + enc.finish()


def open_reader(ct: bytes, key: bytes = KEY) -> StreamReader:
    return StreamReader(key, lambda offset, length: ct[offset : offset + length], len(ct))


def chunk_at(index: int) -> int:
    """Offset of chunk `index` in the ciphertext."""
    return HEADER_SIZE + index * FULL


def flip(ct: bytes, offset: int, bit: int = 0) -> bytes:
    changed = bytearray(ct)
    changed[offset] ^= 1 << bit
    return bytes(changed)


# Four full chunks and a partial fifth, so there are first, middle and last chunks to damage.
DATA = plaintext(4 * CHUNK_SIZE + 1234)
CT = encrypt(DATA)


def collect_until_error(reader: StreamReader, start: int, end: int) -> bytes:
    """What iter_range handed out before it noticed the damage (it must notice)."""
    got: list[bytes] = []
    with pytest.raises(IntegrityError):
        for piece in reader.iter_range(start, end):
            got.append(piece)
    return b"".join(got)


# -- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_ciphertext_size_matches_what_the_encryptor_writes(size: int) -> None:
    ct = encrypt(plaintext(size))
    assert len(ct) == ciphertext_size(size)
    assert open_reader(ct).length == size


def test_header_round_trips_and_has_the_documented_size() -> None:
    header = Header.new(chunk_size=4096)
    raw = header.to_bytes()
    assert len(raw) == HEADER_SIZE == 20
    assert raw.startswith(b"RLVAULT\x00")
    assert Header.parse(raw) == header
    assert len(header.nonce_prefix) == 7
    assert Header.new().nonce_prefix != Header.new().nonce_prefix


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"NOTVAULT" + bytes(12), "not a Relisten vault object"),
        (b"RLVAULT\x00\x02" + bytes(11), "unsupported format version 2"),
        (b"RLVAULT\x00\x01" + bytes(11), "impossible chunk size"),
        (b"RLVAULT\x00\x01", "incomplete"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(raw: bytes, problem: str) -> None:
    with pytest.raises(IntegrityError, match=problem):
        Header.parse(raw)


def test_empty_file_is_one_authenticated_empty_chunk() -> None:
    ct = encrypt(b"")
    assert len(ct) == HEADER_SIZE + TAG_SIZE
    reader = open_reader(ct)
    assert reader.length == 0
    assert reader.read(0, 0) == b""
    assert list(reader.iter_range(0, 10)) == []
    assert verify_all(reader) == hashlib.sha256(b"").hexdigest()
    with pytest.raises(IntegrityError):
        open_reader(ct[:-1])


def test_new_data_key_is_random_256_bits() -> None:
    assert len(new_data_key()) == 32
    assert new_data_key() != new_data_key()


# -- tamper evidence --------------------------------------------------------------------------


def test_intact_object_reads_back() -> None:
    reader = open_reader(CT)
    assert reader.length == len(DATA)
    assert reader.read(0, reader.length) == DATA
    assert verify_all(reader) == hashlib.sha256(DATA).hexdigest()


def test_every_bit_of_the_header_is_authenticated() -> None:
    for offset in range(HEADER_SIZE):
        for bit in range(8):
            with pytest.raises(IntegrityError):
                open_reader(flip(CT, offset, bit))


def test_bit_flip_in_a_middle_chunk_yields_only_the_good_chunks_before_it() -> None:
    bad = flip(CT, chunk_at(2) + 100)
    reader = open_reader(bad)  # the final chunk is intact, so opening works
    assert collect_until_error(reader, 0, reader.length) == DATA[: 2 * CHUNK_SIZE]
    # Starting inside the bad chunk: not a single byte comes out.
    assert collect_until_error(reader, 2 * CHUNK_SIZE + 5, reader.length) == b""
    with pytest.raises(IntegrityError, match="chunk 3 of 5"):
        reader.read(0, reader.length)
    with pytest.raises(IntegrityError):
        verify_all(reader)
    # Random access to undamaged chunks still works (and is still verified).
    assert reader.read(CHUNK_SIZE, 2 * CHUNK_SIZE) == DATA[CHUNK_SIZE : 2 * CHUNK_SIZE]


def test_bit_flip_in_a_chunk_tag_is_caught() -> None:
    reader = open_reader(flip(CT, chunk_at(1) + FULL - 1, 7))
    assert collect_until_error(reader, 0, reader.length) == DATA[:CHUNK_SIZE]


def test_bit_flip_in_the_last_chunk_fails_before_any_length_is_known() -> None:
    for offset in (chunk_at(4), chunk_at(4) + 1000, len(CT) - 1):
        with pytest.raises(IntegrityError):
            open_reader(flip(CT, offset))


@pytest.mark.parametrize("chunks_left", [1, 2, 4])
def test_truncation_at_a_chunk_boundary_is_caught(chunks_left: int) -> None:
    with pytest.raises(IntegrityError):
        open_reader(CT[: chunk_at(chunks_left)])


def test_truncation_of_a_whole_multiple_of_full_chunks_is_caught() -> None:
    exact = encrypt(plaintext(3 * CHUNK_SIZE))  # last chunk is full
    with pytest.raises(IntegrityError):
        open_reader(exact[: chunk_at(2)])


@pytest.mark.parametrize(
    "cut", [1, TAG_SIZE - 1, TAG_SIZE, TAG_SIZE + 1, 1000, len(CT) - chunk_at(3) - 7]
)
def test_truncation_inside_a_chunk_is_caught(cut: int) -> None:
    with pytest.raises(IntegrityError):
        open_reader(CT[:-cut])


def test_truncation_to_less_than_a_header_is_caught() -> None:
    for size in (0, 5, HEADER_SIZE, HEADER_SIZE + TAG_SIZE - 1):
        with pytest.raises(IntegrityError):
            open_reader(CT[:size])


@pytest.mark.parametrize(
    "extra",
    [b"\x00", bytes(TAG_SIZE), os.urandom(FULL - 1234 - TAG_SIZE), os.urandom(FULL), CT[-500:]],
)
def test_extension_is_caught(extra: bytes) -> None:
    with pytest.raises(IntegrityError):
        open_reader(CT + extra)


def test_appending_a_valid_chunk_copied_from_the_same_object_is_caught() -> None:
    with pytest.raises(IntegrityError):
        open_reader(CT + CT[chunk_at(1) : chunk_at(2)])


def test_two_swapped_chunks_are_caught_and_nothing_of_them_is_yielded() -> None:
    swapped = CT[: chunk_at(1)] + CT[chunk_at(2) : chunk_at(3)] + CT[chunk_at(1) : chunk_at(2)]
    swapped += CT[chunk_at(3) :]
    assert len(swapped) == len(CT)
    reader = open_reader(swapped)
    assert collect_until_error(reader, 0, reader.length) == DATA[:CHUNK_SIZE]
    assert collect_until_error(reader, 2 * CHUNK_SIZE, reader.length) == b""


def test_chunk_from_another_object_under_the_same_key_is_caught() -> None:
    other = encrypt(plaintext(len(DATA), seed=2))  # same key, different nonce prefix
    spliced = CT[: chunk_at(1)] + other[chunk_at(1) : chunk_at(2)] + CT[chunk_at(2) :]
    reader = open_reader(spliced)
    assert collect_until_error(reader, 0, reader.length) == DATA[:CHUNK_SIZE]


def test_wrong_key_fails_on_open() -> None:
    with pytest.raises(IntegrityError):
        open_reader(CT, key=bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        open_reader(CT, key=b"short")


def test_error_messages_carry_no_plaintext() -> None:
    secret = b"Cora said something private" * 4000
    bad = flip(encrypt(secret), chunk_at(1) + 3)
    with pytest.raises(IntegrityError) as caught:
        open_reader(bad).read(0, len(secret))
    assert "Cora" not in str(caught.value)
    assert "integrity check" in str(caught.value)


def test_a_store_that_returns_short_reads_is_an_integrity_error() -> None:
    calls = {"n": 0}

    def flaky(offset: int, length: int) -> bytes:
        calls["n"] += 1
        data = CT[offset : offset + length]
        return data[:-1] if calls["n"] > 2 else data  # header and final chunk come back whole

    reader = StreamReader(KEY, flaky, len(CT))
    with pytest.raises(IntegrityError, match="shorter"):
        reader.read(0, CHUNK_SIZE)


# -- random access ----------------------------------------------------------------------------

SIZES = [0, 1, 65535, 65536, 65537, 131072, 5 * 1024 * 1024 + 321]


def random_ranges(rng: random.Random, size: int, count: int) -> list[tuple[int, int]]:
    ranges = []
    for _ in range(count):
        start = rng.randrange(size + 1)
        # Mostly short and chunk-sized ranges, sometimes long ones and some past the end.
        length = rng.choice(
            [
                0,
                1,
                rng.randrange(1, 300),
                rng.randrange(CHUNK_SIZE * 3),
                rng.randrange(size + 2),
                size + 100,
            ]
        )
        ranges.append((start, start + length))
    return ranges


@pytest.mark.parametrize("size", SIZES)
def test_random_ranges_are_byte_exact(size: int) -> None:
    data = plaintext(size, seed=size)
    reader = open_reader(encrypt(data, header=Header.new()))
    raw = reader.raw_file()
    rng = random.Random(size)
    for start, end in random_ranges(rng, size, 200):
        want = data[start:end]
        assert reader.read(start, end) == want
        assert b"".join(reader.iter_range(start, end)) == want
        assert raw.seek(start) == start
        assert raw.read(end - start) == want
        assert raw.tell() == start + len(want)


def test_raw_file_behaves_like_a_read_only_file() -> None:
    raw = open_reader(CT).raw_file()
    plain = io.BytesIO(DATA)
    assert raw.readable() and raw.seekable() and not raw.writable()
    for offset, whence in [(10, 0), (5, 1), (-100, 2), (0, 2), (50, 2), (-3, 1)]:
        assert raw.seek(offset, whence) == plain.seek(offset, whence)
        assert raw.read(77) == plain.read(77)
    raw.seek(CHUNK_SIZE - 3)
    buffer = bytearray(10)
    assert raw.readinto(buffer) == 10
    assert bytes(buffer) == DATA[CHUNK_SIZE - 3 : CHUNK_SIZE + 7]
    raw.seek(len(DATA) - 5)
    assert raw.read() == DATA[-5:]
    assert raw.read() == b""
    with pytest.raises(ValueError):
        raw.seek(-1)
    raw.close()
    with pytest.raises(ValueError):
        raw.read(1)


def test_buffered_wrapper_reads_the_whole_plaintext() -> None:
    buffered = io.BufferedReader(open_reader(CT).raw_file(), buffer_size=8192)
    assert buffered.read() == DATA


def test_a_range_read_fetches_only_the_chunks_it_needs() -> None:
    fetched: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        fetched.append((offset, length))
        return CT[offset : offset + length]

    reader = StreamReader(KEY, read_at, len(CT))
    fetched.clear()  # the header and final chunk were read on open
    assert (
        reader.read(2 * CHUNK_SIZE + 10, 2 * CHUNK_SIZE + 20)
        == DATA[2 * CHUNK_SIZE + 10 : 2 * CHUNK_SIZE + 20]
    )
    assert fetched == [(chunk_at(2), FULL)]
    fetched.clear()
    assert reader.read(len(DATA) - 10, len(DATA)) == DATA[-10:]  # final chunk is cached
    assert fetched == []


def test_reader_refuses_inverted_ranges() -> None:
    reader = open_reader(CT)
    with pytest.raises(ValueError):
        reader.read(10, 5)
    with pytest.raises(ValueError):
        reader.read(-1, 5)
    assert reader.read(len(DATA) + 5, len(DATA) + 10) == b""


# -- encryptor --------------------------------------------------------------------------------


def split_randomly(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    pieces, pos = [], 0
    while pos < len(data):
        step = rng.choice([0, 1, rng.randrange(largest), CHUNK_SIZE, CHUNK_SIZE + 1])
        pieces.append(data[pos : pos + step])
        pos += step
    return pieces


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 10 * CHUNK_SIZE + 17])
def test_piecewise_and_resumed_encryption_equal_one_shot(size: int) -> None:
    data = plaintext(size, seed=size + 7)
    header = Header.new()
    one_shot = encrypt(data, header=header)
    rng = random.Random(size)
    for _ in range(5):
        pieces = split_randomly(data, rng, 3 * CHUNK_SIZE)
        # In one encryptor.
        enc = Encryptor(KEY, header)
        out = [header.to_bytes()]
        for piece in pieces:
            out.append(enc.update(piece))
            assert len(enc.pending) <= CHUNK_SIZE
        out.append(enc.finish())
        assert b"".join(out) == one_shot
        # Across "requests": each one builds a fresh Encryptor from the saved state, the pending
        # tail kept sealed between requests as the upload code does.
        state: tuple[int, bytes] = (0, seal_blob(KEY, b"", b"upload-1"))
        out = [header.to_bytes()]
        for piece in pieces:
            counter, sealed_tail = state
            enc = Encryptor(KEY, header, counter, open_blob(KEY, sealed_tail, b"upload-1"))
            out.append(enc.update(piece))
            assert len(enc.pending) <= CHUNK_SIZE
            state = (enc.next_counter, seal_blob(KEY, enc.pending, b"upload-1"))
        counter, sealed_tail = state
        last = Encryptor(KEY, header, counter, open_blob(KEY, sealed_tail, b"upload-1"))
        out.append(last.finish())
        assert b"".join(out) == one_shot


def test_a_full_chunk_is_held_back_until_a_byte_follows_it() -> None:
    enc = Encryptor(KEY, Header.new())
    assert enc.update(plaintext(CHUNK_SIZE)) == b""
    assert len(enc.pending) == CHUNK_SIZE and enc.next_counter == 0
    assert len(enc.update(b"x")) == FULL
    assert enc.pending == b"x" and enc.next_counter == 1


def test_encryptor_accepts_memoryview_and_bytearray() -> None:
    header = Header.new()
    enc = Encryptor(KEY, header)
    body = enc.update(memoryview(DATA)[:100_000]) + enc.update(bytearray(DATA[100_000:]))
    assert header.to_bytes() + body + enc.finish() == encrypt(DATA, header=header)


def test_encryptor_refuses_misuse() -> None:
    header = Header.new()
    with pytest.raises(ValueError, match="longer than one chunk"):
        Encryptor(KEY, header, 1, bytes(CHUNK_SIZE + 1))
    with pytest.raises(ValueError, match="pending data"):
        Encryptor(KEY, header, 3, b"")
    with pytest.raises(ValueError, match="out of range"):
        Encryptor(KEY, header, -1, b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        Encryptor(bytes(16), header)
    with pytest.raises(ValueError):
        Header.new(chunk_size=0)
    enc = Encryptor(KEY, header)
    enc.finish()
    with pytest.raises(ValueError, match="already finished"):
        enc.update(b"more")
    with pytest.raises(ValueError, match="already finished"):
        enc.finish()


def test_small_chunk_sizes_work_end_to_end() -> None:
    header = Header.new(chunk_size=7)
    data = plaintext(1000)
    ct = encrypt(data, header=header)
    assert len(ct) == ciphertext_size(1000, chunk_size=7)
    reader = open_reader(ct)
    assert reader.read(0, 1000) == data
    assert reader.read(13, 29) == data[13:29]


# -- small blobs ------------------------------------------------------------------------------

Tamper = Callable[[bytes], bytes]


def test_blob_round_trip_is_randomised() -> None:
    first = seal_blob(KEY, b"pending tail", b"recording-1/upload")
    second = seal_blob(KEY, b"pending tail", b"recording-1/upload")
    assert first != second
    assert open_blob(KEY, first, b"recording-1/upload") == b"pending tail"
    assert open_blob(KEY, seal_blob(KEY, b"", b"c"), b"c") == b""


@pytest.mark.parametrize(
    ("change", "key", "context"),
    [
        (lambda blob: blob, KEY, b"recording-2/upload"),  # wrong context
        (lambda blob: blob, bytes(32), b"recording-1/upload"),  # wrong key
        (lambda blob: flip(blob, len(blob) - 1), KEY, b"recording-1/upload"),
        (lambda blob: flip(blob, 5), KEY, b"recording-1/upload"),
        (lambda blob: blob[:-1], KEY, b"recording-1/upload"),
        (lambda blob: blob[:10], KEY, b"recording-1/upload"),
        (lambda blob: b"\x02" + blob[1:], KEY, b"recording-1/upload"),
    ],
)
def test_blob_rejects_wrong_context_key_or_damage(
    change: Tamper, key: bytes, context: bytes
) -> None:
    blob = seal_blob(KEY, b"pending tail", b"recording-1/upload")
    with pytest.raises(IntegrityError):
        open_blob(key, change(blob), context)


# -- unfinished streams (an upload's staging file) ------------------------------------------


def unfinished(data: bytes, key: bytes = KEY) -> tuple[bytes, Encryptor]:
    """Header and the chunks an encryptor has sealed so far, with no final chunk."""
    header = Header.new()
    enc = Encryptor(key, header)
    return header.to_bytes() + enc.update(data), enc


def open_all_unfinished(ct: bytes, key: bytes = KEY) -> list[bytes]:
    return list(open_unfinished(key, lambda offset, length: ct[offset : offset + length],
                                len(ct)))


@pytest.mark.parametrize("size", [0, 10, CHUNK_SIZE, CHUNK_SIZE + 1, 20 * CHUNK_SIZE + 5])
def test_unfinished_stream_opens_chunk_by_chunk(size: int) -> None:
    data = plaintext(size, seed=size)
    ct, enc = unfinished(data)
    chunks = open_all_unfinished(ct)
    assert len(chunks) == enc.next_counter
    assert all(len(chunk) == CHUNK_SIZE for chunk in chunks)
    assert b"".join(chunks) + enc.pending == data


def test_unfinished_stream_rejects_damage_wrong_key_and_finished_objects() -> None:
    data = plaintext(3 * CHUNK_SIZE + 9)
    ct, _ = unfinished(data)
    assert len(open_all_unfinished(ct)) == 3
    for bad_key, bad_ct in [
        (bytes(32), ct),  # wrong key
        (KEY, flip(ct, chunk_at(1) + 100)),  # a flipped bit in the middle chunk
        (KEY, flip(ct, 10)),  # the header is every chunk's associated data
        (KEY, ct[:-1]),  # not whole chunks
        (KEY, ct[: HEADER_SIZE - 1]),
    ]:
        with pytest.raises(IntegrityError):
            open_all_unfinished(bad_ct, bad_key)
    # A finished object's last chunk carries the final flag: it does not open as unfinished,
    # so this can never read a complete recording while ignoring how it ends.
    finished = encrypt(plaintext(2 * CHUNK_SIZE))
    with pytest.raises(IntegrityError, match="chunk 2"):
        open_all_unfinished(finished)
