"""relisten.lib.vault.scratch: an encrypted seekable temp file that behaves like a real one."""

from __future__ import annotations

import io
import os
import random
from fractions import Fraction
from pathlib import Path

import pytest

from relisten.lib.vault.scratch import EncryptedScratchFile
from relisten.lib.vault.stream import IntegrityError

PATTERN = b"PRIVATE-SESSION-CONTENT-"


def disk_bytes(scratch: EncryptedScratchFile) -> bytes:
    """Everything in the (already unlinked) file on disk, read through its descriptor."""
    fd = scratch._fd
    assert fd is not None
    return os.pread(fd, os.fstat(fd).st_size, 0)


@pytest.mark.parametrize(("chunk_size", "seed"), [(7, 1), (97, 2), (4096, 3), (64 * 1024, 4)])
def test_random_operations_match_bytesio(tmp_path: Path, chunk_size: int, seed: int) -> None:
    rng = random.Random(seed)
    scale = 4 * chunk_size
    model = io.BytesIO()
    with EncryptedScratchFile(tmp_path, chunk_size=chunk_size) as scratch:
        for _ in range(600):
            op = rng.choice(["write", "write", "write", "seek", "read", "truncate", "tell"])
            if op == "write":
                data = rng.randbytes(rng.choice([0, 1, rng.randrange(scale)]))
                assert scratch.write(data) == model.write(data)
            elif op == "seek":
                whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
                size = len(model.getbuffer())
                low = {io.SEEK_SET: 0, io.SEEK_CUR: -model.tell(), io.SEEK_END: -size}[whence]
                offset = rng.randint(low, low + size + scale)  # sometimes past the end
                assert scratch.seek(offset, whence) == model.seek(offset, whence)
            elif op == "read":
                n = rng.choice([-1, 0, 1, rng.randrange(scale)])
                assert scratch.read(n) == model.read(n)
            elif op == "truncate":
                # BytesIO never grows on truncate; growing is checked against a real file below.
                size = len(model.getbuffer())
                target = rng.choice([None, rng.randint(0, size)])
                if target is None and model.tell() > size:
                    target = size
                assert scratch.truncate(target) == model.truncate(target)
            assert scratch.tell() == model.tell()
        scratch.seek(0)
        assert scratch.read() == model.getvalue()


def test_growing_truncate_and_gaps_match_a_real_file(tmp_path: Path) -> None:
    with (
        open(tmp_path / "plain.bin", "w+b", buffering=0) as plain,
        EncryptedScratchFile(tmp_path, chunk_size=100) as scratch,
    ):
        for f in (plain, scratch):
            f.write(b"abc")
            f.truncate(250)  # zero-filled, position unchanged
            f.seek(420)
            f.write(b"after a gap")
            f.truncate(150)
            f.seek(0, io.SEEK_END)
            f.write(b"tail")
        plain.seek(0)
        scratch.seek(0)
        assert scratch.read() == plain.read()
        assert scratch.tell() == plain.tell() == 154


def test_plaintext_never_reaches_the_disk(tmp_path: Path) -> None:
    rng = random.Random(5)
    with EncryptedScratchFile(tmp_path, chunk_size=4096) as scratch:
        scratch.write(PATTERN * 20_000)  # ~470 KiB, well over a hundred chunks
        for _ in range(300):  # overwrite all over the place, like a muxer fixing up headers
            scratch.seek(rng.randrange(len(PATTERN) * 20_000))
            scratch.write(PATTERN * rng.randrange(1, 50))
        scratch.seek(0, io.SEEK_END)
        scratch.write(PATTERN * 100)
        raw = disk_bytes(scratch)
        assert len(raw) > len(PATTERN) * 19_000  # the data really is on disk, sealed
        assert PATTERN[:8] not in raw
        assert b"PRIVATE" not in raw
        scratch.seek(0)
        assert scratch.read(len(PATTERN) * 3).count(PATTERN) == 3


