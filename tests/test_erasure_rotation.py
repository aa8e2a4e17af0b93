"""Erasure (crypto-shredding), retention rules, and KEK rotation."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.accounts.models import User
from relisten.audit.log import CLINICAL_KEYS
from relisten.clients.actions import discharge_episode, schedule_session, share_with_client
from relisten.clients.models import TherapySession
from relisten.core.personas import Cast
from relisten.lib.vault.keys import load_keyring, rotated, save_keyring
from relisten.lib.vault.stream import IntegrityError, StreamReader
from relisten.recordings import erasure, rotation, vault
from relisten.recordings.models import Kind, Recording, RetentionRule, State
from tests.test_media_playback import (
    VaultEnv,
    body,
    events,
    first_session,
    make_recording,
    media_url,
    pseudo_random_bytes,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)

# ---- erasure ---------------------------------------------------------------------------------


def test_erase_shreds_the_key_and_deletes_the_object(
    cast: Cast,
    vault_env: VaultEnv,
    django_capture_on_commit_callbacks: Any,
) -> None:
    recording = make_recording(
        first_session(cast), b"secret words" * 100, created_by=cast.therapist_a
    )
    path = vault_env.object_path(recording)
    with django_capture_on_commit_callbacks(execute=True):
        erased = erasure.erase_recording(actor=cast.therapist_a, recording=recording)
    row = Recording.objects.get(pk=recording.pk)
    assert row.state == State.ERASED and erased.state == State.ERASED
    assert row.wrapped_key is None and row.kek_version is None and row.sha256 == ""
    assert row.erased_at is not None and abs(timezone.now() - row.erased_at).total_seconds() < 60
    assert not path.exists()
    [event] = events("recording.erased")
    assert event.actor_id == cast.therapist_a.public_id
    assert event.client_id == cast.client_a.public_id
    assert event.target_id == str(recording.public_id)
    assert set(event.changes) == {"kind", "reason", "previous_state"}
    assert not set(event.changes) & CLINICAL_KEYS
    assert b"Cora" not in repr(event.changes).encode()
    # Erasing again changes nothing and writes nothing.
    erasure.erase_recording(actor=cast.therapist_a, recording=recording)
    assert len(events("recording.erased")) == 1


def test_gc_retries_an_object_delete_that_failed_after_erasure(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path
) -> None:
    from relisten.recordings.actions import collect_expired_uploads

    recording = make_recording(first_session(cast), b"x" * 5000, created_by=cast.therapist_a)
    path = vault_env.object_path(recording)
    copy = tmp_path / "left-behind.rlv"
    shutil.copyfile(path, copy)
    erasure.erase_recording(actor=cast.therapist_a, recording=recording)
    # Simulate the after-commit delete failing: the object is still in storage.
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copy, path)
    done = collect_expired_uploads()
    assert done.orphan_objects == 1 and not path.exists()


def test_an_old_backup_of_the_object_cannot_be_decrypted_or_served(
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    data = pseudo_random_bytes(200_000, seed=11)
    recording = make_recording(first_session(cast), data, created_by=cast.therapist_a)
    path = vault_env.object_path(recording)
    backup = tmp_path / "old-media-backup.rlv"
    shutil.copyfile(path, backup)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_recording(actor=cast.therapist_a, recording=recording)
    assert not path.exists()

    # Someone restores the media backup into the bucket.
    vault.store().put_file(recording.object_name, backup)
    assert path.read_bytes() == backup.read_bytes()
    http = signed_in(cast.therapist_a)
    assert http.get(media_url(recording)).status_code == 404
    # Even with the row forced back to READY, there is no key left to open it with...
    Recording.objects.filter(pk=recording.pk).update(state=State.READY)
    forced = Recording.objects.get(pk=recording.pk)
    with pytest.raises(IntegrityError):
        vault.open_reader(forced)
    response = http.get(media_url(forced))
    assert response.status_code in (404, 500) and not response.streaming
    assert data[:64] not in response.content
    # ...and no key-encryption key decrypts media directly.
    ring = vault.keyring()
    size = backup.stat().st_size
    blob = backup.read_bytes()
    for kek in ring.keys.values():
        with pytest.raises(IntegrityError):
            StreamReader(kek, lambda offset, length: blob[offset : offset + length], size)


def test_failed_object_delete_leaves_the_erasure_in_force(
    cast: Cast,
    vault_env: VaultEnv,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording = make_recording(first_session(cast), b"k" * 1000, created_by=cast.therapist_a)

    def broken_delete(name: str) -> None:
        raise OSError("storage is down")

    monkeypatch.setattr(vault.store(), "delete", broken_delete)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_recording(actor=cast.therapist_a, recording=recording)
    row = Recording.objects.get(pk=recording.pk)
    assert row.state == State.ERASED and row.wrapped_key is None
    # The object is still there for gc to remove; its name is kept on the row for that.
    assert vault_env.object_path(recording).exists()
    assert row.object_name == vault.object_name_for(recording)


def _erase_url(recording: Recording) -> str:
    return f"/recordings/{recording.public_id}/erase/"


def test_erase_page_warns_and_needs_confirmation(
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    recording = make_recording(first_session(cast), b"e" * 1000, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    page = http.get(_erase_url(recording))
    assert page.status_code == 200
    assert b"cannot be undone" in page.content and b"csrfmiddlewaretoken" in page.content
    unconfirmed = http.post(_erase_url(recording), {})
    assert unconfirmed.status_code == 200 and b"tick the box" in unconfirmed.content
    assert Recording.objects.get(pk=recording.pk).state == State.READY
    done = http.post(_erase_url(recording), {"confirm": "on"})
    assert done.status_code == 302
    assert done["Location"] == f"/sessions/{recording.session.public_id}/"
    assert Recording.objects.get(pk=recording.pk).state == State.ERASED
    assert http.get(_erase_url(recording)).status_code == 404
    assert http.get(media_url(recording)).status_code == 404


def test_erase_needs_csrf_token(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    from tests.conftest import sign_in

    recording = make_recording(first_session(cast), b"c" * 100, created_by=cast.therapist_a)
    http = sign_in(HttpClient(enforce_csrf_checks=True), cast.therapist_a)
    assert http.post(_erase_url(recording), {"confirm": "on"}).status_code == 403
    assert Recording.objects.get(pk=recording.pk).state == State.READY


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("supervisor", 403),
        ("client_user_a", 403),
        ("therapist_b", 404),
        ("admin", 404),
        ("researcher", 404),
        ("other_clinic_therapist", 404),
        ("trainee", 404),
    ],
)
def test_only_the_treating_therapist_may_erase(
    persona: str,
    status: int,
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    recording = make_recording(first_session(cast), b"p" * 100, created_by=cast.therapist_a)
    # Shared with Cora (issue 5), so she can see it: her answer is 403, not 404.
    share_with_client(actor=cast.therapist_a, session=first_session(cast), shared=True)
    http = signed_in(getattr(cast, persona))
    assert http.get(_erase_url(recording)).status_code == status
    assert http.post(_erase_url(recording), {"confirm": "on"}).status_code == status
    assert Recording.objects.get(pk=recording.pk).state == State.READY


# ---- retention -------------------------------------------------------------------------------


def _session_on(cast: Cast, day: dt.date, which: str = "a") -> TherapySession:
    client = cast.client_a if which == "a" else cast.client_b
    therapist = cast.therapist_a if which == "a" else cast.therapist_b
    moment = timezone.make_aware(dt.datetime.combine(day, dt.time(10, 0)))
    return schedule_session(
        actor=therapist, episode=client.episodes.get(), scheduled_at=moment, modality="in_person"
    )


def test_retention_rules_by_date(
    cast: Cast,
    vault_env: VaultEnv,
    django_capture_on_commit_callbacks: Any,
) -> None:
    today = dt.date(2030, 6, 30)
    RetentionRule.objects.create(
        clinic=cast.clinic, kind=Kind.VIDEO, anchor=RetentionRule.Anchor.SESSION, days=30
    )
    RetentionRule.objects.create(
        clinic=cast.clinic, kind=Kind.AUDIO, anchor=RetentionRule.Anchor.DISCHARGE, days=10
    )
    # Another clinic's rule never touches this clinic's recordings.
    RetentionRule.objects.create(
        clinic=cast.other_clinic, kind=Kind.AUDIO, anchor=RetentionRule.Anchor.SESSION, days=0
    )

    def video(day: dt.date) -> Recording:
        return make_recording(
            _session_on(cast, day),
            b"v" * 50,
            kind=Kind.VIDEO,
            content_type="video/webm",
            created_by=cast.therapist_a,
        )

    video_due = video(today - dt.timedelta(days=30))  # the 30th day: due today
    video_kept = video(today - dt.timedelta(days=29))
    audio_a = make_recording(
        _session_on(cast, dt.date(2030, 5, 1)), b"a" * 50, created_by=cast.therapist_a
    )
    audio_b = make_recording(
        _session_on(cast, dt.date(2030, 5, 1), "b"), b"b" * 50, created_by=cast.therapist_b
    )
    # Cora discharged 10 days ago: due; Colin discharged 9 days ago: kept.
    episode_a, episode_b = cast.client_a.episodes.get(), cast.client_b.episodes.get()
    discharge_episode(
        actor=cast.therapist_a, episode=episode_a, end_date=today - dt.timedelta(days=10)
    )
    discharge_episode(
        actor=cast.therapist_b, episode=episode_b, end_date=today - dt.timedelta(days=9)
    )

    report = erasure.run_retention(today=today, dry_run=True)
    assert {item.recording_id for item in report} == {
        str(video_due.public_id),
        str(audio_a.public_id),
    }
    by_id = {item.recording_id: item for item in report}
    assert by_id[str(video_due.public_id)].reason == "audio and video: 30 days after the session"
    assert by_id[str(video_due.public_id)].due == today
    assert by_id[str(audio_a.public_id)].reason == "audio: 10 days after discharge"
    assert by_id[str(audio_a.public_id)].kind == Kind.AUDIO
    text = "\n".join(item.line() for item in report)
    for name in ("Cora", "Colin", "Client", "Bright"):
        assert name not in text
    # A dry run erases nothing and writes nothing.
    assert Recording.objects.filter(state=State.ERASED).count() == 0
    assert events("recording.erased") == []

    with django_capture_on_commit_callbacks(execute=True):
        erased = erasure.run_retention(today=today, dry_run=False)
    assert {item.recording_id for item in erased} == set(by_id)
    states = {r.pk: r.state for r in Recording.objects.all()}
    assert states[video_due.pk] == states[audio_a.pk] == State.ERASED
    assert states[video_kept.pk] == states[audio_b.pk] == State.READY
    assert not vault_env.object_path(video_due).exists()
    assert {e.changes["reason"] for e in events("recording.erased")} == {"retention rule"}
    assert all(e.actor_id is None for e in events("recording.erased"))
    # The next day Colin's audio and the younger video are due; erased ones are not listed.
    later = erasure.run_retention(today=today + dt.timedelta(days=1), dry_run=True)
    assert {item.recording_id for item in later} == {
        str(audio_b.public_id),
        str(video_kept.public_id),
    }


def test_vault_retention_command(
    cast: Cast,
    vault_env: VaultEnv,
    django_capture_on_commit_callbacks: Any,
) -> None:
    RetentionRule.objects.create(
        clinic=cast.clinic, kind=Kind.AUDIO, anchor=RetentionRule.Anchor.SESSION, days=7
    )
    due = make_recording(
        _session_on(cast, timezone.localdate() - dt.timedelta(days=8)),
        b"d",
        created_by=cast.therapist_a,
    )
    kept = make_recording(
        _session_on(cast, timezone.localdate() - dt.timedelta(days=6)),
        b"k",
        created_by=cast.therapist_a,
    )
    out = StringIO()
    call_command("vault", "retention", "--dry-run", stdout=out)
    assert str(due.public_id) in out.getvalue() and str(kept.public_id) not in out.getvalue()
    assert "1 recording(s) would be erased" in out.getvalue()
    assert "Cora" not in out.getvalue()
    assert Recording.objects.get(pk=due.pk).state == State.READY
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("vault", "retention", stdout=out)
    assert "1 recording(s) erased" in out.getvalue()
    assert Recording.objects.get(pk=due.pk).state == State.ERASED
    assert Recording.objects.get(pk=kept.pk).state == State.READY


def test_retention_leaves_undischarged_episodes_alone(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    RetentionRule.objects.create(
        clinic=cast.clinic, kind=Kind.AUDIO, anchor=RetentionRule.Anchor.DISCHARGE, days=0
    )
    make_recording(_session_on(cast, dt.date(2020, 1, 1)), b"a", created_by=cast.therapist_a)
    assert erasure.run_retention(today=dt.date(2035, 1, 1), dry_run=True) == []


def test_retention_task_erases_due_recordings(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    RetentionRule.objects.create(
        clinic=cast.clinic, kind=Kind.AUDIO, anchor=RetentionRule.Anchor.SESSION, days=1
    )
    old = make_recording(
        _session_on(cast, timezone.localdate() - dt.timedelta(days=3)),
        b"o",
        created_by=cast.therapist_a,
    )
    fresh = make_recording(
        _session_on(cast, timezone.localdate()), b"f", created_by=cast.therapist_a
    )
    result = erasure.apply_retention.enqueue()  # the test settings run tasks immediately
    assert result.return_value == 1
    assert Recording.objects.get(pk=old.pk).state == State.ERASED
    assert Recording.objects.get(pk=fresh.pk).state == State.READY


# ---- KEK rotation ----------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keys(*args: str) -> str:
    out = StringIO()
    call_command("keys", *args, stdout=out)
    return out.getvalue()


def test_keys_init_refuses_to_overwrite(
    vault_env: VaultEnv,
    settings: Any,
    tmp_path: Path,
) -> None:
    with pytest.raises(CommandError, match="refusing to replace"):
        _keys("init")
    settings.KEK_FILE = tmp_path / "fresh" / "kek.json"
    assert "Created" in _keys("init")
    ring = load_keyring(settings.KEK_FILE)
    assert ring.active == 1 and set(ring.keys) == {1}
    assert (settings.KEK_FILE.stat().st_mode & 0o077) == 0
    with pytest.raises(CommandError, match="refusing to replace"):
        _keys("init")
    assert load_keyring(settings.KEK_FILE).keys == ring.keys


def test_rotate_rewraps_keys_without_touching_media(
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = first_session(cast)
    sizes = (1, 70_000, 300_000)
    recordings = [
        make_recording(session, pseudo_random_bytes(n, seed=n), created_by=cast.therapist_a)
        for n in sizes
    ]
    gone = make_recording(session, b"gone", created_by=cast.therapist_a)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_recording(actor=cast.therapist_a, recording=gone)
    before = {r.pk: _digest(vault_env.object_path(r)) for r in recordings}
    wrapped_before = {r.pk: bytes(r.wrapped_key or b"") for r in recordings}
    assert "version 1 (active): 3 recording(s)" in _keys("status")

    output = _keys("rotate")
    assert "Re-wrapped 3 recording key(s)" in output
    ring = load_keyring(vault_env.kek_file)
    assert ring.active == 2 and set(ring.keys) == {1, 2}  # the old version is kept
    http = signed_in(cast.therapist_a)
    for recording, n in zip(recordings, sizes, strict=True):
        row = Recording.objects.get(pk=recording.pk)
        assert row.kek_version == 2 and bytes(row.wrapped_key or b"") != wrapped_before[row.pk]
        assert _digest(vault_env.object_path(row)) == before[row.pk]
        assert body(http.get(media_url(row))) == pseudo_random_bytes(n, seed=n)
    assert Recording.objects.get(pk=gone.pk).wrapped_key is None
    status = _keys("status")
    assert "version 1: 0 recording(s)" in status
    assert "version 2 (active): 3 recording(s)" in status
    assert ring.keys[1].hex() not in status and ring.keys[2].hex() not in status
    [event] = events("vault.kek_rotated")
    assert event.changes == {"active_version": 2, "rewrapped": 3, "failed": 0}
    # New recordings use the new version at once.
    assert make_recording(session, b"new", created_by=cast.therapist_a).kek_version == 2

    # Retiring happens only when asked, and the recordings still play without version 1.
    _keys("rotate", "--retire-old")
    ring = load_keyring(vault_env.kek_file)
    assert ring.active == 3 and set(ring.keys) == {3}
    for recording, n in zip(recordings, sizes, strict=True):
        assert body(http.get(media_url(recording))) == pseudo_random_bytes(n, seed=n)
        assert _digest(vault_env.object_path(recording)) == before[recording.pk]


def test_interrupted_rotation_is_finished_by_rewrap(
    cast: Cast,
    vault_env: VaultEnv,
    signed_in: Callable[[User], HttpClient],
) -> None:
    session = first_session(cast)
    old = make_recording(session, b"old" * 100, created_by=cast.therapist_a)
    # A rotation that stopped right after saving the new keyring: the row is still on v1.
    save_keyring(rotated(load_keyring(vault_env.kek_file)), vault_env.kek_file)
    http = signed_in(cast.therapist_a)
    assert body(http.get(media_url(old))) == b"old" * 100
    assert Recording.objects.get(pk=old.pk).kek_version == 1
    assert "Re-wrapped 1 recording key(s)" in _keys("rewrap")
    assert Recording.objects.get(pk=old.pk).kek_version == 2
    assert "Re-wrapped 0" in _keys("rewrap")  # finishing twice is harmless
    assert body(http.get(media_url(old))) == b"old" * 100


def test_retire_keeps_versions_still_in_use(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    recording = make_recording(first_session(cast), b"x", created_by=cast.therapist_a)
    rotation.rotate()
    # A row that was missed (say, created during the rotation) still uses version 1.
    Recording.objects.filter(pk=recording.pk).update(kek_version=1, wrapped_key=b"\x01" * 61)
    assert rotation.retire_unused() == []
    assert set(load_keyring(vault_env.kek_file).keys) == {1, 2}


def test_rotate_refuses_keys_from_the_environment(
    vault_env: VaultEnv,
    settings: Any,
) -> None:
    settings.KEK_TEXT = vault_env.kek_file.read_text()
    with pytest.raises(CommandError, match="RELISTEN_KEK"):
        _keys("rotate")
    with pytest.raises(CommandError, match="RELISTEN_KEK"):
        _keys("init")


def test_status_names_missing_versions(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    recording = make_recording(first_session(cast), b"x", created_by=cast.therapist_a)
    Recording.objects.filter(pk=recording.pk).update(kek_version=7)
    with pytest.raises(CommandError, match="not in the keyring: 7"):
        _keys("status")


def test_rotation_rewraps_voice_enrolment_keys_too(cast: Cast, vault_env: VaultEnv) -> None:
    """Enrolment samples are vault data too: retiring an old KEK must not orphan them."""
    from relisten.lib.vault.keys import unwrap_key, wrap_key
    from relisten.lib.vault.stream import new_data_key
    from relisten.transcripts.models import VoiceEnrolment

    ring = load_keyring(vault_env.kek_file)
    key = new_data_key()
    enrolment = VoiceEnrolment(user=cast.therapist_a, kek_version=ring.active)
    enrolment.wrapped_key = wrap_key(ring.keys[ring.active], key, str(enrolment.public_id))
    enrolment.save()
    old_version = ring.active
    rotation.rotate()
    assert rotation.retire_unused() == [old_version]
    enrolment.refresh_from_db()
    new_ring = load_keyring(vault_env.kek_file)
    assert enrolment.kek_version == new_ring.active != old_version
    assert unwrap_key(new_ring.keys[new_ring.active], bytes(enrolment.wrapped_key),
                      str(enrolment.public_id)) == key
