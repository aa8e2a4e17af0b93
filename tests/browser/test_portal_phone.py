"""The client portal on a 375 px phone (and the home pages) in Chromium: nothing wider than the
screen, every control big enough to tap, and screenshots at phone and desktop width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from playwright.sync_api import Browser, BrowserContext, Page
from pytest_django.live_server_helper import LiveServer

from relisten.accounts.models import User
from relisten.clients.actions import share_for_supervision, share_with_client
from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import RunState, TranscriptRun
from tests.conftest import sign_in
from tests.test_media_playback import VaultEnv, make_recording, vault_env_fixture
from tests.test_transcript_search import make_transcript

__all__ = ["vault_env_fixture"]
pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
TAP = 44  # px: the smallest comfortable tap target (WCAG 2.5.5)
AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"

# Every control a person taps on the page: links, buttons, fields (hidden ones aside).
TARGETS_JS = """
() => [...document.querySelectorAll('header a, header button, main a, main button, main input')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null
          && !el.closest('p, td, li.inline-text'))
  .map(el => { const r = el.getBoundingClientRect();
               return {text: (el.innerText || el.value || el.name || '').trim().slice(0, 40),
                       width: r.width, height: r.height}; })
"""


def _context(browser: Browser, live_server: LiveServer, user: User,
             viewport: dict[str, int]) -> BrowserContext:
    http = sign_in(HttpClient(), user)
    cookie = http.cookies[django_settings.SESSION_COOKIE_NAME].value
    # bypass_csp only so that axe-core can be injected; the pages' own code never needs it.
    context = browser.new_context(viewport=viewport, bypass_csp=True)  # type: ignore[arg-type]
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie,
                          "url": live_server.url}])
    return context


def _no_horizontal_overflow(page: Page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width}px wide on a {width}px screen"


def _serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate("async () => (await axe.run(document)).violations")
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def _small_targets(page: Page) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = page.evaluate(TARGETS_JS)
    assert targets, "no controls found: the selector is wrong"
    return [t for t in targets if t["height"] < TAP or t["width"] < TAP]


def _data(cast: Cast, tmp_path: Path) -> tuple[Recording, Recording]:
    """Cora's two sessions recorded and shared with her (one transcribed, with a bookmark);
    the therapist has a failed transcription and a comment from Cora to look at."""
    episode = cast.client_a.episodes.get()
    first, second = episode.sessions.get(number=1), episode.sessions.get(number=2)
    one = make_recording(first, b"audio " * 300, created_by=cast.therapist_a, scratch=tmp_path)
    make_transcript(one, [("S1", "How has the week been since we last met?"),
                          ("S2", "Calmer. I went back to the garden on Sunday.")])
    two = make_recording(second, b"audio " * 300, created_by=cast.therapist_a, scratch=tmp_path)
    TranscriptRun.objects.create(recording=two, state=RunState.FAILED,
                                 error="The file could not be read.")
    Recording.objects.filter(pk=one.pk).update(duration_s=3120)
    for session in (first, second):
        share_with_client(actor=cast.therapist_a, session=session, shared=True)
    share_for_supervision(actor=cast.therapist_a, session=first, shared=True)
    Comment.objects.create(recording=one, author=cast.client_user_a, start=754, scope=Scope.PRIVATE,
                           body="The part about the garden, to listen to again")
    Comment.objects.create(recording=one, author=cast.client_user_a, start=61, scope=Scope.CLIENT,
                           body="Could we talk about this next time?")
    return one, two


def test_portal_fits_a_phone_and_pages_are_photographed(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    tmp_path: Path, screenshot_dir: Path,
) -> None:
    one, two = _data(cast, tmp_path)
    portal = f"{live_server.url}/me/{cast.client_a.public_id}/"

    phone = _context(browser, live_server, cast.client_user_a, PHONE).new_page()
    phone.goto(portal)
    assert phone.locator("h1").inner_text().startswith("My care")
    sessions = phone.locator("#shared-sessions a")
    assert sessions.count() == 2
    assert "52 min · Transcript ready" in sessions.nth(1).inner_text()
    assert phone.locator("#my-notes").get_by_text("Session 1 at 12:34").count() == 1
    _no_horizontal_overflow(phone, PHONE["width"])
    assert _small_targets(phone) == []
    assert _serious_violations(phone) == []
    phone.screenshot(path=screenshot_dir / "40-portal-phone.png", full_page=True)

    # Searching her own words works on the phone too.
    phone.fill("#portal-q", "garden")
    phone.locator("form.portal-search button").click()
    phone.wait_for_url("**/transcripts/search/?q=garden")
    assert phone.locator(".results mark").first.inner_text() == "garden"
    _no_horizontal_overflow(phone, PHONE["width"])

    # Opening a shared session takes her to its player and transcript.
    phone.goto(portal)
    sessions.nth(1).click()
    phone.wait_for_url(f"**/recordings/{one.public_id}/transcript/")
    assert phone.locator("#player, audio").count() >= 1
    _no_horizontal_overflow(phone, PHONE["width"])

    desktop = _context(browser, live_server, cast.client_user_a, DESKTOP).new_page()
    desktop.goto(portal)
    desktop.screenshot(path=screenshot_dir / "41-portal-desktop.png", full_page=True)


def test_home_pages_fit_a_phone_and_are_photographed(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    tmp_path: Path, screenshot_dir: Path,
) -> None:
    _data(cast, tmp_path)
    shots = (("therapist_a", "42-home-therapist"), ("supervisor", "43-home-supervisor"))
    for persona, name in shots:
        user = getattr(cast, persona)
        for viewport, suffix in ((PHONE, "phone"), (DESKTOP, "desktop")):
            page = _context(browser, live_server, user, viewport).new_page()
            page.goto(f"{live_server.url}/")
            assert page.locator("h1").inner_text() == f"Welcome, {user.label()}"
            if viewport is PHONE:
                _no_horizontal_overflow(page, PHONE["width"])
                assert _serious_violations(page) == []
            page.screenshot(path=screenshot_dir / f"{name}-{suffix}.png", full_page=True)
    therapist = _context(browser, live_server, cast.therapist_a, PHONE).new_page()
    therapist.goto(f"{live_server.url}/")
    attention = therapist.locator("#attention").inner_text()
    assert "Transcription failed" in attention and "New comment from Cora (client)" in attention
    supervisor = _context(browser, live_server, cast.supervisor, PHONE).new_page()
    supervisor.goto(f"{live_server.url}/")
    assert "Cora Client, session 1" in supervisor.locator("#queue").inner_text()


def test_therapist_shares_from_the_panel(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    tmp_path: Path, screenshot_dir: Path,
) -> None:
    _, two = _data(cast, tmp_path)
    page = _context(browser, live_server, cast.therapist_a, DESKTOP).new_page()
    page.goto(f"{live_server.url}/sessions/{two.session.public_id}/")
    panel = page.locator("section.sharing")
    assert "Shared: Cora can play it" in panel.inner_text()
    panel.get_by_role("button", name="Share for supervision").click()
    page.wait_for_load_state()
    assert "Session 2 is now in the supervisor’s review queue." in page.locator(
        ".messages").inner_text()
    assert "it is in Dr Sam Reyes’s review queue" in panel.inner_text()
    panel.screenshot(path=screenshot_dir / "44-session-sharing-panel.png")
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document.querySelector('section.sharing'))).violations")
    assert [v["id"] for v in found if v["impact"] in ("serious", "critical")] == []
    two.session.refresh_from_db()
    assert two.session.shared_for_supervision is True
