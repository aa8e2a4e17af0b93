"""`relisten vault scrub`: every READY recording decrypted end to end; damage is named."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from relisten.core.personas import Cast
from relisten.lib.vault.stream import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE
from relisten.recordings import scrub
from relisten.recordings.models import Recording, State
from tests.test_media_playback import (
    VaultEnv,
    events,
    first_session,
    flip_bit,
    make_recording,
    pseudo_random_bytes,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)


def _three(cast: Cast) -> list[Recording]:
    session = first_session(cast)
    return [
        make_recording(
            session, pseudo_random_bytes(CHUNK_SIZE * 4 + n, seed=n), created_by=cast.therapist_a
        )
        for n in (1, 2, 3)
    ]


def test_healthy_vault_scrubs_clean(cast: Cast, vault_env: VaultEnv) -> None:
    _three(cast)
    # Not READY: not scrubbed (an upload in progress has no complete object yet).
    make_recording(first_session(cast), b"u", created_by=cast.therapist_a, state=State.UPLOADING)
    report = scrub.scrub_all()
    assert report.ok and report.checked == 3 and report.damaged == []
    assert events("vault.integrity_failure") == []


def test_scrub_names_each_damaged_recording(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    healthy, rotten, missing = _three(cast)
    mismatched, swapped = _three(cast)[:2]
    # A flipped bit in the middle of the object, which only a full pass would notice.
    flip_bit(vault_env.object_path(rotten), HEADER_SIZE + 2 * (CHUNK_SIZE + TAG_SIZE) + 77)
    vault_env.object_path(missing).unlink()
    Recording.objects.filter(pk=mismatched.pk).update(sha256="0" * 64)
    Recording.objects.filter(pk=swapped.pk).update(wrapped_key=healthy.wrapped_key)

    report = scrub.scrub_all()
    assert report.checked == 6 and not report.ok
    damaged = dict(report.damaged)
    assert set(damaged) == {str(r.public_id) for r in (rotten, missing, mismatched, swapped)}
    assert "chunk" in damaged[str(rotten.public_id)]
    assert "missing" in damaged[str(missing.public_id)]
    assert "SHA-256" in damaged[str(mismatched.public_id)]
    for recording in (rotten, missing, mismatched, swapped):
        assert events("vault.integrity_failure", target_id=str(recording.public_id))
    assert not events("vault.integrity_failure", target_id=str(healthy.public_id))


def test_vault_scrub_command_exit_code(
    cast: Cast,
    vault_env: VaultEnv,
) -> None:
    healthy, rotten, _ = _three(cast)
    out = StringIO()
    call_command("vault", "scrub", stdout=out)
    assert "3 recording(s) checked" in out.getvalue()
    flip_bit(vault_env.object_path(rotten), HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 5)
    with pytest.raises(CommandError) as failure:
        call_command("vault", "scrub", stdout=StringIO())
    assert str(rotten.public_id) in str(failure.value)
    assert str(healthy.public_id) not in str(failure.value)
