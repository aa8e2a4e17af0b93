"""The review workspace in Chromium: the transcript beside the player follows it and drives it.

Click a word and the player goes there; the speed control, the skip buttons, the position bar,
the keyboard shortcuts and search within the session all move the real <audio> element. Then
the session page is checked for serious accessibility problems and photographed at desktop
and phone width (375 px, where nothing may scroll sideways).
"""

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

from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.transcripts.models import Word
from tests.conftest import sign_in
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)
from tests.test_transcript_search import make_transcript

SPEECH = Path(__file__).resolve().parents[2].parent / "shared/data/speech/ljspeech/LJ001-0001.wav"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
# What LJ001-0001 says, in four passages of 4.8 s over the recording played twice (19.3 s).
LINES = [
    ("S1", "Printing, in the only sense with which we are at present concerned,"),
    ("S2", "differs from most if not from all the arts and crafts"),
    ("S1", "represented in the ~Exhibition. Printing, in the only sense"),
    ("S2", "with which we are at present concerned, differs from most arts"),
]


def _speech_twice(folder: Path) -> tuple[bytes, float]:
    """The LJ Speech clip twice over, so that skipping 10 s has room both ways."""
    if not SPEECH.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"speech sample missing: {SPEECH} (../shared is required here)")
        pytest.skip(f"speech sample missing: {SPEECH}")
    with wave.open(str(SPEECH)) as source:
        params = source.getparams()
        frames = source.readframes(source.getnframes())
    target = folder / "twice.wav"
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + frames)
    return target.read_bytes(), 2 * params.nframes / params.framerate


