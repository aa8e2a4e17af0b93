"""Playing recordings: HTTP Range, who may fetch, auditing, and tamper evidence at the endpoint.

READY recordings are made here without the upload server: the plaintext is encrypted with the
real vault (Encryptor, the local object store, a real keyring file) and the row is filled in as
the upload pipeline would. `make_recording` and the `vault_env` fixture are shared with the
erasure/rotation and scrub tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.accounts.models import Membership, User
from relisten.audit.models import AuditEvent
from relisten.clients.actions import schedule_session, share_with_client
from relisten.clients.models import TherapySession
from relisten.consent.actions import record_decision
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast
from relisten.lib.vault.keys import new_keyring, save_keyring
from relisten.lib.vault.stream import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, Encryptor, Header
from relisten.recordings import media, vault
from relisten.recordings.models import Kind, Recording, State

# ---- shared helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultEnv:
    media_dir: Path
    kek_file: Path

    def object_path(self, recording: Recording) -> Path:
        return self.media_dir / (recording.object_name or vault.object_name_for(recording))


def configure_vault(root: Path, settings: Any) -> VaultEnv:
    """Point the vault at a fresh local store and keyring file under `root`."""
    env = VaultEnv(media_dir=root / "media", kek_file=root / "keys" / "kek.json")
    settings.MEDIA_STORAGE = "local"
    settings.MEDIA_DIR = env.media_dir
    settings.KEK_FILE = env.kek_file
    settings.KEK_TEXT = None
    env.kek_file.parent.mkdir(parents=True)
    save_keyring(new_keyring(), env.kek_file)
    vault.store.cache_clear()  # store() is cached per process; this test has its own
    return env


@pytest.fixture(name="vault_env")
def vault_env_fixture(tmp_path: Path, settings: Any) -> Iterator[VaultEnv]:
    """Other modules import this by its function name; tests ask for `vault_env`."""
    yield configure_vault(tmp_path, settings)
    vault.store.cache_clear()


def make_recording(
    session: TherapySession,
    data: bytes,
    *,
    created_by: User,
    kind: str = Kind.AUDIO,
    content_type: str = "audio/webm",
    state: str = State.READY,
    scratch: Path | None = None,
) -> Recording:
    """A recording as the upload pipeline leaves it: encrypted object stored, row filled in."""
    recording = Recording(session=session, kind=kind, created_by=created_by, state=State.UPLOADING)
    key = vault.issue_data_key(recording)
    header = Header.new()
    encryptor = Encryptor(key, header)
    folder = scratch or Path(os.environ.get("TMPDIR", "/tmp"))
    staged = folder / f"{recording.public_id}.staged"
    with staged.open("wb") as out:
        out.write(header.to_bytes())
        for at in range(0, len(data), 1_000_003):  # odd slices: chunking must not care
            out.write(encryptor.update(data[at : at + 1_000_003]))
        out.write(encryptor.finish())
    name = vault.object_name_for(recording)
    vault.store().put_file(name, staged)
    staged.unlink(missing_ok=True)
    recording.object_name = name
    recording.ciphertext_size = vault.store().size(name)
    recording.size = len(data)
    recording.sha256 = hashlib.sha256(data).hexdigest()
    recording.content_type = content_type
    recording.container = "matroska,webm"
    recording.audio_codec = "opus"
    recording.state = state
    recording.ready_at = timezone.now() if state == State.READY else None
    recording.save()
    return recording


def first_session(cast: Cast, which: str = "a") -> TherapySession:
    client = cast.client_a if which == "a" else cast.client_b
    return client.episodes.get().sessions.get(number=1)


def media_url(recording: Recording) -> str:
    return f"/recordings/{recording.public_id}/media"


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def collect_until_failure(response: Any) -> tuple[bytes, Exception | None]:
    """Bytes a player would receive before the stream aborted, and why it aborted."""
    received = bytearray()
    try:
        for piece in response.streaming_content:
            received += piece
    except Exception as error:  # noqa: BLE001 - the abort is what we are looking for
        return bytes(received), error
    return bytes(received), None


def flip_bit(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def events(event_type: str, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type, **filters).order_by("seq"))


def set_consent(cast: Cast, purpose: str, granted: bool, client: Any = None) -> None:
    client = client or cast.client_a
    record_decision(
        actor=cast.therapist_a,
        client=client,
        purpose=purpose,
        granted=granted,
        method=Method.PAPER_ATTESTED,
        text=current_text(client.clinic_id, purpose),
    )


def pseudo_random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# ---- Range: byte-exact for random ranges -----------------------------------------------------

SIZES = [1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 12345]


def _random_range(rng: random.Random, size: int) -> tuple[str, int, int]:
    """A Range header value and the [start, end) it must select."""
    form = rng.choice(("a-b", "a-", "-n"))
    if form == "a-b":
        start = rng.randrange(size)
        last = rng.randrange(start, size + CHUNK_SIZE)  # may run past the end: clamped
        return f"bytes={start}-{last}", start, min(last + 1, size)
    if form == "a-":
        start = rng.randrange(size)
        return f"bytes={start}-", start, size
    suffix = rng.randrange(1, size + CHUNK_SIZE)
    return f"bytes=-{suffix}", max(0, size - suffix), size


@pytest.mark.parametrize("size", SIZES)
def test_random_ranges_are_byte_exact(
    size: int,
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    data = pseudo_random_bytes(size, seed=size)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    rng = random.Random(1000 + size)
    for _ in range(200):
        header, start, end = _random_range(rng, size)
        response = http.get(media_url(recording), HTTP_RANGE=header)
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert response["Content-Length"] == str(end - start)
        assert body(response) == data[start:end], header
    # Two hundred range requests are one look, as far as the client's access log is concerned.
    assert len(events(media.PLAYED_EVENT, target_id=str(recording.public_id))) == 1


def test_full_body_and_headers(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    data = pseudo_random_bytes(CHUNK_SIZE * 2 + 7, seed=2)
    recording = make_recording(
        first_session(cast),
        data,
        created_by=cast.therapist_a,
        content_type="video/webm",
        kind=Kind.VIDEO,
    )
    response = signed_in(cast.therapist_a).get(media_url(recording))
    assert response.status_code == 200
    assert response.streaming  # never buffered whole
    assert response["Content-Type"] == "video/webm"
    assert response["Content-Length"] == str(len(data))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "no-store"
    assert "Content-Range" not in response
    assert body(response) == data


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",  # last before first: invalid, so the header is ignored
        "bytes=abc",
        "bytes=-",
        "bytes=1-2-3",
        "bytes=",
        "items=0-1",
        "bytes 0-1",
        "bytes=\u00b2-3",
        "bytes=0-1,5-6",  # several ranges: answered whole, as the RFC allows
    ],
)
def test_malformed_or_multiple_ranges_get_the_whole_body(
    header: str,
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    data = pseudo_random_bytes(1000, seed=3)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    response = signed_in(cast.therapist_a).get(media_url(recording), HTTP_RANGE=header)
    assert response.status_code == 200
    assert body(response) == data


@pytest.mark.parametrize(
    "header",
    ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000", "bytes=-0", "bytes=1000-1000,2000-"],
)
def test_unsatisfiable_ranges_get_416(
    header: str,
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    data = pseudo_random_bytes(1000, seed=4)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    response = signed_in(cast.therapist_a).get(media_url(recording), HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */1000"
    assert response.content == b""


def test_range_edges(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    data = pseudo_random_bytes(CHUNK_SIZE * 3, seed=5)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    n = len(data)
    cases = {
        "bytes=0-0": (0, 0),
        f"bytes={n - 1}-": (n - 1, n - 1),
        f"bytes=-{n * 5}": (0, n - 1),
        f"bytes={CHUNK_SIZE - 1}-{CHUNK_SIZE}": (CHUNK_SIZE - 1, CHUNK_SIZE),
        f"BYTES = {CHUNK_SIZE}-{2 * CHUNK_SIZE - 1}": (CHUNK_SIZE, 2 * CHUNK_SIZE - 1),
        "bytes=10-20,9999999-": (10, 20),  # only one range overlaps: that one is sent
    }
    for header, (first, last) in cases.items():
        response = http.get(media_url(recording), HTTP_RANGE=header)
        if header.startswith("bytes=10-20,"):
            # Several range-specs: whole body is an allowed answer; so is the first range.
            assert response.status_code in (200, 206)
            continue
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {first}-{last}/{n}"
        assert body(response) == data[first : last + 1]


def test_if_range_resumes_only_the_same_representation(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    data = pseudo_random_bytes(5000, seed=6)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    etag = http.get(media_url(recording))["ETag"]
    same = http.get(media_url(recording), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=etag)
    assert same.status_code == 206 and body(same) == data[100:]
    other = http.get(media_url(recording), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE='"elsewhere"')
    assert other.status_code == 200 and body(other) == data


def test_head_sends_headers_only_and_is_not_a_play(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    data = pseudo_random_bytes(4000, seed=7)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    response = signed_in(cast.therapist_a).head(media_url(recording), HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206
    assert response["Content-Length"] == "100"
    assert response.content == b""
    assert events(media.PLAYED_EVENT) == []


# ---- who may fetch ---------------------------------------------------------------------------

ALLOWED_FOR_CORA = {"therapist_a", "supervisor", "client_user_a"}
EVERYONE = (
    "therapist_a",
    "therapist_b",
    "supervisor",
    "trainee",
    "client_user_a",
    "client_user_b",
    "researcher",
    "admin",
    "other_clinic_therapist",
)


def test_only_treating_supervising_and_own_client_may_fetch(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    marker = b"SESSION-AUDIO-" * 500
    recording = make_recording(first_session(cast), marker, created_by=cast.therapist_a)
    # Cora may play it because her therapist shared the session with her (issue 5).
    share_with_client(actor=cast.therapist_a, session=first_session(cast), shared=True)
    for persona in EVERYONE:
        user = getattr(cast, persona)
        response = signed_in(user).get(media_url(recording), HTTP_RANGE="bytes=0-")
        if persona in ALLOWED_FOR_CORA:
            assert response.status_code == 206, persona
            assert body(response) == marker
        else:
            assert response.status_code == 404, persona
            assert not response.streaming
            assert b"SESSION-AUDIO" not in response.content
            assert len(response.content) < 2000
            assert events("authz.denied", actor_id=user.public_id), persona
    anonymous = HttpClient().get(media_url(recording))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/sign-in/")


def test_played_event_is_in_the_clients_access_log_once_per_window(
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording = make_recording(first_session(cast), b"x" * 3000, created_by=cast.therapist_a)
    therapist, supervisor = signed_in(cast.therapist_a), signed_in(cast.supervisor)
    for first in range(0, 3000, 500):
        assert (
            therapist.get(
                media_url(recording), HTTP_RANGE=f"bytes={first}-{first + 499}"
            ).status_code
            == 206
        )
    supervisor.get(media_url(recording))
    played = events(media.PLAYED_EVENT)
    assert [(e.actor_id, e.actor_role) for e in played] == [
        (cast.therapist_a.public_id, "therapist"),
        (cast.supervisor.public_id, "supervisor"),
    ]
    assert {e.client_id for e in played} == {cast.client_a.public_id}
    assert all(e.target_id == str(recording.public_id) for e in played)
    # The client sees both looks in their own access log.
    log = signed_in(cast.client_user_a).get(f"/me/{cast.client_a.public_id}/access/")
    assert log.status_code == 200
    assert log.content.count(b"Tess Morgan") >= 1 and b"Dr Sam Reyes" in log.content
    # Once the window has passed, the next request is a new look.
    monkeypatch.setattr(media, "PLAYED_WINDOW", dt.timedelta(0))
    therapist.get(media_url(recording), HTTP_RANGE="bytes=0-0")
    assert len(events(media.PLAYED_EVENT, actor_id=cast.therapist_a.public_id)) == 2


def test_revoking_client_access_stops_the_next_request(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(first_session(cast), b"y" * 5000, created_by=cast.therapist_a)
    share_with_client(actor=cast.therapist_a, session=first_session(cast), shared=True)
    client_http = signed_in(cast.client_user_a)
    assert client_http.get(media_url(recording), HTTP_RANGE="bytes=0-9").status_code == 206
    set_consent(cast, Purpose.CLIENT_ACCESS, granted=False)
    refused = client_http.get(media_url(recording), HTTP_RANGE="bytes=10-19")
    assert refused.status_code == 404 and b"yyyy" not in refused.content
    # Her therapist still may; and granting again restores her access.
    assert signed_in(cast.therapist_a).get(media_url(recording)).status_code == 200
    set_consent(cast, Purpose.CLIENT_ACCESS, granted=True)
    assert client_http.get(media_url(recording), HTTP_RANGE="bytes=0-9").status_code == 206


def test_supervisor_only_while_supervision_review_consent_is_active(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(first_session(cast), b"z" * 5000, created_by=cast.therapist_a)
    http = signed_in(cast.supervisor)
    assert http.get(media_url(recording)).status_code == 200
    set_consent(cast, Purpose.SUPERVISION_REVIEW, granted=False)
    assert http.get(media_url(recording)).status_code == 404
    # Supervising the trainee's client without that consent: no access either.
    trainee_session = cast.trainee_client.episodes.get()
    session = schedule_session(
        actor=cast.trainee,
        episode=trainee_session,
        scheduled_at=timezone.now(),
        modality="in_person",
    )
    tomas = make_recording(session, b"t" * 100, created_by=cast.trainee)
    assert signed_in(cast.trainee).get(media_url(tomas)).status_code == 200
    assert http.get(media_url(tomas)).status_code == 404


@pytest.mark.parametrize("state", [State.UPLOADING, State.RECEIVED, State.FAILED, State.ERASED])
def test_only_ready_recordings_are_served(
    state: str, cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(
        first_session(cast), b"n" * 100, created_by=cast.therapist_a, state=state
    )
    response = signed_in(cast.therapist_a).get(media_url(recording))
    assert response.status_code == 404 and b"nnnn" not in response.content


def test_revoked_therapist_membership_loses_access(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(first_session(cast), b"m" * 100, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    assert http.get(media_url(recording)).status_code == 200
    Membership.objects.filter(user=cast.therapist_a).update(active=False)
    assert http.get(media_url(recording)).status_code == 404


def test_session_page_shows_a_player_only_for_ready_recordings(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    session = first_session(cast)
    ready = make_recording(session, b"r" * 100, created_by=cast.therapist_a)
    pending = make_recording(session, b"p" * 100, created_by=cast.therapist_a,
                             state=State.RECEIVED)
    page = signed_in(cast.therapist_a).get(f"/sessions/{session.public_id}/").content.decode()
    assert f'src="{media_url(ready)}"' in page
    # Not playable until READY (the capture panel may still say it is being checked).
    assert media_url(pending) not in page
    assert f"/recordings/{pending.public_id}/transcript/" not in page
    assert f"/recordings/{ready.public_id}/erase/" in page
    # The supervisor may listen (consent given in the demo) but not erase.
    supervisor_page = signed_in(cast.supervisor).get(f"/sessions/{session.public_id}/")
    assert f'src="{media_url(ready)}"' in supervisor_page.content.decode()
    assert "/erase/" not in supervisor_page.content.decode()
    assert str(pending.public_id) not in supervisor_page.content.decode()


# ---- tamper evidence at the endpoint ---------------------------------------------------------


def _chunk_offset(index: int) -> int:
    """Where chunk `index` starts in the stored object."""
    return HEADER_SIZE + index * (CHUNK_SIZE + TAG_SIZE)


def test_flipped_bit_in_a_middle_chunk(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    data = pseudo_random_bytes(CHUNK_SIZE * 5 + 300, seed=9)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    flip_bit(vault_env.object_path(recording), _chunk_offset(2) + 1000)
    http = signed_in(cast.therapist_a)
    bad_start, bad_end = 2 * CHUNK_SIZE, 3 * CHUNK_SIZE

    # Ranges over good chunks only (before and after the bad one) still play.
    good = http.get(media_url(recording), HTTP_RANGE=f"bytes=100-{bad_start - 1}")
    assert good.status_code == 206 and body(good) == data[100:bad_start]
    after = http.get(media_url(recording), HTTP_RANGE=f"bytes={bad_end}-")
    assert after.status_code == 206 and body(after) == data[bad_end:]
    assert events("vault.integrity_failure") == []

    # A range across the bad chunk: the good prefix arrives, then the stream aborts, and not
    # one byte of the damaged chunk (or anything after it) is sent.
    start = CHUNK_SIZE + 10
    across = http.get(media_url(recording), HTTP_RANGE=f"bytes={start}-{bad_end + 500}")
    assert across.status_code == 206
    received, error = collect_until_failure(across)
    assert error is not None
    assert received == data[start:bad_start]
    failures = events("vault.integrity_failure", target_id=str(recording.public_id))
    assert len(failures) == 1 and failures[0].client_id == cast.client_a.public_id

    # A range inside the bad chunk sends nothing at all.
    inside = http.get(media_url(recording), HTTP_RANGE=f"bytes={bad_start + 5}-{bad_start + 9}")
    received, error = collect_until_failure(inside)
    assert received == b"" and error is not None
    assert len(events("vault.integrity_failure", target_id=str(recording.public_id))) == 2


def test_damaged_final_chunk_or_header_is_refused_before_any_byte(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    session = first_session(cast)
    tail = make_recording(session, b"q" * (CHUNK_SIZE + 50), created_by=cast.therapist_a)
    head = make_recording(session, b"q" * 500, created_by=cast.therapist_a)
    flip_bit(vault_env.object_path(tail), vault_env.object_path(tail).stat().st_size - 3)
    flip_bit(vault_env.object_path(head), 2)  # inside the magic
    http = signed_in(cast.therapist_a)
    for recording in (tail, head):
        response = http.get(media_url(recording))
        assert response.status_code == 500
        assert not response.streaming and b"qqqq" not in response.content
        assert b"integrity check" in response.content
        assert events("vault.integrity_failure", target_id=str(recording.public_id))
    assert events(media.PLAYED_EVENT) == []


def test_truncated_object_is_refused(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(
        first_session(cast), b"r" * (CHUNK_SIZE * 3), created_by=cast.therapist_a
    )
    path = vault_env.object_path(recording)
    with path.open("r+b") as f:
        f.truncate(_chunk_offset(2))  # the last chunk is gone: the object now "ends" early
    response = signed_in(cast.therapist_a).get(media_url(recording))
    assert response.status_code == 500 and b"rrrr" not in response.content
    assert events("vault.integrity_failure", target_id=str(recording.public_id))


def _swap_chunks(path: Path, first: int, second: int) -> None:
    raw = bytearray(path.read_bytes())
    size = CHUNK_SIZE + TAG_SIZE
    a, b = _chunk_offset(first), _chunk_offset(second)
    raw[a:a + size], raw[b:b + size] = raw[b:b + size], raw[a:a + size]
    path.write_bytes(bytes(raw))


def _truncate_inside_a_chunk(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(_chunk_offset(2) + 700)


@pytest.mark.parametrize("damage", [_swap_chunks, _truncate_inside_a_chunk],
                         ids=["two-chunks-swapped", "truncated-inside-a-chunk"])
def test_reordered_or_cut_objects_send_no_plaintext_and_are_reported(
    damage: Callable[..., None], cast: Cast, vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    data = pseudo_random_bytes(CHUNK_SIZE * 4 + 100, seed=21)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    path = vault_env.object_path(recording)
    if damage is _swap_chunks:
        damage(path, 0, 1)
    else:
        damage(path)
    response = signed_in(cast.therapist_a).get(media_url(recording), HTTP_RANGE="bytes=0-")
    # Not one byte of any chunk that failed its check reaches the player: either the object is
    # refused before streaming (its final chunk fails) or the stream aborts at once.
    if response.streaming:
        received, error = collect_until_failure(response)
        assert received == b"" and error is not None
    else:
        assert response.status_code == 500 and data[:64] not in response.content
    assert events("vault.integrity_failure", target_id=str(recording.public_id))


def test_swapped_wrapped_keys_fail_for_both(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    session = first_session(cast)
    one = make_recording(session, b"1" * 4000, created_by=cast.therapist_a)
    two = make_recording(session, b"2" * 4000, created_by=cast.therapist_a)
    key_one, key_two = bytes(one.wrapped_key or b""), bytes(two.wrapped_key or b"")
    Recording.objects.filter(pk=one.pk).update(wrapped_key=key_two)
    Recording.objects.filter(pk=two.pk).update(wrapped_key=key_one)
    http = signed_in(cast.therapist_a)
    for recording in (one, two):
        response = http.get(media_url(recording))
        assert response.status_code in (404, 500)
        assert not response.streaming
        assert b"1111" not in response.content and b"2222" not in response.content
        failures = events("vault.integrity_failure", target_id=str(recording.public_id))
        assert failures and failures[0].changes == {"where": "wrapped key"}


def test_missing_object_is_reported(
    cast: Cast, vault_env: VaultEnv, signed_in: Callable[[User], HttpClient]
) -> None:
    recording = make_recording(first_session(cast), b"g" * 100, created_by=cast.therapist_a)
    vault_env.object_path(recording).unlink()
    response = signed_in(cast.therapist_a).get(media_url(recording))
    assert response.status_code == 500
    assert events("vault.integrity_failure", target_id=str(recording.public_id))


# ---- the parser on its own -------------------------------------------------------------------


def test_parse_range_units() -> None:
    assert media.parse_range(None, 10) is None
    assert media.parse_range("bytes=2-4", 10) == media.ByteRange(2, 4)
    assert media.parse_range("bytes=-3", 10) == media.ByteRange(7, 9)
    assert media.parse_range("bytes=8-", 10) == media.ByteRange(8, 9)
    assert media.parse_range("bytes=0-99", 10) == media.ByteRange(0, 9)
    with pytest.raises(media.Unsatisfiable):
        media.parse_range("bytes=10-", 10)
    with pytest.raises(media.Unsatisfiable):
        media.parse_range("bytes=0-", 0)
    with pytest.raises(media.Unsatisfiable):
        media.parse_range("bytes=-5", 0)  # nothing to send from an empty representation
    assert media.parse_range("bytes=4-2", 10) is None
    assert media.parse_range("bytes=1-2, 4-5", 10) is None
