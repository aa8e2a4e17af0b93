"""The demo clinic that `make run` loads: a newcomer must find a recorded, transcribed session."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from relisten.accounts.models import User
from relisten.lib.vault.stream import StreamReader
from relisten.recordings import vault
from relisten.recordings.models import Recording, State
from relisten.transcripts.models import RunState, Transcript
from tests.conftest import sign_in
from tests.test_media_playback import VaultEnv, vault_env_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(vault_env: VaultEnv, settings: Any) -> Recording:
    settings.DEMO_MODE = True
    call_command("load_demo")
    return Recording.objects.get()


def test_demo_session_is_recorded_encrypted_and_transcribed(demo: Recording) -> None:
    assert demo.state == State.READY
    assert demo.duration_s is not None and 29 < demo.duration_s < 31
    # At rest it is ciphertext: the WebM magic number is not in the stored object.
    stored = vault.store().read_range(demo.object_name, 0, 4096)
    assert b"\x1a\x45\xdf\xa3" not in stored
    reader: StreamReader = vault.open_reader(demo)
    assert reader.read(0, 4) == b"\x1a\x45\xdf\xa3"
    run = demo.runs.get()
    assert run.state == RunState.DONE
    transcript = Transcript.objects.get(recording=demo)
    words = " ".join(transcript.segments.values_list("text", flat=True)).lower()
    assert transcript.segments.count() >= 5
    assert "back up their data" in words  # what the AMI speaker says at ~0:05


def test_demo_loads_once(demo: Recording) -> None:
    call_command("load_demo")
    assert Recording.objects.count() == 1


def test_demo_therapist_and_client_see_the_session(demo: Recording) -> None:
    tess = User.objects.get(username="tess.therapist")
    page = sign_in(HttpClient(), tess).get(
        reverse("clients:session", kwargs={"session_id": demo.session.public_id}))
    assert page.status_code == 200
    assert "back up their data" in page.content.decode()
