"""Accessibility of the main pages, as each role sees them, in Chromium with axe-core.

The demo clinic is loaded as `make run` loads it (a recorded, transcribed session with comments
in every scope), and every main page is checked at desktop and at phone width (375 px): no
serious or critical axe violations (these include WCAG AA colour contrast and missing labels),
no sideways scrolling on the phone, and a visible focus ring for keyboard users. A screenshot
of each page at each width goes to docs/screenshots/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.accounts.models import Clinic, User
from relisten.clients.models import Client
from relisten.core.personas import DEMO_CLINIC
from relisten.fidelity.models import Scale
from relisten.recordings.models import Recording
from tests.conftest import sign_in
from tests.test_media_playback import VaultEnv, vault_env_fixture  # noqa: F401 - fixture

AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def demo(vault_env: VaultEnv, settings: Any, transactional_db: None) -> Recording:
    settings.DEMO_MODE = True
    call_command("load_demo")
    return Recording.objects.get(session__episode__client__given_name="Cora")


def context_for(browser: Browser, live_server: LiveServer, username: str | None) -> BrowserContext:
    # bypass_csp only so that axe-core can be injected; the pages' own code never needs it.
    context = browser.new_context(bypass_csp=True)
    if username is not None:
        http = sign_in(HttpClient(), User.objects.get(username=username))
        cookie = http.cookies[django_settings.SESSION_COOKIE_NAME].value
        context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie,
                              "url": live_server.url}])
    return context


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate("async () => (await axe.run()).violations")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. {v['nodes'][0]['target']})"
            for v in found if v["impact"] in ("serious", "critical")]


def check_page(page: Page, url: str, name: str, shots: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        response = page.goto(url)
        assert response is not None and response.status == 200, (name, response and
                                                                  response.status)
        page.wait_for_load_state("networkidle")
        assert serious_violations(page) == [], f"{name} ({label})"
        if label == "phone":
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width} px)"
        page.screenshot(path=str(shots / f"60-{name}-{label}.png"), full_page=True)
    assert not errors, (name, errors)


def focus_ring_shows(page: Page) -> None:
    """Keyboard focus is visible: the first Tab lands on the skip link or a control whose
    outline is drawn (the CSS gives :focus-visible a 3 px ring)."""
    page.keyboard.press("Tab")
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
    assert outline[0] != "none" and outline[1] >= 2, outline


@pytest.mark.browser
def test_main_pages_have_no_serious_accessibility_violations(
    browser: Browser, live_server: LiveServer, demo: Recording, screenshot_dir: Path,
) -> None:
    clinic = Clinic.objects.get(name=DEMO_CLINIC)
    cora = Client.objects.get(given_name="Cora")
    session = demo.session
    episode = session.episode
    ctrs = Scale.objects.get(clinic=None, slug="ctrs", retired=False)
    tara = User.objects.get(username="tara.trainee")
    url: Callable[..., str] = lambda name, **kw: live_server.url + reverse(name, kwargs=kw)  # noqa: E731
    pages: dict[str | None, list[tuple[str, str]]] = {
        None: [("sign-in", url("accounts:login"))],
        "tess.therapist": [
            ("therapist-home", url("home")),
            ("clients", url("clients:list")),
            ("client", url("clients:detail", client_id=cora.public_id)),
            ("episode", url("clients:episode", episode_id=episode.public_id)),
            ("session-workspace", url("clients:session", session_id=session.public_id)),
            ("client-consent", url("clients:consent", client_id=cora.public_id)),
            ("search", url("transcripts:search") + "?q=data"),
            ("rating-comparison", url("fidelity:compare", session_id=session.public_id)),
            ("fidelity-over-time-episode", url("fidelity:episode_trend",
                                               episode_id=episode.public_id)),
        ],
        "sam.supervisor": [
            ("supervisor-home", url("home")),
            ("supervisor-session", url("clients:session", session_id=session.public_id)),
            ("fidelity-reports", url("fidelity:reports")),
            ("calibration-scales", url("fidelity:calibration_index", clinic_id=clinic.public_id)),
            ("calibration-ctrs", url("fidelity:calibration", clinic_id=clinic.public_id,
                                     scale_id=ctrs.public_id)),
            ("trainee-over-time", url("fidelity:person_trend", user_id=tara.public_id)),
            ("rating-scales", url("fidelity:scales")),
            ("scale-ctrs", url("fidelity:scale", scale_id=ctrs.public_id)),
            ("scale-builder", url("fidelity:scale_new")),
        ],
        "tara.trainee": [("trainee-home", url("home"))],
        "alex.admin": [("admin-people", url("accounts:clinic_people", clinic_id=clinic.public_id)),
                       ("admin-supervision", url("supervision:assignments",
                                                 clinic_id=clinic.public_id))],
        "cora.client": [
            ("portal", url("portal:record", record_id=cora.public_id)),
            ("client-replay", url("transcripts:page", recording_id=demo.public_id)),
            ("portal-consent", url("portal:consent", record_id=cora.public_id)),
            ("portal-access-log", url("portal:access_log", record_id=cora.public_id)),
        ],
    }
    for username, visits in pages.items():
        context = context_for(browser, live_server, username)
        page = context.new_page()
        for name, address in visits:
            check_page(page, address, name, screenshot_dir)
        page.set_viewport_size(DESKTOP)
        page.goto(visits[0][1])
        focus_ring_shows(page)
        context.close()


@pytest.mark.browser
def test_workspace_is_operable_from_the_keyboard_alone(
    browser: Browser, live_server: LiveServer, demo: Recording,
) -> None:
    """Tab reaches the player controls; the shortcuts and the transcript work without a mouse."""
    context = context_for(browser, live_server, "tess.therapist")
    page = context.new_page()
    page.goto(live_server.url + reverse("clients:session",
                                        kwargs={"session_id": demo.session.public_id}))
    expect(page.locator("#workspace")).to_have_attribute("data-ready", "1")
    reached: set[str] = set()
    for _ in range(150):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.className"))
        if {"ws-play", "ws-forward", "ws-speed", "timeline-track"} <= reached:
            break
    assert {"ws-play", "ws-forward", "ws-speed", "timeline-track"} <= reached, reached
    page.locator("#ws-forward").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('player').currentTime >= 9.9")
    context.close()
