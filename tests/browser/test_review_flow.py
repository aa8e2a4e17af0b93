"""The whole review loop in Chromium, as the issue tells it.

A therapist records 20 s in the browser (the fake microphone plays an LJ Speech clip) → the
upload is finalised and transcribed by the real pipeline (faster-whisper tiny.en, run here as
the worker would) → the transcript appears beside the player → a click on a word seeks there →
a private and a shared comment are added at that moment → the client signs in and finds the
shared session with the shared comment but not the private one → a client of another therapist
gets 404 for the same address. The closed-tab recovery is in test_record.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from relisten.clients.actions import share_with_client
from relisten.core.personas import Cast
from relisten.review.models import Comment, Scope
from relisten.transcripts import pipeline
from relisten.transcripts.models import RunState, Transcript, TranscriptRun, Word
from tests.browser.test_record import (  # noqa: F401 - fixtures used by name
    finalize,
    media_browser,
    open_session,
    queued_tasks,
    received,
    serious_violations,
    session_of,
    signed_in_context,
    speech,
    start_recording,
)
from tests.test_tus import vault  # noqa: F401 - registers the `vault` fixture here


def current_time(page: Page) -> float:
    return float(page.locator("#player").evaluate("(el) => el.currentTime"))


def add_comment(page: Page, body: str, scope_label: str) -> None:
    box = page.locator("[data-new-comment-box]")
    if box.get_attribute("open") is None:
        box.locator("summary").click()
    page.locator("#comment-body").fill(body)
    page.get_by_label(scope_label).check()
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator("#comments .comment-body", has_text=body)).to_be_visible()


@pytest.mark.browser
def test_record_transcribe_seek_comment_and_client_replay(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None, screenshot_dir: Path,  # noqa: F811
) -> None:
    session = session_of(cast)
    share_with_client(actor=cast.therapist_a, session=session, shared=True)

    # 1. Record 20 s in the browser.
    therapist = signed_in_context(media_browser, live_server, cast.therapist_a, bypass_csp=True)
    page = open_session(therapist, live_server, session)
    start_recording(page)
    expect(page.locator("#capture-elapsed")).to_have_text("0:20", timeout=40000)
    page.get_by_role("button", name="Stop and save").click()
    expect(page.locator("#capture-result")).to_contain_text("uploaded and being checked",
                                                            timeout=20000)

    # 2. The worker's two jobs: finalise, then transcribe (real model, real speech).
    recording = finalize(received(session))
    assert 19 < (recording.duration_s or 0) < 22
    run = TranscriptRun.objects.get(recording=recording)
    assert pipeline.execute(run.public_id) == RunState.DONE
    transcript = Transcript.objects.get(recording=recording)
    words = list(Word.objects.filter(segment__transcript=transcript).order_by("start"))
    assert len(words) > 20  # 20 s of read speech
    assert "printing" in " ".join(w.text.lower() for w in words)  # LJ001-0001's first words

    # 3. The transcript appears beside the player.
    page.get_by_role("link", name="Open the new recording").click()
    expect(page.locator("#workspace")).to_have_attribute("data-ready", "1")
    first = transcript.segments.order_by("index").first()
    assert first is not None
    expect(page.locator(f"#seg-{first.public_id}")).to_contain_text("printing", ignore_case=True)
    assert serious_violations(page, "#workspace") == []

    # 4. Click a word: the player seeks to it.
    target_word = words[len(words) // 2]
    segment_words = list(target_word.segment.words.order_by("index"))
    position = segment_words.index(target_word)
    page.locator(f"#seg-{target_word.segment.public_id} .seg-text > span").nth(position).click()
    page.wait_for_function(
        f"Math.abs(document.getElementById('player').currentTime - {target_word.start}) < 0.3")
    at = current_time(page)
    assert abs(at - target_word.start) < 0.3

    # 5. Comments at that moment: one private, one shared with the client ("C" opens the form).
    page.locator("h1").click()
    page.keyboard.press("c")
    expect(page.locator("#comment-body")).to_be_visible()
    add_comment(page, "Private note: revisit this.", "Only me")
    add_comment(page, "Listen to this part again before next week.",
                "Care team and the client")
    comments = Comment.objects.filter(recording=recording)
    assert {c.scope for c in comments} == {Scope.PRIVATE, Scope.CLIENT}
    assert all(abs(c.start - at) < 1.0 for c in comments), [(c.start, at) for c in comments]
    expect(page.locator("#timeline-markers .marker")).to_have_count(2)
    page.screenshot(path=str(screenshot_dir / "50-flow-therapist-workspace.png"), full_page=True)
    therapist.close()

    # 6. The client finds the shared session in her portal, without the private comment.
    client = signed_in_context(media_browser, live_server, cast.client_user_a)
    portal = client.new_page()
    portal.goto(f"{live_server.url}/me/")
    portal.get_by_role("link", name=f"Session {session.number}").first.click()
    expect(portal.locator("#workspace")).to_be_visible()
    expect(portal.locator(f"#seg-{first.public_id}")).to_contain_text("printing", ignore_case=True)
    expect(portal.locator("#comments")).to_contain_text("Listen to this part again")
    expect(portal.locator("#comments")).not_to_contain_text("Private note")
    assert "Private note" not in portal.content()
    portal.set_viewport_size({"width": 375, "height": 800})
    portal.screenshot(path=str(screenshot_dir / "51-flow-client-replay-phone.png"),
                      full_page=True)
    recording_url = portal.url.split("?")[0]
    client.close()

    # 7. A client of another therapist: 404 for that very address.
    other = signed_in_context(media_browser, live_server, cast.client_user_b)
    stranger = other.new_page()
    response = stranger.goto(recording_url)
    assert response is not None and response.status == 404
    assert "Listen to this part again" not in stranger.content()
    other.close()
