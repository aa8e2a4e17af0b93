"""The tus upload server end to end: real files in temp dirs, real encryption, real probing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import math
import os
import random
import struct
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.audit.models import AuditEvent
from relisten.clients.actions import schedule_session
from relisten.clients.models import Modality, TherapySession
from relisten.core.personas import Cast
from relisten.lib.vault.keys import keyring_to_text, new_keyring
from relisten.lib.vault.stream import HEADER_SIZE, verify_all
from relisten.recordings import actions
from relisten.recordings.models import Recording, State, Upload
from relisten.recordings.vault import object_name_for, open_reader, store
from tests.conftest import sign_in

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
SPEECH = Path("/work/shared/data/speech/ljspeech/LJ001-0001.wav")
MARKER = b"PLAINTEXT-MARKER"


# ---- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def vault(tmp_path: Path, settings: Any) -> Iterator[dict[str, Path]]:
    """Temp upload and media dirs and a KEK, with the cached store pointed at them."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.MEDIA_DIR = tmp_path / "media"
    settings.KEK_TEXT = keyring_to_text(new_keyring())
    store.cache_clear()
    yield {"uploads": tmp_path / "uploads", "media": tmp_path / "media"}
    store.cache_clear()


def wav_bytes(seconds: float, *, rate: int = 16000, marker: bool = False) -> bytes:
    """A mono 16-bit sine tone; with marker=True the samples spell MARKER over and over
    (valid PCM either way), so plaintext leaking onto disk would be easy to spot."""
    frames = int(seconds * rate)
    if marker:
        data = (MARKER * (frames * 2 // len(MARKER) + 1))[: frames * 2]
    else:
        data = b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(frames)
        )
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(data)
    return out.getvalue()


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def first_session(cast: Cast) -> TherapySession:
    return TherapySession.objects.filter(episode__client=cast.client_a).order_by("number")[0]


def create(
    http: HttpClient,
    session: TherapySession,
    *,
    length: int | None,
    kind: str = "audio",
    sha256: str | None = None,
) -> Any:
    values = {"session": str(session.public_id), "kind": kind}
    if sha256:
        values["sha256"] = sha256
    headers = {**TUS, "Upload-Metadata": metadata(**values)}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    return http.post("/uploads/", headers=headers)


def location(response: Any) -> str:
    assert response.status_code == 201, response.content
    return str(urlparse(response["Location"]).path)


def patch(
    http: HttpClient,
    url: str,
    offset: int,
    data: bytes,
    extra: dict[str, str] | None = None,
    capture: Any = None,
) -> Any:
    def send() -> Any:
        return http.generic(
            "PATCH",
            url,
            data=data,
            content_type=OCTETS,
            headers={**TUS, "Upload-Offset": str(offset), **(extra or {})},
        )

    if capture is None:
        return send()
    with capture(execute=True):
        return send()


def head_offset(http: HttpClient, url: str) -> int:
    response = http.head(url, headers=TUS)
    assert response.status_code == 200, response.status_code
    return int(response["Upload-Offset"])


def upload_id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rstrip("/").rsplit("/", 1)[1])


def recording_of(url: str) -> Recording:
    return Recording.objects.get(upload__public_id=upload_id(url))


def plaintext_sha(recording: Recording) -> str:
    recording.refresh_from_db()
    return verify_all(open_reader(recording))


def upload_all(
    http: HttpClient,
    url: str,
    data: bytes,
    capture: Any,
    rng: random.Random,
    *,
    max_piece: int = 700_000,
) -> None:
    offset = head_offset(http, url)
    while offset < len(data):
        piece = data[offset : offset + rng.randint(1, max_piece)]
        response = patch(http, url, offset, piece, capture=capture)
        assert response.status_code == 204, response.content
        assert int(response["Upload-Offset"]) == offset + len(piece)
        offset += len(piece)


def leftovers(dirs: dict[str, Path]) -> list[str]:
    names = [p.name for p in dirs["uploads"].glob("*")] if dirs["uploads"].exists() else []
    return names + list(store().names(""))


@pytest.fixture
def tess(cast: Cast) -> HttpClient:
    return sign_in(HttpClient(), cast.therapist_a)


# ---- the protocol ---------------------------------------------------------------------------


def test_options_advertises_the_protocol(
    tess: HttpClient, vault: dict[str, Path], settings: Any
) -> None:
    response = tess.options("/uploads/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
    }
    assert response["Tus-Max-Size"] == str(settings.UPLOAD_MAX_BYTES)
    assert response["Tus-Checksum-Algorithm"] == "sha256"