def _context(browser: Browser, live_server: LiveServer, user: Any, **options: Any
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
    expect(page.locator("#workspace")).to_have_attribute("data-ready", "1")
    page.locator("#player").evaluate(
        """async (el) => { if (el.readyState < 1) await new Promise((ok, bad) => {
               el.addEventListener('loadedmetadata', ok, {once: true});
               el.addEventListener('error', () => bad(new Error('media error')), {once: true});
           }); }""")
    return page, errors


def _position(page: Page) -> float:
    return float(page.locator("#player").evaluate("(el) => el.currentTime"))


def _wait_at(page: Page, t: float, within: float = 0.15) -> None:
    page.wait_for_function(
        "([t, d]) => Math.abs(document.getElementById('player').currentTime - t) < d",
        arg=[t, within])


def _seek(page: Page, t: float) -> None:
    page.evaluate("(t) => document.dispatchEvent(new CustomEvent('relisten:seek', "
                  "{detail: {t}}))", t)
    _wait_at(page, t)


def _serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document.getElementById('workspace'))).violations")
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.browser
def test_transcript_and_controls_drive_the_player(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    tmp_path: Path, screenshot_dir: Path,
) -> None:
    data, duration = _speech_twice(tmp_path)
    session = first_session(cast)
    recording = make_recording(session, data, created_by=cast.therapist_a,
                               content_type="audio/wav")
    Recording.objects.filter(pk=recording.pk).update(duration_s=duration)
    transcript = make_transcript(recording, LINES, seconds_per_line=duration / len(LINES))
    url = f"{live_server.url}/sessions/{session.public_id}/"

    context = _context(browser, live_server, cast.therapist_a,
                       viewport={"width": 1280, "height": 900})
    page, errors = _open(context, url)
    player = page.locator("#player")

    # Click a word: the player goes to that word's start, and the word and passage light up.
    second = transcript.segments.get(index=1)
    word = Word.objects.get(segment=second, index=4)  # "not"
    target = page.locator(f"#seg-{second.public_id} .seg-text > span").nth(4)
    expect(target).to_have_text("not")
    target.click()
    _wait_at(page, word.start, within=0.05)
    expect(target).to_have_class("now")
    expect(page.locator(f"#seg-{second.public_id}")).to_have_attribute("aria-current", "true")
    expect(page.locator("#ws-time")).to_contain_text(f"0:0{int(word.start)} / 0:19")

    # Speed 0.75 to 2, from the control and from the keyboard.
    page.select_option("#ws-speed", "1.5")
    assert player.evaluate("(el) => el.playbackRate") == 1.5
    page.locator("h1").click()  # focus leaves the control: shortcuts apply
    page.keyboard.press(".")
    assert player.evaluate("(el) => el.playbackRate") == 1.75
    page.keyboard.press(",")
    page.keyboard.press(",")
    assert player.evaluate("(el) => el.playbackRate") == 1.25
    expect(page.locator("#ws-speed")).to_have_value("1.25")

    # Skip buttons, then the J and L shortcuts.
    _seek(page, 4.0)
    page.get_by_role("button", name="Forward 10 seconds").click()
    _wait_at(page, 14.0)
    page.get_by_role("button", name="Back 10 seconds").click()
    _wait_at(page, 4.0)
    page.locator("h1").click()
    page.keyboard.press("l")
    _wait_at(page, 14.0)
    page.keyboard.press("j")
    _wait_at(page, 4.0)

    # K plays and pauses.
    page.keyboard.press("k")
    page.wait_for_function("() => !document.getElementById('player').paused")
    expect(page.locator("#ws-play")).to_have_text("Pause")
    page.keyboard.press("k")
    page.wait_for_function("() => document.getElementById('player').paused")

    # The position bar: a click at three quarters, then its own arrow keys (5 s).
    track = page.locator("#timeline-track")
    box = track.bounding_box()
    assert box is not None
    # Relative to the element at the moment of the click: following playback may scroll the
    # page between measuring and clicking.
    track.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    _wait_at(page, duration * 0.75, within=0.3)
    _seek(page, 2.0)
    track.focus()
    page.keyboard.press("ArrowRight")
    _wait_at(page, 7.0)
    expect(track).to_have_attribute("aria-valuetext", "0:07 of 0:19")

    # Search within the session: "/" focuses it, matches are counted, Enter goes to the first.
    page.locator("h1").click()
    page.keyboard.press("/")
    expect(page.locator("#ws-search")).to_be_focused()
    page.keyboard.type("concerned")
    expect(page.locator("#ws-count")).to_contain_text("2 matches in this session")
    page.keyboard.press("Enter")
    first = Word.objects.get(segment__transcript=transcript, segment__index=0, index=11)
    assert first.text.strip() == "concerned,"
    _wait_at(page, first.start, within=0.05)
    expect(page.locator("#ws-count")).to_contain_text("Match 1 of 2")
    page.get_by_role("button", name="Next match").click()
    fourth = Word.objects.get(segment__transcript=transcript, segment__index=3, index=6)
    _wait_at(page, fourth.start, within=0.05)
    highlighted = page.evaluate("() => CSS.highlights.get('ws-hit').size")
    assert highlighted == 2
    page.locator("#ws-search").fill("no such words")
    expect(page.locator("#ws-count")).to_have_text("No matches in this session.")

    # In the transcript, arrows move between passages and words; Enter plays from a word.
    page.locator("#ws-search").fill("")
    first_link = page.locator(f"#seg-{transcript.segments.get(index=0).public_id} a.seg-time")
    first_link.focus()
    page.keyboard.press("ArrowDown")
    second_link = page.locator(f"#seg-{second.public_id} a.seg-time")
    expect(second_link).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator(f"#seg-{second.public_id} .seg-text > span").nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    _wait_at(page, Word.objects.get(segment=second, index=1).start, within=0.05)

    # The correction form: one in the page, moved into the passage, filled from it.
    page.locator(f"#seg-{second.public_id} a.seg-edit").click()
    form = page.locator(f"#seg-{second.public_id} #correct-form")
    expect(form).to_be_visible()
    expect(form.locator("textarea")).to_have_value(second.text)
    expect(form.locator("select")).to_have_value(str(second.speaker.public_id))
    page.locator("#correct-cancel").click()
    expect(page.locator("#correct-form")).to_be_hidden()

    # The shortcut list is on the page, and "?" opens it.
    page.locator("h1").click()
    page.keyboard.press("?")
    expect(page.locator("#ws-help")).to_have_attribute("open", "")

    _seek(page, 5.5)
    page.locator("#ws-help summary").click()  # closed again for the picture
    assert _serious_violations(page) == []
    page.evaluate("() => window.scrollTo(0, 0)")  # the columns unstuck, for the whole page
    page.screenshot(path=str(screenshot_dir / "10-session-workspace.png"), full_page=True)
    assert errors == []
    context.close()

    # A phone: stacked, the player kept at the top, nothing wider than the screen.
    phone = _context(browser, live_server, cast.therapist_a,
                     viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    page, errors = _open(phone, f"{url}?t=6")
    page.locator("#workspace").scroll_into_view_if_needed()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    player_box = page.locator(".ws-player").bounding_box()
    text_box = page.locator("#ws-segments").bounding_box()
    assert player_box is not None and text_box is not None
    assert text_box["y"] >= player_box["y"] + player_box["height"] - 1  # stacked, not beside
    page.locator(f"#seg-{second.public_id} .seg-text > span").nth(0).tap()
    _wait_at(page, Word.objects.get(segment=second, index=0).start, within=0.05)
    # The screen as the therapist sees it: the player held at the top, the transcript below.
    page.evaluate("""() => window.scrollTo(0, window.scrollY - 280
                     + document.getElementById('ws-text-h').getBoundingClientRect().top)""")
    page.screenshot(path=str(screenshot_dir / "11-session-workspace-phone.png"))
    assert errors == []
    phone.close()
