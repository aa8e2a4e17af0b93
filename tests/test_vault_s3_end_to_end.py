"""The S3 path end to end: MEDIA_STORAGE="s3" against a real S3-API server (moto) on loopback.

A real WAV goes through the tus server (signed-in therapist, client consent on record), is
finalized into the bucket, played back with Range requests, scrubbed, damaged in the bucket,
re-keyed by KEK rotation and erased. The bucket is inspected with boto3 directly, never
through the code under test, so "the object is in S3 and is ciphertext" is checked
independently of S3Store.
"""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient

from relisten.core.personas import Cast
from relisten.lib.vault.keys import load_keyring, new_keyring, save_keyring
from relisten.lib.vault.storage import S3Store
from relisten.lib.vault.stream import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, ciphertext_size
from relisten.recordings import vault
from relisten.recordings.models import Recording, State, Upload
from tests.conftest import sign_in
from tests.test_tus import SPEECH, create, first_session, location, upload_all, wav_bytes

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


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


@dataclass(frozen=True)
class S3Env:
    bucket: str
    client: Any  # a plain boto3 client, independent of the S3Store under test
    media_dir: Path
    upload_dir: Path
    kek_file: Path

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", ()))

    def get(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)


@pytest.fixture
def s3_env(moto_endpoint: str, tmp_path: Path, settings: Any) -> Iterator[S3Env]:
    """Settings choose the S3 backend; a fresh bucket per test on the shared moto server."""
    import boto3
    from botocore.config import Config

    bucket = f"relisten-e2e-{uuid.uuid4().hex[:12]}"
    settings.MEDIA_STORAGE = "s3"
    settings.S3_BUCKET = bucket
    settings.S3_ENDPOINT_URL = moto_endpoint
    settings.S3_REGION = REGION
    settings.S3_ACCESS_KEY_ID = CREDENTIALS["aws_access_key_id"]
    settings.S3_SECRET_ACCESS_KEY = CREDENTIALS["aws_secret_access_key"]
    # MEDIA_DIR is set (and must stay empty) so a silent fallback to LocalStore would show.
    settings.MEDIA_DIR = tmp_path / "media"
    settings.UPLOAD_DIR = tmp_path / "uploads"
    # A keyring file, not RELISTEN_KEK: rotation can only change a file.
    settings.KEK_TEXT = None
    settings.KEK_FILE = tmp_path / "keys" / "kek.json"
    settings.KEK_FILE.parent.mkdir()
    save_keyring(new_keyring(), settings.KEK_FILE)
    client = boto3.session.Session(region_name=REGION, **CREDENTIALS).client(
        "s3", endpoint_url=moto_endpoint,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    vault.store.cache_clear()  # store() is cached per process: pick up these settings
    try:
        yield S3Env(bucket=bucket, client=client, media_dir=settings.MEDIA_DIR,
                    upload_dir=settings.UPLOAD_DIR, kek_file=settings.KEK_FILE)
    finally:
        vault.store.cache_clear()


def wav_sample() -> bytes:
    """The LJSpeech clip if the shared data is here, else a generated WAV (both real WAVs)."""
    return SPEECH.read_bytes() if SPEECH.exists() else wav_bytes(12, marker=True)


def upload_wav(cast: Cast, http: HttpClient, data: bytes, capture: Any) -> Recording:
    """A real tus upload through the Django test client, finalized by its on-commit job."""
    digest = hashlib.sha256(data).hexdigest()
    url = location(create(http, first_session(cast), length=len(data), sha256=digest))
    started = Recording.objects.get(upload__public_id=url.rstrip("/").rsplit("/", 1)[1])
    upload_all(http, url, data, capture, random.Random(len(data)), max_piece=150_000)
    recording = Recording.objects.get(pk=started.pk)
    assert recording.state == State.READY, recording.failure
    assert recording.sha256 == digest and recording.size == len(data)
    return recording


def media_url(recording: Recording) -> str:
    return f"/recordings/{recording.public_id}/media"


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_plays_byte_exact(http: HttpClient, recording: Recording, data: bytes,
                            rng: random.Random, requests: int = 40) -> None:
    size = len(data)
    whole = http.get(media_url(recording))
    assert whole.status_code == 200 and body(whole) == data
    for _ in range(requests):
        start = rng.randrange(size)
        last = rng.randrange(start, min(size, start + 3 * CHUNK_SIZE))
        response = http.get(media_url(recording), HTTP_RANGE=f"bytes={start}-{last}")
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes {start}-{last}/{size}"
        assert body(response) == data[start : last + 1], (start, last)
    tail = http.get(media_url(recording), HTTP_RANGE="bytes=-1000")
    assert tail.status_code == 206 and body(tail) == data[-1000:]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# ---- tests -----------------------------------------------------------------------------------


def test_upload_lands_encrypted_in_the_bucket_and_plays_byte_exact(
    cast: Cast, s3_env: S3Env, django_capture_on_commit_callbacks: Any,
) -> None:
    assert isinstance(vault.store(), S3Store)  # chosen by settings
    data = wav_sample()
    http = sign_in(HttpClient(), cast.therapist_a)
    recording = upload_wav(cast, http, data, django_capture_on_commit_callbacks)
    name = vault.object_name_for(recording)
    assert recording.object_name == name

    # In the bucket, and nowhere on the local disk: no media copy, no staging leftovers.
    assert s3_env.keys() == [name]
    assert files_under(s3_env.media_dir) == []
    assert files_under(s3_env.upload_dir) == []
    assert not Upload.objects.exists()

    stored = s3_env.get(name)
    assert len(stored) == recording.ciphertext_size == ciphertext_size(len(data))
    assert stored[:8] == b"RLVAULT\x00"
    # No 32-byte window of the plaintext (the first one is the RIFF/WAVE header).
    for start in range(0, len(data) - 32, 997):
        assert data[start : start + 32] not in stored

    assert_plays_byte_exact(http, recording, data, random.Random(7), requests=60)


def test_scrub_passes_then_names_an_object_damaged_in_the_bucket(
    cast: Cast, s3_env: S3Env, django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_sample()
    http = sign_in(HttpClient(), cast.therapist_a)
    recording = upload_wav(cast, http, data, django_capture_on_commit_callbacks)
    out = io.StringIO()
    call_command("vault", "scrub", stdout=out)
    assert "1 recording(s) checked, 0 damaged" in out.getvalue()

    # Bit rot in the bucket, in a middle chunk that only a full pass reads.
    name = vault.object_name_for(recording)
    stored = bytearray(s3_env.get(name))
    at = HEADER_SIZE + 2 * (CHUNK_SIZE + TAG_SIZE) + 123
    assert at < len(stored) - CHUNK_SIZE  # not the final chunk: opening alone would not see it
    stored[at] ^= 0x04
    s3_env.put(name, bytes(stored))

    with pytest.raises(CommandError) as failure:
        call_command("vault", "scrub", stdout=io.StringIO())
    assert str(recording.public_id) in str(failure.value)
    assert "chunk" in str(failure.value)
    # Playback of that chunk is refused too: the stream aborts before the damaged bytes.
    response = http.get(media_url(recording), HTTP_RANGE=f"bytes={2 * CHUNK_SIZE}-"
                                                          f"{2 * CHUNK_SIZE + 10}")
    with pytest.raises(Exception, match="integrity"):
        body(response)


def test_erasure_deletes_the_object_from_the_bucket(
    cast: Cast, s3_env: S3Env, django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_sample()
    http = sign_in(HttpClient(), cast.therapist_a)
    recording = upload_wav(cast, http, data, django_capture_on_commit_callbacks)
    keep = upload_wav(cast, http, data[: len(data) // 2], django_capture_on_commit_callbacks)
    assert len(s3_env.keys()) == 2
    with django_capture_on_commit_callbacks(execute=True):
        done = http.post(f"/recordings/{recording.public_id}/erase/", {"confirm": "on"})
    assert done.status_code == 302
    row = Recording.objects.get(pk=recording.pk)
    assert row.state == State.ERASED and row.wrapped_key is None
    assert s3_env.keys() == [vault.object_name_for(keep)]  # only the other one is left
    assert http.get(media_url(recording)).status_code == 404
    assert body(http.get(media_url(keep))) == data[: len(data) // 2]


def test_kek_rotation_leaves_the_object_untouched_and_it_still_plays(
    cast: Cast, s3_env: S3Env, django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_sample()
    http = sign_in(HttpClient(), cast.therapist_a)
    recording = upload_wav(cast, http, data, django_capture_on_commit_callbacks)
    name = vault.object_name_for(recording)
    before = s3_env.get(name)
    etag_before = s3_env.client.head_object(Bucket=s3_env.bucket, Key=name)["ETag"]
    wrapped_before = bytes(recording.wrapped_key or b"")

    out = io.StringIO()
    call_command("keys", "rotate", stdout=out)
    assert "Re-wrapped 1 recording key(s)" in out.getvalue()

    row = Recording.objects.get(pk=recording.pk)
    assert row.kek_version == 2 == load_keyring(s3_env.kek_file).active
    assert bytes(row.wrapped_key or b"") != wrapped_before
    assert s3_env.get(name) == before
    assert s3_env.client.head_object(Bucket=s3_env.bucket, Key=name)["ETag"] == etag_before
    assert s3_env.keys() == [name]
    assert_plays_byte_exact(http, row, data, random.Random(11))
    call_command("vault", "scrub", stdout=io.StringIO())  # still whole under the new KEK
