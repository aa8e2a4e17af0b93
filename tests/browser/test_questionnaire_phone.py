"""A client completes a PHQ-9 on a 375 px phone from the link in their reminder email: answers
are kept when the page is closed, unanswered questions are named before sending, every answer
is big enough to tap, and axe finds nothing serious."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.core.personas import Cast
from relisten.outcomes.models import Alert, AlertKind, DueState, Response, TimePoint
from relisten.outcomes.reminders import send_reminders
from tests.browser.test_portal_phone import (
    DESKTOP,
    _context,
    _no_horizontal_overflow,
    _serious_violations,
)
from tests.test_outcomes_answer import PHQ9_ITEMS, answered, make_due

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
TAP = 44


def _choose(page: Page, number: int, answer: str) -> None:
    page.locator(f"#q-item-{number}").get_by_text(answer, exact=True).click()


def test_client_answers_a_phq9_from_the_emailed_link_on_a_phone(
    browser: Browser, live_server: LiveServer, cast: Cast, screenshot_dir: Path
) -> None:
    cast.client_user_a.email = "cora@example.org"
    cast.client_user_a.save()
    due = make_due(cast.client_a.episodes.get(), TimePoint.INTAKE)
    send_reminders()
    assert len(mail.outbox) == 1
    found = re.search(r"/q/([A-Za-z0-9_-]+)/", mail.outbox[0].body)
    assert found, mail.outbox[0].body
    link = f"{live_server.url}/q/{found.group(1)}/"

    # bypass_csp only so that axe-core can be injected; the page's own code never needs it.
    context = browser.new_context(viewport=PHONE, bypass_csp=True)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(link)
    expect(page.locator("#q-progress")).to_have_text("0 of 9 answered")
    _no_horizontal_overflow(page, PHONE["width"])

    for number in range(1, 5):
        _choose(page, number, "Several days")
    expect(page.locator("#q-progress")).to_have_text("4 of 9 answered")
    expect(page.locator("#q-saved")).to_have_text("Your answers so far are saved.")

    # The client closes the page and opens the link again: the four answers are still there.
    page.close()
    page = context.new_page()
    page.goto(link)
    expect(page.locator("#q-progress")).to_have_text("4 of 9 answered")
    expect(page.locator(f'input[name="{PHQ9_ITEMS[3]}"][value="1"]')).to_be_checked()

    # Sending now names the five questions still open, and sends nothing.
    page.get_by_role("button", name="Send my answers").click()
    expect(page.locator("#q-error")).to_contain_text(
        "Please answer questions 5, 6, 7, 8 and 9 before sending.")
    assert not Response.objects.exists()

    for number in range(5, 9):
        _choose(page, number, "Not at all")
    _choose(page, 9, "Several days")
    expect(page.locator("#q-progress")).to_have_text("9 of 9 answered")
    heights = page.eval_on_selector_all(".q-option", "els => els.map(e => e.offsetHeight)")
    assert len(heights) == 36 and min(heights) >= TAP, heights
    assert _serious_violations(page) == []
    _no_horizontal_overflow(page, PHONE["width"])
    page.screenshot(path=str(screenshot_dir / "50-questionnaire-phone.png"))

    page.get_by_role("button", name="Send my answers").click()
    expect(page.locator("#q-thanks")).to_contain_text("Your answers have been sent")
    assert _serious_violations(page) == []
    response = Response.objects.get(due=due)
    assert (response.total, response.source, response.items.count()) == (5, "link", 9)
    due.refresh_from_db()
    assert due.state == DueState.ANSWERED
    assert Alert.objects.filter(response=response, kind=AlertKind.RISK_ITEM).exists()

    # The link worked once.
    page.goto(link)
    expect(page.locator("#link-problem")).to_contain_text("can no longer be used")
    context.close()


def test_therapist_sees_the_trajectory_and_the_alert(
    browser: Browser, live_server: LiveServer, cast: Cast, screenshot_dir: Path
) -> None:
    episode = cast.client_a.episodes.get()
    start = timezone.now() - dt.timedelta(days=200)
    episode.start_date = timezone.localdate(start)
    episode.end_date = timezone.localdate(start + dt.timedelta(days=70))
    episode.save()
    for days, values, point in (
        (0, [2, 2, 2, 2, 2, 2, 1, 1, 0], TimePoint.INTAKE),  # 14
        (14, [2, 2, 1, 1, 1, 1, 1, 1, 0], TimePoint.SESSION),  # 10
        (42, [1, 1, 1, 1, 1, 1, 1, 0, 0], TimePoint.SESSION),  # 7
        (70, [1, 1, 1, 0, 0, 1, 0, 0, 0], TimePoint.END),  # 4
        (100, [1, 1, 1, 0, 0, 0, 0, 0, 0], TimePoint.FOLLOW_UP_1),  # 3
        (160, [1, 1, 1, 1, 1, 0, 0, 0, 1], TimePoint.FOLLOW_UP_3),  # 6, item 9 answered
    ):
        answered(episode, values, start + dt.timedelta(days=days), point)

    context = _context(browser, live_server, cast.therapist_a, DESKTOP)
    page = context.new_page()
    page.goto(f"{live_server.url}/")
    expect(page.locator("#outcome-flags")).to_contain_text(
        "Risk item answered: please acknowledge")
    page.goto(f"{live_server.url}/episodes/{episode.public_id}/")
    expect(page.locator("svg.trajectory [data-point]")).to_have_count(6)
    assert _serious_violations(page) == []
    page.locator("#outcome-scores").screenshot(path=str(screenshot_dir / "51-trajectory.png"))
    context.close()
