"""Rating a session in Chromium: the supervisor rates a shared session beside the player, with
evidence at two moments and behaviour counts tallied from the keyboard while it plays, and
completes it; the therapist self-rates; the comparison shows both with the difference
highlighted, and its evidence opens the recording at the moment."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.accounts.actions import create_user
from relisten.accounts.models import Role
from relisten.clients.models import Episode
from relisten.core.personas import Cast
from relisten.fidelity.models import Evidence, Rating, RatingState, Scale
from relisten.lib.fidelity.scale import load_scale, to_definition
from relisten.recordings.models import Recording
from relisten.review.actions import create_comment
from relisten.review.models import Scope
from tests.browser.test_comments import (
    SPEECH,
    _context,
    _open,
    _seek_player,
    _serious_violations,
    _speech,
)
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    vault_env_fixture,  # noqa: F401 - registers the `vault_env` fixture here
)
from tests.test_rating import SMALL_SCALE


def _rate(page: Page, item: str, value: int) -> None:
    """Choose a point; the answer is saved at once (autosave), and the panel says so."""
    with page.expect_response(lambda r: r.url.endswith("/answer")) as saved:
        page.locator(f'#item-{item} input[value="{value}"]').check()
    assert saved.value.ok
    expect(page.locator("[data-rating-status]")).to_have_text("Saved")


@pytest.mark.browser
def test_supervisor_rates_with_evidence_and_the_therapist_compares(
    browser: Browser, live_server: LiveServer, cast: Cast, vault_env: VaultEnv,
    screenshot_dir: Path,
) -> None:
    session = first_session(cast)
    session.shared_for_supervision = True
    session.save(update_fields=["shared_for_supervision"])
    data = _speech()
    with wave.open(str(SPEECH)) as handle:
        duration = handle.getnframes() / handle.getframerate()
    recording = make_recording(session, data, created_by=cast.therapist_a,
                               content_type="audio/wav")
    Recording.objects.filter(pk=recording.pk).update(duration_s=duration)
    Scale.objects.create(
        clinic=cast.clinic, slug="tiny-fidelity", version=1, name="Tiny fidelity scale",
        definition=to_definition(load_scale(SMALL_SCALE, "yaml")),
        source_sha256=hashlib.sha256(SMALL_SCALE.encode()).hexdigest())
    session_url = f"{live_server.url}/sessions/{session.public_id}/"

    # ---- the supervisor opens the shared session and rates it ----------------------------
    create_comment(actor=cast.supervisor, recording=recording, start=2.0, end=None,
                   body="Good agenda; set homework next time.", tags=["feedback"],
                   scope=Scope.CARE_TEAM)
    supervisor = _context(browser, live_server, cast.supervisor)
    page, errors = _open(supervisor, session_url)
    panel = page.locator("#rating")
    panel.get_by_text("Choose a scale").click()  # kept folded until a rating starts
    panel.get_by_label("Scale").select_option(label="Tiny fidelity scale (version 1)")
    panel.get_by_role("button", name="Start rating").click()
    expect(panel.locator("[data-rating-status]")).to_have_text("Rating on Tiny fidelity scale.")
    expect(panel).to_contain_text("0 of 3 items rated")
    expect(panel.locator("[data-complete]")).to_be_disabled()
    expect(panel.locator("[data-complete-why]")).to_contain_text("Rate the remaining 3 items")

    # Evidence at two moments, from wherever the player is.
    _seek_player(page, 2.0)
    page.locator("#item-agenda [data-evidence-here]").click()
    expect(panel.locator("[data-rating-status]")).to_have_text("Evidence added.")
    _seek_player(page, 6.0)
    page.locator("#item-warmth [data-evidence-here]").click()
    expect(page.locator("#item-warmth .evidence-time")).to_have_text("0:06")
    expect(page.locator("#item-agenda .evidence-time")).to_have_text("0:02")
    # A stretch, through the one evidence form that each item's link leads to.
    page.locator('#item-homework [data-evidence-for]').click()
    expect(page.locator("#ev-item")).to_have_value("homework")
    expect(page.locator("#ev-at")).to_be_focused()
    page.locator("#ev-at").fill("0:03")
    page.locator("#ev-until").fill("0:05")
    page.locator("#evidence-form").get_by_role("button", name="Add evidence").click()
    expect(page.locator("#item-homework .evidence-time")).to_have_text("0:03–0:05")

    # Counting while the recording plays: the tally keys add (Shift takes one off).
    page.locator("#player").evaluate("(el) => el.play()")
    page.locator("#rating-h").click()
    for key in ("1", "1", "1", "2", "Shift+1"):
        page.keyboard.press(key)
    expect(page.locator("#count-questions")).to_have_value("2")
    expect(page.locator("#count-reflections")).to_have_value("1")
    assert not page.locator("#player").evaluate("(el) => el.paused")  # it kept playing
    page.locator("#player").evaluate("(el) => el.pause()")
    # While typing in a field, the keys are the field's.
    page.locator("#ev-note").type("12")
    expect(page.locator("#count-questions")).to_have_value("2")
    page.locator("#ev-note").fill("")

    _rate(page, "agenda", 1)
    _rate(page, "warmth", 5)
    expect(panel).to_contain_text("2 of 3 items rated")
    _rate(page, "homework", 0)
    expect(panel.locator("[data-complete]")).to_be_enabled()
    rating = Rating.objects.get(rater=cast.supervisor)
    assert rating.answers == {"questions": 2, "reflections": 1, "agenda": 1, "warmth": 5,
                              "homework": 0}

    # The evidence chips seek the player.
    page.locator("#item-agenda .evidence-time").click()
    page.wait_for_function(
        "() => Math.abs(document.getElementById('player').currentTime - 2) < 0.3")
    assert page.url.startswith(session_url)

    panel.locator("[data-complete]").click()
    expect(panel.locator(".rating-scores")).to_contain_text("Reflections per question")
    expect(panel.locator(".thresholds")).to_contain_text("Not met: Competent (Total ≥ 8)")
    page.screenshot(path=str(screenshot_dir / "40-rating-supervisor.png"), full_page=True)
    assert _serious_violations(page, "#rating") == []
    assert errors == []
    supervisor.close()
    rating.refresh_from_db()
    assert rating.state == RatingState.COMPLETE and rating.total == 6.0
    assert sorted(Evidence.objects.filter(rating=rating).values_list("item", "start", "end")) == [
        ("agenda", pytest.approx(2.0, abs=0.3), None), ("homework", 3.0, 5.0),
        ("warmth", pytest.approx(6.0, abs=0.3), None)]

    # ---- the therapist self-rates, then compares ---------------------------------------------
    therapist = _context(browser, live_server, cast.therapist_a)
    page, errors = _open(therapist, session_url)
    panel = page.locator("#rating")
    panel.get_by_text("Choose a scale").click()  # kept folded until a rating starts
    panel.get_by_label("Scale").select_option(label="Tiny fidelity scale (version 1)")
    panel.get_by_role("button", name="Start rating").click()
    expect(panel).to_contain_text("Self-rating")
    # With the connection gone, the panel says the answer is not saved, and saves it once the
    # connection is back.
    page.route("**/answer", lambda route: route.abort())
    page.locator('#item-agenda input[value="5"]').check()
    expect(panel.locator("[data-rating-status]")).to_have_text(
        "Not saved — check your connection. Trying again…")
    page.unroute("**/answer")
    expect(panel.locator("[data-rating-status]")).to_have_text("Saved", timeout=10_000)
    assert Rating.objects.get(rater=cast.therapist_a).answers == {"agenda": 5}
    _rate(page, "warmth", 4)
    _rate(page, "homework", 0)
    panel.locator("[data-complete]").click()
    expect(panel.locator(".rating-scores")).to_be_visible()
    panel.get_by_role("link", name="Compare the ratings of this session").click()
    expect(page.locator("h1")).to_contain_text("Ratings of session 1")
    expect(page.locator("thead th")).to_have_text(
        ["Item", "Self-rating: You", "Supervisor's rating: Dr Sam Reyes"])
    differing = page.locator("tr.differs")
    expect(differing).to_have_count(1)
    expect(differing).to_contain_text("Sets an agenda")
    expect(differing.locator(".differs-badge")).to_have_text("Differs")
    expect(page.locator(".compare-rule")).to_contain_text("differ by 2 or more points")
    page.screenshot(path=str(screenshot_dir / "41-rating-comparison.png"), full_page=True)
    assert _serious_violations(page, "main") == []
    # The supervisor's evidence opens the recording at its moment.
    differing.locator(".evidence-time").click()
    page.wait_for_url(f"**/recordings/{recording.public_id}/transcript/?t=*")
    # The supervisor's written feedback (a care-team comment) is beside the same player.
    expect(page.locator("#comments")).to_contain_text("Good agenda; set homework next time.")
    assert errors == []
    therapist.close()

    # ---- a supervisor of this clinic without an assignment to Tess: 404 everywhere -------
    stranger = create_user(actor=None, clinic=cast.clinic, username="una.unassigned",
                           password="not-used-here-1234", display_name="Una Unassigned",
                           roles=[Role.SUPERVISOR])
    Episode.objects.filter(pk=session.episode_id).update(supervisor=stranger)  # named, unassigned
    outsider = _context(browser, live_server, stranger)
    page = outsider.new_page()
    for address in (session_url,
                    f"{live_server.url}/recordings/{recording.public_id}/transcript/",
                    live_server.url + reverse("fidelity:compare",
                                              kwargs={"session_id": session.public_id})):
        response = page.goto(address)
        assert response is not None and response.status == 404, address
    assert "Good agenda" not in page.content()
    outsider.close()
