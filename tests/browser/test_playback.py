"""A stored, encrypted recording plays and seeks in a real browser (Chromium)."""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from playwright.sync_api import Browser
from pytest_django.live_server_helper import LiveServer

from relisten.core.personas import Cast
from tests.conftest import sign_in
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)

SPEECH = Path(__file__).resolve().parents[2].parent / "shared/data/speech/ljspeech/LJ001-0001.wav"


def _speech() -> bytes:
    if not SPEECH.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"speech sample missing: {SPEECH} (../shared is required here)")
        pytest.skip(f"speech sample missing: {SPEECH}")
    return SPEECH.read_bytes()


def _duration(path: Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


@pytest.mark.browser
def test_recording_plays_and_seeks_in_chromium(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    screenshot_dir: Path,
) -> None:
    data = _speech()
    session = first_session(cast)
    recording = make_recording(session, data, created_by=cast.therapist_a,
                               content_type="audio/wav")
    http = sign_in(HttpClient(), cast.therapist_a)
    cookie = http.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context()
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie,
                          "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/sessions/{session.public_id}/")
    audio = page.locator(f'audio[src$="/recordings/{recording.public_id}/media"]')
    assert audio.count() == 1
    expected = _duration(SPEECH)
    state: Any = audio.evaluate(
        """async (el) => {
            if (el.readyState < 1) {
                await new Promise((ok, bad) => {
                    el.addEventListener('loadedmetadata', ok, {once: true});
                    el.addEventListener('error', () => bad(new Error('media error')), {once: true});
                });
            }
            const target = el.duration / 2;
            await new Promise((ok) => { el.addEventListener('seeked', ok, {once: true});
                                        el.currentTime = target; });
            return {duration: el.duration, position: el.currentTime, error: el.error};
        }"""
    )
    assert state["error"] is None
    assert abs(state["duration"] - expected) < 0.1
    assert abs(state["position"] - expected / 2) < 0.2
    page.screenshot(path=str(screenshot_dir / "08-session-recording-player.png"), full_page=True)
    context.close()