def test_nothing_is_left_in_the_directory(tmp_path: Path) -> None:
    scratch = EncryptedScratchFile(tmp_path)
    scratch.write(b"x" * 200_000)
    assert os.listdir(tmp_path) == []  # unlinked as soon as it was created
    scratch.close()
    assert os.listdir(tmp_path) == []
    assert scratch.closed


def test_rewriting_a_chunk_uses_a_fresh_nonce(tmp_path: Path) -> None:
    with EncryptedScratchFile(tmp_path, chunk_size=16) as scratch:
        scratch.write(b"A" * 16 + b"B" * 16)  # chunk 0 is sealed when chunk 1 is started
        first = disk_bytes(scratch)[:44]
        scratch.seek(0)
        scratch.write(b"A" * 16)  # same content again
        scratch.seek(16)
        scratch.read(1)  # moving to chunk 1 seals chunk 0 anew
        second = disk_bytes(scratch)[:44]
        assert first[:12] != second[:12]  # different nonce
        assert first != second


def test_bytes_changed_on_disk_are_detected(tmp_path: Path) -> None:
    with EncryptedScratchFile(tmp_path, chunk_size=16) as scratch:
        scratch.write(bytes(range(48)))
        fd = scratch._fd
        assert fd is not None
        original = os.pread(fd, 1, 20)
        os.pwrite(fd, bytes([original[0] ^ 1]), 20)  # inside chunk 0's ciphertext
        scratch.seek(0)
        with pytest.raises(IntegrityError):
            scratch.read(4)


def test_closed_file_refuses_io_and_exposes_no_descriptor(tmp_path: Path) -> None:
    scratch = EncryptedScratchFile(tmp_path)
    assert scratch.readable() and scratch.writable() and scratch.seekable()
    with pytest.raises(OSError):
        scratch.fileno()  # nobody gets at the raw (encrypted) bytes by accident
    scratch.close()
    scratch.close()  # closing twice is harmless
    for call in (lambda: scratch.read(1), lambda: scratch.write(b"x"), lambda: scratch.seek(0)):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        scratch.truncate(0)


def test_negative_seek_and_truncate_are_refused(tmp_path: Path) -> None:
    with EncryptedScratchFile(tmp_path) as scratch:
        with pytest.raises(ValueError):
            scratch.seek(-1)
        with pytest.raises(ValueError):
            scratch.truncate(-1)
        with pytest.raises(ValueError):
            scratch.seek(0, 7)


def test_readinto_and_buffered_wrappers(tmp_path: Path) -> None:
    data = random.Random(9).randbytes(300_000)
    with EncryptedScratchFile(tmp_path, chunk_size=1000) as scratch:
        buffered = io.BufferedRandom(scratch, buffer_size=8192)
        buffered.write(data)
        buffered.seek(12_345)
        assert buffered.read(50_000) == data[12_345:62_345]
        buffered.flush()
        scratch.seek(299_990)
        target = bytearray(20)
        assert scratch.readinto(target) == 10
        assert bytes(target[:10]) == data[-10:]


def test_pyav_can_mux_webm_into_it_and_read_it_back(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    with EncryptedScratchFile(tmp_path) as scratch:
        with av.open(scratch, mode="w", format="webm") as output:
            stream = output.add_stream("libopus", rate=48_000)
            stream.layout = "mono"
            frame_size = 960
            for index in range(100):  # two seconds of silence
                frame = av.AudioFrame(format="s16", layout="mono", samples=frame_size)
                frame.planes[0].update(bytes(2 * frame_size))
                frame.sample_rate = 48_000
                frame.pts = index * frame_size
                frame.time_base = Fraction(1, 48_000)
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode(None):
                output.mux(packet)
        raw = disk_bytes(scratch)
        assert b"webm" not in raw and b"\x1a\x45\xdf\xa3" not in raw  # no EBML magic at rest
        scratch.seek(0)
        assert scratch.read(4) == b"\x1a\x45\xdf\xa3"
        scratch.seek(0)
        with av.open(scratch, mode="r") as source:
            assert "webm" in source.format.name or "matroska" in source.format.name
            assert source.streams.audio[0].codec_context.name == "opus"
            assert source.duration is not None
            assert 1.9 <= source.duration / 1_000_000 <= 2.1