def test_missing_or_wrong_tus_version_is_412(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    session = first_session(cast)
    response = tess.post(
        "/uploads/",
        headers={
            "Upload-Length": "10",
            "Upload-Metadata": metadata(session=str(session.public_id), kind="audio"),
        },
    )
    assert response.status_code == 412
    assert response["Tus-Version"] == "1.0.0"
    response = tess.post("/uploads/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "10"})
    assert response.status_code == 412
    assert not Recording.objects.exists()


def test_signed_out_is_401(cast: Cast, vault: dict[str, Path]) -> None:
    response = create(HttpClient(), first_session(cast), length=10)
    assert response.status_code == 401
    assert not Recording.objects.exists()


def test_csrf_token_is_required(cast: Cast, vault: dict[str, Path]) -> None:
    http = sign_in(HttpClient(enforce_csrf_checks=True), cast.therapist_a)
    session = first_session(cast)
    assert create(http, session, length=10).status_code == 403
    token = "a" * 32
    http.cookies["csrftoken"] = token
    values = metadata(session=str(session.public_id), kind="audio")
    response = http.post(
        "/uploads/",
        headers={**TUS, "Upload-Length": "10", "X-CSRFToken": token, "Upload-Metadata": values},
    )
    url = location(response)
    assert patch(http, url, 0, b"x").status_code == 403
    assert patch(http, url, 0, b"x", {"X-CSRFToken": token}).status_code == 204


def test_creation_answers_location_and_expiry(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    response = create(tess, first_session(cast), length=1234)
    url = location(response)
    assert response["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in response
    head = tess.head(url, headers=TUS)
    assert head["Upload-Offset"] == "0" and head["Upload-Length"] == "1234"
    assert "no-store" in head["Cache-Control"]
    recording = recording_of(url)
    assert recording.state == State.UPLOADING and recording.wrapped_key
    assert AuditEvent.objects.filter(
        event_type="recording.upload_started", target_id=str(recording.public_id)
    ).exists()


def test_bad_metadata_is_400(cast: Cast, tess: HttpClient, vault: dict[str, Path]) -> None:
    session = first_session(cast)
    for bad in (
        metadata(session=str(session.public_id), kind="podcast"),
        "session !!notbase64!!,kind YXVkaW8=",
        metadata(session=str(session.public_id), kind="audio", sha256="abc"),
    ):
        response = tess.post(
            "/uploads/", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": bad}
        )
        assert response.status_code == 400, bad
    both = tess.post("/uploads/", headers={**TUS, "Upload-Length": "5", "Upload-Defer-Length": "1"})
    assert both.status_code == 400
    assert not Recording.objects.exists()


def test_wrong_content_type_is_415(cast: Cast, tess: HttpClient, vault: dict[str, Path]) -> None:
    url = location(create(tess, first_session(cast), length=10))
    response = tess.generic(
        "PATCH",
        url,
        data=b"12345",
        content_type="application/json",
        headers={**TUS, "Upload-Offset": "0"},
    )
    assert response.status_code == 415
    assert head_offset(tess, url) == 0


# ---- complete uploads: the plaintext that comes back is the plaintext that went in -----------


def _resumable_upload(
    http: HttpClient, url: str, data: bytes, capture: Any, dirs: dict[str, Path], rng: random.Random
) -> int:
    """Upload with interruptions: random PATCH sizes; sometimes a crashed request's residue on
    the staging file, sometimes a lost response (the client resumes from HEAD), sometimes a
    resend at the old offset (409). Returns how many interruptions happened."""
    interruptions = 0
    part = dirs["uploads"] / f"{upload_id(url)}.part"
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + rng.randint(1, 600_000)]
        response = patch(http, url, offset, piece, capture=capture)
        assert response.status_code == 204, response.content
        if offset + len(piece) == len(data):
            break  # complete: finalize ran and the upload URL is gone
        event = rng.random()
        if event < 0.25 and offset + len(piece) < len(data):
            # A request that died after appending but before committing leaves extra bytes.
            with open(part, "ab") as handle:
                handle.write(os.urandom(rng.randint(1, 100_000)))
            interruptions += 1
        elif event < 0.4 and offset + len(piece) < len(data):
            # The response was lost: the client resends at the old offset, is told no.
            again = patch(http, url, offset, piece)
            assert again.status_code == 409
            interruptions += 1
        offset = head_offset(http, url)  # every resume starts from HEAD
    return interruptions


def test_generated_wav_with_interruptions_round_trips(
    cast: Cast,
    tess: HttpClient,
    vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_bytes(100)  # 3.2 MB
    rng = random.Random(20261130)
    url = location(create(tess, first_session(cast), length=len(data)))
    interruptions = _resumable_upload(
        tess, url, data, django_capture_on_commit_callbacks, vault, rng
    )
    assert interruptions > 0
    recording = Recording.objects.get(public_id=recording_of_id(tess, url, cast))
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest() == recording.sha256
    assert recording.size == len(data)
    assert recording.container == "wav" and recording.sample_rate == 16000
    assert recording.channels == 1 and recording.duration_s == pytest.approx(100, abs=0.1)
    assert not Upload.objects.exists()
    assert list(vault["uploads"].glob("*")) == []  # staging files gone once READY
    assert AuditEvent.objects.filter(
        event_type="recording.ready", target_id=str(recording.public_id)
    ).exists()


def recording_of_id(http: HttpClient, url: str, cast: Cast) -> uuid.UUID:
    """The newest recording of therapist A (its upload row is gone once READY)."""
    return Recording.objects.filter(created_by=cast.therapist_a).latest("created_at").public_id


def test_real_speech_file_round_trips(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], django_capture_on_commit_callbacks: Any
) -> None:
    if not SPEECH.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{SPEECH} is missing")
        pytest.skip(f"speech sample {SPEECH} not present")
    data = SPEECH.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    url = location(create(tess, first_session(cast), length=len(data), sha256=digest))
    upload_all(
        tess, url, data, django_capture_on_commit_callbacks, random.Random(1), max_piece=40_000
    )
    recording = Recording.objects.get(public_id=recording_of_id(tess, url, cast))
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == digest
    assert recording.audio_codec and recording.duration_s and recording.duration_s > 5


def test_deferred_length_upload_completes_when_length_is_sent(
    cast: Cast,
    tess: HttpClient,
    vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_bytes(3)
    url = location(create(tess, first_session(cast), length=None))
    assert tess.head(url, headers=TUS)["Upload-Defer-Length"] == "1"
    assert patch(tess, url, 0, data[:50_000]).status_code == 204
    response = patch(
        tess,
        url,
        50_000,
        data[50_000:],
        {"Upload-Length": str(len(data))},
        capture=django_capture_on_commit_callbacks,
    )
    assert response.status_code == 204
    recording = Recording.objects.get(public_id=recording_of_id(tess, url, cast))
    assert recording.state == State.READY
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()


def test_staging_file_never_holds_plaintext(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    data = wav_bytes(20, marker=True)
    assert data.count(MARKER) > 1000
    url = location(create(tess, first_session(cast), length=len(data)))
    offset = 0
    for size in (100, 70_000, 200_001, 65_536):
        assert patch(tess, url, offset, data[offset : offset + size]).status_code == 204
        offset += size
        staged = (vault["uploads"] / f"{upload_id(url)}.part").read_bytes()
        assert len(staged) >= HEADER_SIZE + (offset // (64 * 1024)) * (64 * 1024)
        assert MARKER not in staged and b"RIFF" not in staged and b"WAVE" not in staged
        for start in range(0, offset - 32, 4099):  # no 32-byte window of what was sent
            assert data[start : start + 32] not in staged
        upload = Upload.objects.get(public_id=upload_id(url))
        assert MARKER not in bytes(upload.pending_sealed)
        assert len(upload.pending_sealed) < 64 * 1024 + 64  # only the tail, sealed


def test_head_and_patch_cut_off_bytes_a_crashed_request_appended(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
) -> None:
    url = location(create(tess, first_session(cast), length=400_000))
    assert patch(tess, url, 0, os.urandom(150_000)).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    committed = Upload.objects.get(public_id=upload_id(url)).staged_size
    assert part.stat().st_size == committed
    with open(part, "ab") as handle:
        handle.write(os.urandom(300_000))
    assert head_offset(tess, url) == 150_000
    assert part.stat().st_size == committed
    with open(part, "ab") as handle:
        handle.write(os.urandom(300_000))
    assert patch(tess, url, 150_000, os.urandom(10)).status_code == 204
    assert part.stat().st_size == Upload.objects.get(public_id=upload_id(url)).staged_size


# ---- refusals -------------------------------------------------------------------------------


def test_stale_offset_is_409(cast: Cast, tess: HttpClient, vault: dict[str, Path]) -> None:
    url = location(create(tess, first_session(cast), length=100))
    assert patch(tess, url, 0, b"a" * 40).status_code == 204
    response = patch(tess, url, 0, b"a" * 40)
    assert response.status_code == 409
    assert patch(tess, url, 60, b"a" * 40).status_code == 409
    assert head_offset(tess, url) == 40


def test_over_the_size_limit_is_413(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 1000
    assert create(tess, first_session(cast), length=1001).status_code == 413
    assert not Recording.objects.exists()
    url = location(create(tess, first_session(cast), length=None))
    assert patch(tess, url, 0, b"x" * 600).status_code == 204
    assert patch(tess, url, 600, b"x" * 600).status_code == 413  # a deferred upload grows past
    assert head_offset(tess, url) == 600
    fixed = location(create(tess, first_session(cast), length=500))
    assert patch(tess, fixed, 0, b"x" * 501).status_code == 413  # more than it declared
    assert head_offset(tess, fixed) == 0
    part = vault["uploads"] / f"{upload_id(url)}.part"
    assert part.stat().st_size == Upload.objects.get(public_id=upload_id(url)).staged_size


def test_checksum_mismatch_is_460_and_nothing_is_kept(
    cast: Cast,
    tess: HttpClient,
    vault: dict[str, Path],
) -> None:
    url = location(create(tess, first_session(cast), length=300_000))
    first = os.urandom(100_000)
    good = {
        "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(first).digest()).decode()
    }
    assert patch(tess, url, 0, first, good).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    size_before = part.stat().st_size
    counter_before = Upload.objects.get(public_id=upload_id(url)).next_counter
    second = os.urandom(150_000)
    wrong = {
        "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(b"no").digest()).decode()
    }
    response = patch(tess, url, 100_000, second, wrong)
    assert response.status_code == 460
    assert head_offset(tess, url) == 100_000
    assert part.stat().st_size == size_before
    assert Upload.objects.get(public_id=upload_id(url)).next_counter == counter_before
    right = {
        "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(second).digest()).decode()
    }
    assert patch(tess, url, 100_000, second, right).status_code == 204
    assert head_offset(tess, url) == 250_000
    bad_algorithm = patch(tess, url, 250_000, b"x", {"Upload-Checksum": "md5 AAAA"})
    assert bad_algorithm.status_code == 400


def test_no_consent_is_403_and_nothing_is_stored(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    # Cora agreed to audio recording only.
    response = create(tess, first_session(cast), length=1000, kind="video")
    assert response.status_code == 403
    assert response.content.decode() == (
        "This client has not agreed to video recording. Record their consent first."
    )
    # Tomas (the trainee's client) agreed to nothing.
    trainee = sign_in(HttpClient(), cast.trainee)
    session = schedule_session(
        actor=cast.trainee,
        episode=cast.trainee_client.episodes.get(),
        scheduled_at=timezone.now(),
        modality=Modality.IN_PERSON,
    )
    response = create(trainee, session, length=1000, kind="audio")
    assert response.status_code == 403
    assert response.content.decode() == (
        "This client has not agreed to audio recording. Record their consent first."
    )
    assert not Recording.objects.exists() and not Upload.objects.exists()
    assert leftovers(vault) == []


def test_other_therapist_gets_404_everywhere(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    ben = sign_in(HttpClient(), cast.therapist_b)
    assert create(ben, first_session(cast), length=10).status_code == 404
    url = location(create(tess, first_session(cast), length=10))
    assert patch(tess, url, 0, b"12345").status_code == 204
    denied_before = AuditEvent.objects.filter(event_type="authz.denied").count()
    assert ben.head(url, headers=TUS).status_code == 404
    assert patch(ben, url, 5, b"67890").status_code == 404
    assert ben.delete(url, headers=TUS).status_code == 404
    assert AuditEvent.objects.filter(event_type="authz.denied").count() == denied_before + 3
    assert head_offset(tess, url) == 5
    # A supervisor may view Cora's record but not upload to it.
    supervisor = sign_in(HttpClient(), cast.supervisor)
    assert create(supervisor, first_session(cast), length=10).status_code == 403
    assert supervisor.head(url, headers=TUS).status_code == 404


def test_termination_removes_everything(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    url = location(create(tess, first_session(cast), length=200_000))
    assert patch(tess, url, 0, os.urandom(100_000)).status_code == 204
    recording_id = recording_of(url).public_id
    assert tess.delete(url, headers=TUS).status_code == 204
    assert not Recording.objects.filter(public_id=recording_id).exists()
    assert leftovers(vault) == []
    assert tess.head(url, headers=TUS).status_code == 404
    assert AuditEvent.objects.filter(
        event_type="recording.upload_cancelled", target_id=str(recording_id)
    ).exists()


# ---- failure, recovery, garbage collection --------------------------------------------------


def test_non_media_upload_fails_with_a_readable_message(
    cast: Cast,
    tess: HttpClient,
    vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = b"Dear diary, this is a text file and not a recording.\n" * 3000
    url = location(create(tess, first_session(cast), length=len(data)))
    recording_id = recording_of(url).public_id
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(3))
    recording = Recording.objects.get(public_id=recording_id)
    assert recording.state == State.FAILED
    assert recording.failure and "diary" not in recording.failure
    assert recording.wrapped_key is None and recording.kek_version is None
    assert not Upload.objects.exists()
    assert leftovers(vault) == []


def test_empty_upload_completes_at_once_and_fails_kindly(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = create(tess, first_session(cast), length=0)
    assert response.status_code == 201
    recording = Recording.objects.get(created_by=cast.therapist_a)
    assert recording.state == State.FAILED and recording.failure
    assert leftovers(vault) == []


def test_wrong_sha256_metadata_fails(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], django_capture_on_commit_callbacks: Any
) -> None:
    data = wav_bytes(2)
    url = location(create(tess, first_session(cast), length=len(data), sha256="0" * 64))
    recording_id = recording_of(url).public_id
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(4))
    recording = Recording.objects.get(public_id=recording_id)
    assert recording.state == State.FAILED
    assert recording.failure == actions.CHECKSUM
    assert leftovers(vault) == []


def test_recover_finishes_received_recordings(
    cast: Cast, tess: HttpClient, vault: dict[str, Path]
) -> None:
    data = wav_bytes(2)
    url = location(create(tess, first_session(cast), length=len(data)))
    recording_id = recording_of(url).public_id
    # No on-commit callbacks run here: as if the server died before the job was queued.
    assert patch(tess, url, 0, data).status_code == 204
    assert Recording.objects.get(public_id=recording_id).state == State.RECEIVED
    assert tess.delete(url, headers=TUS).status_code == 409  # being checked, not cancellable
    out = io.StringIO()
    call_command("vault", "recover", stdout=out)
    assert "1 ready" in out.getvalue()
    recording = Recording.objects.get(public_id=recording_id)
    assert recording.state == State.READY
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()
    call_command("vault", "recover", stdout=io.StringIO())  # twice is harmless
    assert Recording.objects.get(public_id=recording_id).state == State.READY


def test_gc_removes_expired_abandoned_and_failed_leftovers(
    cast: Cast,
    tess: HttpClient,
    vault: dict[str, Path],
) -> None:
    expired = location(create(tess, first_session(cast), length=500_000))
    assert patch(tess, expired, 0, os.urandom(200_000)).status_code == 204
    abandoned = location(create(tess, first_session(cast), length=10))  # never a byte sent
    live = location(create(tess, first_session(cast), length=10))
    gone_ids = [recording_of(expired).public_id, recording_of(abandoned).public_id]
    Upload.objects.filter(public_id__in=[upload_id(expired), upload_id(abandoned)]).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert patch(tess, expired, 200_000, b"late").status_code == 404  # expired: no more bytes
    # A FAILED recording whose object survived a crash, and staging files nobody owns.
    failed = Recording.objects.create(
        session=first_session(cast), kind="audio", created_by=cast.therapist_a, state=State.FAILED
    )
    scratch = vault["uploads"] / "leftover"
    scratch.write_bytes(b"ciphertext")
    store().put_file(object_name_for(failed), scratch)
    scratch.unlink()
    orphan = uuid.uuid4()
    (vault["uploads"] / f"{orphan}.part").write_bytes(b"ciphertext")
    (vault["uploads"] / f"{orphan}.lock").write_bytes(b"")

    out = io.StringIO()
    call_command("vault", "gc", stdout=out)
    assert "Removed 2 expired upload(s)" in out.getvalue()
    assert not Recording.objects.filter(public_id__in=gone_ids).exists()
    assert not Upload.objects.filter(
        public_id__in=[upload_id(expired), upload_id(abandoned)]
    ).exists()
    assert not store().exists(object_name_for(failed))
    remaining = sorted(p.name for p in vault["uploads"].glob("*"))
    assert all(name.startswith(str(upload_id(live))) for name in remaining)
    assert head_offset(tess, live) == 0
    assert AuditEvent.objects.filter(event_type="recording.upload_expired").count() == 2


def test_gc_runs_as_a_task(cast: Cast, tess: HttpClient, vault: dict[str, Path]) -> None:
    from relisten.recordings.tasks import collect_expired_uploads

    url = location(create(tess, first_session(cast), length=10))
    Upload.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    collect_expired_uploads.enqueue()  # the immediate backend runs it here
    assert not Upload.objects.filter(public_id=upload_id(url)).exists()


def test_finalize_is_idempotent(cast: Cast, tess: HttpClient, vault: dict[str, Path]) -> None:
    data = wav_bytes(1)
    url = location(create(tess, first_session(cast), length=len(data)))
    recording_id = recording_of(url).public_id
    assert patch(tess, url, 0, data).status_code == 204
    first = actions.finalize_upload(recording_id)
    second = actions.finalize_upload(recording_id)
    assert first is not None and second is not None
    assert first.state == second.state == State.READY
    assert (
        AuditEvent.objects.filter(event_type="recording.ready", target_id=str(recording_id)).count()
        == 1
    )


# ---- browser WebM: remuxed, re-encrypted under a new key ------------------------------------

def test_browser_webm_is_remuxed_under_a_new_key(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from relisten.lib.media.probe import needs_remux, probe
    from tests.test_media_probe import sample

    data = sample("browser_webm")
    url = location(create(tess, first_session(cast), length=len(data),
                          sha256=hashlib.sha256(data).hexdigest()))
    recording = recording_of(url)
    original_key = bytes(recording.wrapped_key or b"")
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(5),
               max_piece=20_000)
    recording.refresh_from_db()
    assert recording.state == State.READY, recording.failure
    assert recording.remuxed and recording.content_type == "audio/webm"
    assert recording.duration_s == pytest.approx(3.0, abs=0.1)
    assert bytes(recording.wrapped_key or b"") != original_key
    reader = open_reader(recording)
    assert verify_all(reader) == recording.sha256 != hashlib.sha256(data).hexdigest()
    assert not needs_remux(probe(reader.raw_file()))  # type: ignore[arg-type]
    assert leftovers(vault) == [object_name_for(recording)]


def test_video_needs_video_consent_and_cannot_pass_as_audio(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from relisten.consent.actions import record_decision
    from relisten.consent.models import Method, Purpose
    from relisten.consent.policy import current_text
    from tests.test_media_probe import sample

    data = sample("browser_webm_video")
    as_audio = location(create(tess, first_session(cast), length=len(data), kind="audio"))
    recording_id = recording_of(as_audio).public_id
    upload_all(tess, as_audio, data, django_capture_on_commit_callbacks, random.Random(6))
    failed = Recording.objects.get(public_id=recording_id)
    assert failed.state == State.FAILED and failed.failure == actions.VIDEO_AS_AUDIO
    assert leftovers(vault) == []

    assert create(tess, first_session(cast), length=len(data), kind="video").status_code == 403
    record_decision(actor=cast.therapist_a, client=cast.client_a,
                    purpose=Purpose.VIDEO_RECORDING, granted=True, method=Method.PAPER_ATTESTED,
                    text=current_text(cast.client_a.clinic_id, Purpose.VIDEO_RECORDING))
    as_video = location(create(tess, first_session(cast), length=len(data), kind="video"))
    recording_id = recording_of(as_video).public_id
    upload_all(tess, as_video, data, django_capture_on_commit_callbacks, random.Random(7))
    ready = Recording.objects.get(public_id=recording_id)
    assert ready.state == State.READY, ready.failure
    assert ready.video_codec and ready.content_type == "video/webm" and ready.remuxed


# ---- no nonce reuse after a cut-back: re-keying ---------------------------------------------


def _state(url: str) -> tuple[bytes, bytes, int, int]:
    """(header, wrapped key, next counter, staged size) as committed."""
    upload = Upload.objects.select_related("recording").get(public_id=upload_id(url))
    return (bytes(upload.header), bytes(upload.recording.wrapped_key or b""),
            upload.next_counter, upload.staged_size)


def _crash_residue(url: str, part: Path, plaintext: bytes) -> dict[tuple[bytes, int], bytes]:
    """Append what a PATCH that died before its commit would have left: `plaintext` sealed
    with the committed key, header and counter. Returns {(nonce prefix, counter): chunk
    plaintext} for the chunks it sealed."""
    from relisten.lib.vault.stream import Encryptor, Header, open_blob
    from relisten.recordings.vault import data_key

    upload = Upload.objects.select_related("recording").get(public_id=upload_id(url))
    key = data_key(upload.recording)
    header = Header.parse(bytes(upload.header))
    context = f"upload:{upload.public_id}".encode()
    pending = open_blob(key, bytes(upload.pending_sealed), context) if upload.pending_sealed \
        else b""
    encryptor = Encryptor(key, header, upload.next_counter, pending)
    sealed = encryptor.update(plaintext)
    assert encryptor.next_counter > upload.next_counter  # the residue really used nonces
    with open(part, "ab") as handle:
        handle.write(sealed)
    stream = pending + plaintext
    return {(header.nonce_prefix, upload.next_counter + i): stream[i * header.chunk_size:
                                                                   (i + 1) * header.chunk_size]
            for i in range(encryptor.next_counter - upload.next_counter)}


def _object_nonce_uses(recording: Recording, data: bytes) -> dict[tuple[bytes, int], bytes]:
    """{(nonce prefix, counter): chunk plaintext} of the stored object."""
    from relisten.lib.vault.stream import CHUNK_SIZE, Header

    recording.refresh_from_db()
    prefix = Header.parse(store().read_range(recording.object_name, 0, HEADER_SIZE)).nonce_prefix
    count = max(1, -(-len(data) // CHUNK_SIZE))
    return {(prefix, i): data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE] for i in range(count)}


def _committed_nonce_uses(header: bytes, data: bytes, counters: int) -> dict[tuple[bytes, int],
                                                                            bytes]:
    from relisten.lib.vault.stream import CHUNK_SIZE, Header

    prefix = Header.parse(header).nonce_prefix
    return {(prefix, i): data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE] for i in range(counters)}


def _assert_no_nonce_reuse(*uses: dict[tuple[bytes, int], bytes]) -> None:
    seen: dict[tuple[bytes, int], bytes] = {}
    for use in uses:
        for nonce, chunk in use.items():
            assert seen.setdefault(nonce, chunk) == chunk, f"nonce {nonce!r} sealed two texts"


@pytest.mark.parametrize("resume_with", ["head", "patch"])
def test_cut_back_of_sealed_bytes_rekeys_before_different_bytes_arrive(
    resume_with: str, cast: Cast, tess: HttpClient, vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_bytes(10)  # 320 KB: five 64 KiB chunks
    url = location(create(tess, first_session(cast), length=len(data)))
    recording_id = recording_of(url).public_id
    assert patch(tess, url, 0, data[:150_000]).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    header, wrapped, counter, staged = _state(url)
    assert counter == 2
    # The crashed request sealed DIFFERENT bytes at the same offset than will now be sent.
    crashed = _crash_residue(url, part, os.urandom(140_000))
    assert part.stat().st_size > staged

    if resume_with == "head":
        assert head_offset(tess, url) == 150_000
        assert part.stat().st_size == staged
    assert patch(tess, url, 150_000, data[150_000:200_000]).status_code == 204

    new_header, new_wrapped, _, _ = _state(url)
    assert new_header != header and new_wrapped != wrapped
    assert new_header[-7:] != header[-7:]  # a new random nonce prefix
    [event] = AuditEvent.objects.filter(event_type="recording.upload_rekeyed")
    assert event.changes["cut_bytes"] == sum(len(c) + 16 for c in crashed.values())
    assert list(vault["uploads"].glob("*.rekey")) == []

    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(9))
    recording = Recording.objects.get(public_id=recording_id)
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()
    # Every (nonce prefix, counter) ever used sealed one plaintext only: the committed chunks
    # under the old header, the crashed request's chunks, and the final object's.
    _assert_no_nonce_reuse(_committed_nonce_uses(header, data, counter), crashed,
                           _object_nonce_uses(recording, data))
    assert _object_nonce_uses(recording, data).keys().isdisjoint(crashed.keys())


def test_cut_back_that_removes_nothing_does_not_rekey(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
) -> None:
    url = location(create(tess, first_session(cast), length=400_000))
    assert patch(tess, url, 0, os.urandom(150_000)).status_code == 204
    before = _state(url)
    assert head_offset(tess, url) == 150_000
    assert patch(tess, url, 150_000, os.urandom(100_000)).status_code == 204
    after = _state(url)
    assert after[:2] == before[:2]  # same header and key: nothing was cut, nothing reused
    assert after[2] > before[2]
    assert not AuditEvent.objects.filter(event_type="recording.upload_rekeyed").exists()


def test_residue_of_an_upload_with_nothing_committed_rekeys(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_bytes(3)
    url = location(create(tess, first_session(cast), length=len(data)))
    header, wrapped, _, staged = _state(url)
    assert staged == 0
    part = vault["uploads"] / f"{upload_id(url)}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(header)  # the crashed first PATCH wrote the header, never committed
    crashed = _crash_residue(url, part, os.urandom(70_000))
    assert head_offset(tess, url) == 0
    assert not part.exists() or part.stat().st_size == 0
    assert _state(url)[:2] != (header, wrapped)
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(10))
    recording = Recording.objects.filter(created_by=cast.therapist_a).get()
    assert recording.state == State.READY, recording.failure
    _assert_no_nonce_reuse(crashed, _object_nonce_uses(recording, data))


def test_refused_patch_that_sealed_bytes_rekeys(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.UPLOAD_MAX_BYTES = 300_000
    data = wav_bytes(8)  # 256 KB
    url = location(create(tess, first_session(cast), length=None))
    assert patch(tess, url, 0, data[:100_000]).status_code == 204
    header, wrapped, _, staged = _state(url)
    upload = Upload.objects.get(public_id=upload_id(url))
    # A body of unknown length that turns out too big, after some of it was sealed.
    with pytest.raises(actions.TooLarge):
        actions.append_upload(actor=cast.therapist_a, upload=upload, offset=100_000,
                              body=iter([os.urandom(150_000), os.urandom(150_000)]),
                              body_length=None, checksum=None, new_length=None)
    part = vault["uploads"] / f"{upload_id(url)}.part"
    assert part.stat().st_size == staged
    new_header, new_wrapped, _, new_staged = _state(url)
    assert new_header != header and new_wrapped != wrapped and new_staged == staged
    response = patch(tess, url, 100_000, data[100_000:], {"Upload-Length": str(len(data))},
                     capture=django_capture_on_commit_callbacks)
    assert response.status_code == 204
    recording = Recording.objects.filter(created_by=cast.therapist_a).get()
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()


class _PowerCut(Exception):
    pass


def test_rekey_cut_short_after_its_commit_is_finished_by_the_next_request(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from relisten.recordings import staging

    data = wav_bytes(10)
    url = location(create(tess, first_session(cast), length=len(data)))
    assert patch(tess, url, 0, data[:200_000]).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    header, _, _, staged = _state(url)
    _crash_residue(url, part, os.urandom(100_000))

    def power_cut(upload_id: object) -> None:
        raise _PowerCut  # after the transaction, before the swap

    monkeypatch.setattr(staging, "install_rekeyed", power_cut)
    with pytest.raises(_PowerCut):
        tess.head(url, headers=TUS)
    monkeypatch.undo()
    committed = _state(url)
    assert committed[0] != header  # the database already names the new header ...
    rekeyed = vault["uploads"] / f"{upload_id(url)}.rekey"
    assert rekeyed.read_bytes()[:HEADER_SIZE] == committed[0]  # ... which only U.rekey has
    assert part.stat().st_size > staged

    assert head_offset(tess, url) == 200_000  # settles: U.rekey goes in place, no new key
    assert _state(url) == committed and not rekeyed.exists()
    assert part.read_bytes()[:HEADER_SIZE] == committed[0] and part.stat().st_size == staged
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(11))
    recording = Recording.objects.filter(created_by=cast.therapist_a).get()
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()


def test_rekey_cut_short_before_its_commit_is_dropped_and_redone(
    cast: Cast, tess: HttpClient, vault: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = wav_bytes(10)
    url = location(create(tess, first_session(cast), length=len(data)))
    assert patch(tess, url, 0, data[:200_000]).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    before = _state(url)
    crashed = _crash_residue(url, part, os.urandom(100_000))

    def power_cut(*args: object) -> None:
        raise _PowerCut  # U.rekey is written, the transaction never commits

    monkeypatch.setattr(actions, "_save_rekeyed", power_cut)
    with pytest.raises(_PowerCut):
        tess.head(url, headers=TUS)
    monkeypatch.undo()
    assert _state(url) == before  # the database still describes U.part under the old key
    rekeyed = vault["uploads"] / f"{upload_id(url)}.rekey"
    assert rekeyed.exists()

    assert head_offset(tess, url) == 200_000  # drops the stale U.rekey, re-keys afresh
    after = _state(url)
    assert after[0] != before[0] and after[1] != before[1]
    assert not rekeyed.exists() and part.read_bytes()[:HEADER_SIZE] == after[0]
    upload_all(tess, url, data, django_capture_on_commit_callbacks, random.Random(12))
    recording = Recording.objects.filter(created_by=cast.therapist_a).get()
    assert recording.state == State.READY, recording.failure
    assert plaintext_sha(recording) == hashlib.sha256(data).hexdigest()
    _assert_no_nonce_reuse(_committed_nonce_uses(before[0], data, before[2]), crashed,
                           _object_nonce_uses(recording, data))


def test_damaged_staging_found_while_rekeying_fails_the_upload_kindly(
    cast: Cast, tess: HttpClient, vault: dict[str, Path],
) -> None:
    url = location(create(tess, first_session(cast), length=400_000))
    assert patch(tess, url, 0, os.urandom(200_000)).status_code == 204
    part = vault["uploads"] / f"{upload_id(url)}.part"
    recording_id = recording_of(url).public_id
    with open(part, "r+b") as handle:  # bit rot in a committed chunk
        handle.seek(HEADER_SIZE + 70_000)
        byte = handle.read(1)
        handle.seek(HEADER_SIZE + 70_000)
        handle.write(bytes([byte[0] ^ 1]))
    _crash_residue(url, part, os.urandom(100_000))
    response = tess.head(url, headers=TUS)
    assert response.status_code == 404
    recording = Recording.objects.get(public_id=recording_id)
    assert recording.state == State.FAILED and recording.failure == actions.DAMAGED
    assert recording.wrapped_key is None
    assert leftovers(vault) == []
    assert AuditEvent.objects.filter(event_type="vault.integrity_failure",
                                     target_id=str(recording_id)).exists()
