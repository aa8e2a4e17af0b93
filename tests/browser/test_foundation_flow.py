"""The foundation, end to end in a real browser: a therapist enrols two-factor sign-in, creates a
client, records paper consent and gives the client a sign-in; the client then reads their
consent history, withdraws one consent and sees who accessed their record.

Screenshots land in docs/screenshots/ so people can see the pages without running anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.clients.models import Client
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.core.personas import Cast
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

CLIENT_USERNAME = "nina.park"
CLIENT_PASSWORD = "quiet-river-lantern-42"
PHONE_WIDTH = 375


def totp_code(base32_key: str) -> str:
    """What an authenticator app would show now for the key printed on the setup page."""
    padded = base32_key + "=" * (-len(base32_key) % 8)
    return f"{totp(base64.b32decode(padded)):06d}"


def assert_stylesheet_applied(page: Page) -> None:
    # An unstyled page still "works" for assertions on text, so check the CSS really arrived.
    header_background = page.evaluate(
        "getComputedStyle(document.querySelector('header.top')).backgroundColor")
    assert header_background == "rgb(243, 245, 247)", (
        "app.css did not load (is relisten/static among the static file locations?)")


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/sign-in/")
    assert_stylesheet_applied(page)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def enrol_two_factor(page: Page, shots: Path) -> None:
    # Staff without a device are sent straight to enrolment after the password step.
    expect(page).to_have_url(re.compile(r"/accounts/two-factor/setup/(\?.*)?$"))
    expect(page.locator("h1")).to_have_text("Set up two-factor sign-in")
    expect(page.locator(".qr svg")).to_be_visible()
    # The key may be shown in groups of four for reading; apps ignore the spaces, and so do we.
    secret = re.sub(r"\s+", "", page.locator("#totp-secret").inner_text())
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), "the key should be plain base32"
    page.screenshot(path=shots / "01-two-factor-setup.png", full_page=True)
    page.fill("#id_code", totp_code(secret))
    page.click("text=Turn on two-factor sign-in")
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    expect(page.get_by_text("Two-factor sign-in is on.")).to_be_visible()
    codes = page.locator(".codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-f]{7}-[0-9a-f]{7}", c) for c in codes)
    page.screenshot(path=shots / "02-recovery-codes.png", full_page=True)
    page.click("text=I have saved them")
    expect(page.locator("h1")).to_have_text("Welcome, Tess Morgan")


def create_client(page: Page, shots: Path) -> None:
    page.click("a.button:has-text('New client')")
    expect(page.locator("h1")).to_have_text("New client")
    page.fill("#id_given_name", "Nina")
    page.fill("#id_family_name", "Park")
    page.fill("#id_date_of_birth", "1990-04-12")
    page.fill("#id_reference", "RP-2041")
    page.select_option("#id_supervisor", label="Dr Sam Reyes")
    page.fill("#id_start_date", dt.date.today().isoformat())
    page.screenshot(path=shots / "03-new-client.png", full_page=True)
    page.click("text=Create client")
    # A new record leads straight to consent, so recording never starts without it.
    expect(page.locator("h1")).to_contain_text("Consent")
    expect(page.locator(".messages")).to_contain_text("Record their consent next")


def record_paper_consent(page: Page, purpose: Purpose, granted: bool) -> None:
    page.select_option("#id_purpose", value=purpose.value)
    page.check(f"input[name=decision][value={'grant' if granted else 'refuse'}]")
    page.check("#id_paper_form_signed")
    page.click("text=Record decision")
    expect(page.locator(".messages")).to_contain_text(f"Recorded: {purpose.label}.")
    expected = "Agreed" if granted else "Not agreed"
    expect(page.locator(f"#purpose-{purpose.value} td").first).to_have_text(expected)


def give_portal_sign_in(page: Page) -> None:
    page.click("text=← Nina Park")
    expect(page.locator("h1")).to_have_text("Nina Park")
    page.click("text=Give portal sign-in")
    page.fill("#id_username", CLIENT_USERNAME)
    page.fill("#id_password", CLIENT_PASSWORD)
    page.click("button[type=submit]:not(.link)")
    expect(page.locator(".messages")).to_contain_text("The client can now sign in")
    expect(page.get_by_text("Client can sign in")).to_be_visible()


def client_reads_consent_history(page: Page, shots: Path) -> None:
    page.click("nav >> text=My sessions & consent")
    expect(page.locator("h1")).to_contain_text("My care at")
    page.locator("a.portal-link", has_text="My consent").click()
    expect(page.locator("h1")).to_have_text("My consent")
    history = page.locator("table.history tbody tr")
    expect(history).to_have_count(3)
    for label, decision in (("Audio recording of sessions", "Agreed"),
                            ("Client access to own recordings", "Agreed"),
                            ("Video recording of sessions", "Not agreed / withdrawn")):
        row = history.filter(has_text=label)
        expect(row).to_contain_text(decision)
        expect(row).to_contain_text("Tess Morgan")
        expect(row).to_contain_text("Therapist attested a signed paper form")
    audio = page.locator(f"#purpose-{Purpose.AUDIO_RECORDING.value}")
    expect(audio.locator(".status")).to_contain_text("you agreed")
    page.screenshot(path=shots / "05-client-consent-history.png", full_page=True)


def client_withdraws_audio_recording(page: Page) -> None:
    page.locator(f"#purpose-{Purpose.AUDIO_RECORDING.value}").locator(
        "button", has_text="Withdraw consent").click()
    expect(page.locator(".messages")).to_contain_text(
        "Withdrawn: Audio recording of sessions. This applies from now on.")
    audio = page.locator(f"#purpose-{Purpose.AUDIO_RECORDING.value}")
    expect(audio.locator(".status")).to_contain_text("you have not agreed")
    expect(audio.locator("button")).to_have_text("I agree")
    history = page.locator("table.history tbody tr")
    expect(history).to_have_count(4)
    expect(history.first).to_contain_text("Audio recording of sessions")
    expect(history.first).to_contain_text("Not agreed / withdrawn")
    expect(history.first).to_contain_text("Client, in their own account")


def client_reads_access_log(page: Page, shots: Path) -> None:
    page.click("text=← My care at")
    page.click("text=Who has accessed my record")
    expect(page.locator("h1")).to_have_text("Who has accessed my record")
    log = page.locator("table.log tbody")
    expect(log.locator("tr", has_text="Tess Morgan").first).to_be_visible()
    expect(log).to_contain_text("Created the record")
    expect(log).to_contain_text("Set up your sign-in")
    page.screenshot(path=shots / "06-client-access-log.png", full_page=True)


def consent_page_fits_a_phone(page: Page, shots: Path) -> None:
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    page.go_back()
    expect(page.locator("h1")).to_contain_text("My care at")
    page.locator("a.portal-link", has_text="My consent").click()
    expect(page.locator("h1")).to_have_text("My consent")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page is {width}px wide on a {PHONE_WIDTH}px phone screen"
    # The first screen a phone shows, rather than one very tall image.
    page.screenshot(path=shots / "07-client-consent-phone.png")


def test_therapist_enrols_records_consent_and_client_withdraws(
    browser: Browser, live_server: LiveServer, cast: Cast, screenshot_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    console: list[str] = []

    def remember(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", remember)

    # The therapist: password, then two-factor enrolment, then the new client's paperwork.
    assert not TOTPDevice.objects.filter(user=cast.therapist_a).exists()
    sign_in(page, live_server.url, "tess.therapist", PASSWORD)
    enrol_two_factor(page, screenshot_dir)
    assert TOTPDevice.objects.filter(user=cast.therapist_a, confirmed=True).count() == 1
    create_client(page, screenshot_dir)
    record_paper_consent(page, Purpose.AUDIO_RECORDING, granted=True)
    record_paper_consent(page, Purpose.CLIENT_ACCESS, granted=True)
    record_paper_consent(page, Purpose.VIDEO_RECORDING, granted=False)
    page.screenshot(path=screenshot_dir / "04-consent-recorded.png", full_page=True)
    client = Client.objects.get(given_name="Nina", family_name="Park")
    assert is_allowed(client, Purpose.AUDIO_RECORDING)
    assert not is_allowed(client, Purpose.VIDEO_RECORDING)
    give_portal_sign_in(page)
    page.click("button:has-text('Sign out')")
    expect(page.locator(".messages")).to_contain_text("You are signed out.")

    # The client: no second factor is forced on clients.
    sign_in(page, live_server.url, CLIENT_USERNAME, CLIENT_PASSWORD)
    expect(page.locator("h1")).to_contain_text("Welcome,")
    client_reads_consent_history(page, screenshot_dir)
    client_withdraws_audio_recording(page)
    # The withdrawal is what every feature sees from now on, not just what the page says.
    assert not is_allowed(client, Purpose.AUDIO_RECORDING)
    assert is_allowed(client, Purpose.CLIENT_ACCESS), "withdrawing one purpose leaves the others"
    client_reads_access_log(page, screenshot_dir)
    consent_page_fits_a_phone(page, screenshot_dir)

    context.close()
    blocked = [line for line in console if "Content Security Policy" in line]
    assert not blocked, f"the browser blocked part of a page under the CSP: {blocked}"
