"""One contract, two backends: LocalStore on a temp directory and S3Store against a real
S3-API server (moto in server mode) on loopback. No Django, no mocks of boto3."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from relisten.lib.vault.storage import (
    InvalidObjectName,
    LocalStore,
    ObjectMissing,
    ObjectStore,
    S3Store,
    StorageError,
    validate_name,
)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_s3(endpoint: str, bucket: str | None = None) -> S3Store:
    return S3Store(
        bucket or f"relisten-test-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    # A fresh bucket per test keeps tests independent on the shared server.
    return make_s3(request.getfixturevalue("moto_endpoint"))


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}-{name}"
    path.write_bytes(data)
    return path


# -- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 65_537, 3 * MiB + 17])
def test_random_ranges_are_byte_exact(store: ObjectStore, tmp_path: Path, size: int) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    store.put_file("recordings/r1/media", write(tmp_path, data))

    assert store.size("recordings/r1/media") == size
    assert store.read_range("recordings/r1/media", 0, size) == data
    for _ in range(25):
        offset = rng.randrange(0, size + 1)
        length = rng.randrange(0, size - offset + 1)
        assert (
            store.read_range("recordings/r1/media", offset, length)
            == data[offset : offset + length]
        )


def test_reads_past_the_end_are_short_like_a_file(store: ObjectStore, tmp_path: Path) -> None:
    data = b"0123456789"
    store.put_file("a", write(tmp_path, data))
    assert store.read_range("a", 8, 100) == b"89"
    assert store.read_range("a", 10, 5) == b""
    assert store.read_range("a", 50, 5) == b""
    assert store.read_range("a", 3, 0) == b""
    store.put_file("empty", write(tmp_path, b""))
    assert store.read_range("empty", 0, 10) == b""
    with pytest.raises(ValueError):
        store.read_range("a", -1, 2)
    with pytest.raises(ValueError):
        store.read_range("a", 0, -2)


def test_exists_size_and_delete_are_idempotent(store: ObjectStore, tmp_path: Path) -> None:
    assert not store.exists("x/y")
    store.put_file("x/y", write(tmp_path, b"hello"))
    assert store.exists("x/y")
    assert store.size("x/y") == 5
    store.delete("x/y")
    assert not store.exists("x/y")
    store.delete("x/y")  # again: no error
    store.delete("never/there")


def test_missing_objects_raise_object_missing(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing):
        store.size("nope")
    with pytest.raises(ObjectMissing):
        store.read_range("nope", 0, 10)
    with pytest.raises(ObjectMissing):
        store.read_range("nope", 0, 0)
    store.put_file("dir/child", write(tmp_path, b"1"))
    # A "folder" of objects is not an object.
    assert not store.exists("dir")
    with pytest.raises(ObjectMissing):
        store.size("dir")
    with pytest.raises(ObjectMissing):
        store.read_range("dir", 0, 1)


def test_names_by_prefix_are_sorted_and_complete(store: ObjectStore, tmp_path: Path) -> None:
    wanted = ["a/1", "a/2", "a/b/3", "ab", "b/1", "top"]
    for name in reversed(wanted):
        store.put_file(name, write(tmp_path, name.encode()))
    assert list(store.names()) == wanted
    assert list(store.names("a")) == ["a/1", "a/2", "a/b/3", "ab"]
    assert list(store.names("a/")) == ["a/1", "a/2", "a/b/3"]
    assert list(store.names("a/b")) == ["a/b/3"]
    assert list(store.names("zzz/")) == []
    store.delete("a/2")
    assert list(store.names("a/")) == ["a/1", "a/b/3"]


def test_names_paginate_past_one_listing_page(store: ObjectStore, tmp_path: Path) -> None:
    # S3 returns at most 1000 keys per page; the paginator must follow the continuation.
    source = write(tmp_path, b"x")
    expected = [f"many/{i:05d}" for i in range(1005)]
    if isinstance(store, S3Store):
        client = store._client  # bulk-create quickly; put_file is covered elsewhere
        store.put_file(expected[0], source)
        for name in expected[1:]:
            client.put_object(Bucket=store.bucket, Key=name, Body=b"x")
    else:
        for name in expected:
            store.put_file(name, source)
    assert list(store.names("many/")) == expected


def test_put_replaces_the_whole_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file("r", write(tmp_path, b"A" * 5000))
    store.put_file("r", write(tmp_path, b"B" * 10))
    assert store.size("r") == 10
    assert store.read_range("r", 0, 100) == b"B" * 10


def test_readers_never_see_a_partial_object(store: ObjectStore, tmp_path: Path) -> None:
    """While one thread keeps replacing an object, another keeps reading it: every read is
    wholly one version, never a mix or a prefix."""
    versions = {
        hashlib.sha256(data).hexdigest(): data
        for data in (bytes([n]) * (2 * MiB + n * 4099) for n in (1, 2, 3))
    }
    paths = [write(tmp_path, data) for data in versions.values()]
    store.put_file("hot", paths[0])
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        try:
            for i in range(12):
                store.put_file("hot", paths[i % len(paths)])
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not stop.is_set() or reads < 3:
        whole = store.read_range("hot", 0, 10 * MiB)
        reads += 1
        if hashlib.sha256(whole).hexdigest() not in versions:
            errors.append(f"read {reads}: {len(whole)} bytes match no version")
    thread.join()
    assert errors == []
    assert reads >= 3


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/abs",
        "../escape",
        "a/../../b",
        "a/./b",
        ".",
        "..",
        "a//b",
        "trailing/",
        "white space",
        "back\\slash",
        "semi;colon",
        "ünïcode",
        "tilde~temp",
        "new\nline",
        "x" * 256,
        "a/" * 600 + "b",
    ],
)
def test_invalid_names_are_refused_everywhere(store: ObjectStore, tmp_path: Path, bad: str) -> None:
    source = write(tmp_path, b"data")
    with pytest.raises(InvalidObjectName):
        store.put_file(bad, source)
    with pytest.raises(InvalidObjectName):
        store.read_range(bad, 0, 1)
    with pytest.raises(InvalidObjectName):
        store.size(bad)
    with pytest.raises(InvalidObjectName):
        store.exists(bad)
    with pytest.raises(InvalidObjectName):
        store.delete(bad)
    assert list(store.names()) == []


@pytest.mark.parametrize("bad_prefix", ["../", "/", "a//", "a b", "../x"])
def test_invalid_prefixes_are_refused(store: ObjectStore, bad_prefix: str) -> None:
    with pytest.raises(InvalidObjectName):
        list(store.names(bad_prefix))


def test_valid_names_pass_validation() -> None:
    for name in ["a", "recordings/2f1c/media.v1", "A-Z_0.9/x", ".hidden", "a/.b/c..d"]:
        assert validate_name(name) == name


def test_missing_source_file_changes_nothing(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file("keep", write(tmp_path, b"old"))
    with pytest.raises(FileNotFoundError):
        store.put_file("keep", tmp_path / "does-not-exist")
    assert store.read_range("keep", 0, 10) == b"old"
    assert list(store.names()) == ["keep"]


# -- LocalStore specifics ----------------------------------------------------------------


def test_local_store_keeps_objects_inside_root_and_private(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalStore(root)
    store.put_file("r/1/media", write(tmp_path, b"secret-ciphertext"))
    path = root / "r" / "1" / "media"
    assert path.read_bytes() == b"secret-ciphertext"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ((root / "r").stat().st_mode & 0o777) == 0o700
    # Nothing else was left behind (no temp files).
    assert sorted(p.name for p in (root / "r" / "1").iterdir()) == ["media"]


def test_local_store_ignores_leftover_temp_files(tmp_path: Path) -> None:
    """A put that crashed before os.replace leaves a temp file: it is not an object."""
    root = tmp_path / "objects"
    store = LocalStore(root)
    store.put_file("r/media", write(tmp_path, b"complete"))
    (root / "r" / ".media~deadbeef").write_bytes(b"compl")
    (root / "r" / "stray file").write_bytes(b"by hand")
    assert list(store.names()) == ["r/media"]
    assert store.read_range("r/media", 0, 100) == b"complete"


def test_local_store_does_not_follow_a_name_into_a_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.put_file("plain", write(tmp_path, b"1"))
    assert not store.exists("plain/child")
    with pytest.raises(ObjectMissing):
        store.size("plain/child")
    store.delete("plain/child")
    with pytest.raises(StorageError):
        store.put_file("plain/child", write(tmp_path, b"2"))
    assert store.read_range("plain", 0, 5) == b"1"


def test_local_store_put_copies_and_leaves_the_source(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    source = write(tmp_path, b"abc")
    store.put_file("copy", source)
    assert source.read_bytes() == b"abc"
    source.write_bytes(b"changed")
    assert store.read_range("copy", 0, 10) == b"abc"


# -- S3Store specifics -------------------------------------------------------------------


def test_s3_creates_a_missing_bucket_on_first_use(moto_endpoint: str, tmp_path: Path) -> None:
    import boto3

    bucket = f"relisten-new-{uuid.uuid4().hex[:10]}"
    raw = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert bucket not in [b["Name"] for b in raw.list_buckets()["Buckets"]]
    store = make_s3(moto_endpoint, bucket)
    assert list(store.names()) == []
    assert bucket in [b["Name"] for b in raw.list_buckets()["Buckets"]]
    # A second store on the same, now existing bucket sees the same objects.
    store.put_file("k", write(tmp_path, b"v"))
    assert make_s3(moto_endpoint, bucket).read_range("k", 0, 1) == b"v"


class _PolicyS3Handler(BaseHTTPRequestHandler):
    """The answers of an S3 server whose policy denies this key: ``head_status`` for
    HEAD bucket, AccessDenied for everything else (bucket creation included)."""

    head_status = 404

    def do_HEAD(self) -> None:
        self.send_response(self.head_status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def denying_server() -> Iterator[tuple[str, type[_PolicyS3Handler]]]:
    handler = type("Handler", (_PolicyS3Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_s3_explains_a_bucket_it_may_not_create(
    denying_server: tuple[str, type[_PolicyS3Handler]],
) -> None:
    endpoint, _ = denying_server
    store = make_s3(endpoint, "clinic-recordings")
    with pytest.raises(StorageError) as caught:
        store.exists("anything")
    message = str(caught.value)
    assert "'clinic-recordings' does not exist and could not be created" in message
    assert "AccessDenied" in message
    assert "Create it by hand" in message


def test_s3_explains_a_bucket_it_may_not_use(
    denying_server: tuple[str, type[_PolicyS3Handler]],
) -> None:
    endpoint, handler = denying_server
    handler.head_status = 403
    store = make_s3(endpoint, "someone-elses")
    with pytest.raises(StorageError) as caught:
        list(store.names())
    assert "exists but these credentials may not use it" in str(caught.value)


def test_s3_big_uploads_go_in_parts_and_arrive_whole(moto_endpoint: str, tmp_path: Path) -> None:
    store = make_s3(moto_endpoint)
    store.multipart_threshold = 5 * MiB  # S3's smallest part size; keeps the test quick
    data = random.Random(7).randbytes(11 * MiB + 3)
    store.put_file("big", write(tmp_path, data))
    head = store._client.head_object(Bucket=store.bucket, Key="big")
    # A multipart object's ETag is "<md5 of part md5s>-<number of parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert store.size("big") == len(data)
    assert store.read_range("big", 5 * MiB - 10, 20) == data[5 * MiB - 10 : 5 * MiB + 10]
    assert hashlib.sha256(store.read_range("big", 0, len(data))).digest() == (
        hashlib.sha256(data).digest()
    )


def test_local_store_shares_a_final_source_instead_of_copying(tmp_path: Path) -> None:
    """Finalize hands over staged files it never writes again: no second multi-GB write."""
    from relisten.lib.vault.storage import LocalStore

    source = tmp_path / "staged.part"
    source.write_bytes(b"ciphertext" * 1000)
    store = LocalStore(tmp_path / "media")
    store.put_file("recordings/x.rlv", source, source_is_final=True)
    stored = tmp_path / "media" / "recordings" / "x.rlv"
    assert stored.read_bytes() == b"ciphertext" * 1000
    assert stored.stat().st_ino == source.stat().st_ino
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    source.unlink()  # discarding the staging file leaves the object whole
    assert store.read_range("recordings/x.rlv", 0, 10) == b"ciphertext"
