"""The comments panel in Chromium: "C" opens a comment at the player's moment, the comment is
added in place, its marker on the timeline and its time both seek, and the client sees what
was shared with them and not what was not."""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.accounts.models import User
from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from tests.conftest import sign_in
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)

SPEECH = Path(__file__).resolve().parents[2].parent / "shared/data/speech/ljspeech/LJ001-0001.wav"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
PRIVATE_NOTE = "Tess's private note: check the sleep diary."
AT_3_S = "() => Math.abs(document.getElementById('player').currentTime - 3) < 0.3"


def _speech() -> bytes:
    if not SPEECH.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"speech sample missing: {SPEECH} (../shared is required here)")
        pytest.skip(f"speech sample missing: {SPEECH}")
    return SPEECH.read_bytes()


def _context(browser: Browser, live_server: LiveServer, user: User, **options: Any
             ) -> BrowserContext:
    http = sign_in(HttpClient(), user)
    cookie = http.cookies[django_settings.SESSION_COOKIE_NAME].value
    # bypass_csp only so that axe-core can be injected; the page's own code never needs it.
    context = browser.new_context(bypass_csp=True, **options)
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie,
                          "url": live_server.url}])
    return context


def _open(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.locator("#player").evaluate(
        """async (el) => { if (el.readyState < 1) await new Promise((ok) =>
               el.addEventListener('loadedmetadata', ok, {once: true})); }""")
    return page, errors


def _position(page: Page) -> float:
    return float(page.locator("#player").evaluate("(el) => el.currentTime"))


def _seek_player(page: Page, t: float) -> None:
    page.locator("#player").evaluate(
        """async (el, t) => { await new Promise((ok) => {
               el.addEventListener('seeked', ok, {once: true}); el.currentTime = t; }); }""", t)


def _serious_violations(page: Page, selector: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async (sel) => (await axe.run(document.querySelector(sel))).violations", selector)
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.browser
def test_comment_at_the_moment_then_markers_and_times_seek(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    screenshot_dir: Path,
) -> None:
    session = first_session(cast)
    session.shared_with_client = True
    session.save(update_fields=["shared_with_client"])
    data = _speech()
    with wave.open(str(SPEECH)) as handle:
        duration = handle.getnframes() / handle.getframerate()
    recording = make_recording(session, data, created_by=cast.therapist_a,
                               content_type="audio/wav")
    Recording.objects.filter(pk=recording.pk).update(duration_s=duration)
    Comment.objects.create(recording=recording, author=cast.therapist_a, start=1.0,
                           body=PRIVATE_NOTE, scope=Scope.PRIVATE)
    url = f"{live_server.url}/recordings/{recording.public_id}/transcript/"

    therapist = _context(browser, live_server, cast.therapist_a)
    page, errors = _open(therapist, url)
    expect(page.locator("#timeline-markers .marker")).to_have_count(1)

    # "C" at 3 s: the form opens at 0:03 with the cursor in the comment box.
    _seek_player(page, 3.0)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("c")
    expect(page.locator("#comment-at")).to_have_value("0:03")
    expect(page.locator("#comment-body")).to_be_focused()
    expect(page.locator("[data-at-label]")).to_have_text("0:03")
    page.keyboard.type("She slows down here; worth hearing together.")
    page.locator("#comment-tags").fill("pace")
    page.get_by_label("Care team and the client").check()
    page.get_by_role("button", name="Add comment").click()

    # Added in place (no page load): the status says so and the thread is listed.
    expect(page.locator("[data-comments-status]")).to_have_text("Comment added.")
    thread = page.locator(".comment-thread", has_text="She slows down here")
    expect(thread).to_have_count(1)
    expect(thread.locator(".scope-badge")).to_have_text("Shared with the client")
    page.screenshot(path=str(screenshot_dir / "30-comments-workspace.png"))
    marker = page.get_by_role("button", name="Comment at 0:03 by You")
    expect(marker).to_have_count(1)
    left = float(marker.evaluate("(el) => parseFloat(el.style.left)"))
    assert abs(left - 3 / duration * 100) < 0.5
    saved = Comment.objects.get(body="She slows down here; worth hearing together.")
    assert (saved.start, saved.scope, saved.tags) == (3.0, Scope.CLIENT, ["pace"])

    # The marker and the comment's time both seek the player.
    _seek_player(page, 0.0)
    marker.click()
    page.wait_for_function(AT_3_S)
    _seek_player(page, 6.0)
    thread.get_by_role("link", name="Play from 0:03").click()
    page.wait_for_function(AT_3_S)
    assert page.url.startswith(url)  # seeking, not following the link

    # An empty comment is refused in place, with the reason, and nothing is saved.
    page.locator("[data-new-comment-box] > summary").click()
    page.locator("#comment-body").fill("   ")
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator("#comment-body-error")).to_contain_text("the comment is empty")
    expect(page.locator("#comment-body")).to_be_focused()
    assert Comment.objects.filter(recording=recording).count() == 2

    assert _serious_violations(page, "#comments") == []
    assert errors == []
    therapist.close()

    # The client sees the comment shared with her, never Tess's private note, and writes
    # only for herself or for her therapist.
    phone = _context(browser, live_server, cast.client_user_a,
                     viewport={"width": 375, "height": 812})
    page, errors = _open(phone, url)
    panel = page.locator("#comments")
    expect(panel).to_contain_text("She slows down here; worth hearing together.")
    expect(panel).not_to_contain_text(PRIVATE_NOTE)
    expect(page.locator("#timeline-markers .marker")).to_have_count(1)
    page.get_by_text("Comment at 0:00").click()  # the form opens
    expect(panel.get_by_label("Only me")).to_be_checked()
    expect(panel.get_by_label("Share with my therapist")).to_have_count(1)
    expect(panel.get_by_label("Care team and the client")).to_have_count(0)
    assert _serious_violations(page, "#comments") == []
    page.screenshot(path=str(screenshot_dir / "31-comments-client-phone.png"), full_page=True)
    assert errors == []
    phone.close()
