"""Recording in the browser and uploading a file, in Chromium with a fake microphone.

The microphone is fed an LJ Speech clip (--use-file-for-fake-audio-capture, looped), so what
arrives on the server must be real, non-silent speech of the right length. Finalisation is
queued on the database backend and run here inline, as the worker would, so each test can
look at the RECEIVED recording before it becomes READY (and see transcription queued).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from pytest_django.live_server_helper import LiveServer

from relisten.clients.models import TherapySession
from relisten.consent.actions import record_decision
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast
from relisten.recordings import actions
from relisten.recordings.models import Recording, State, Upload
from relisten.recordings.vault import open_reader
from relisten.transcripts.models import TranscriptRun
from tests.browser.conftest import LAUNCH_ARGS
from tests.conftest import sign_in
from tests.test_tus import vault  # noqa: F401 - registers the `vault` fixture here

AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
SPEECH = Path(__file__).resolve().parents[2].parent / "shared/data/speech/ljspeech/LJ001-0001.wav"
DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.fixture
def speech() -> Path:
    if not SPEECH.exists():
        if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"speech sample missing: {SPEECH} (../shared is required here)")
        pytest.skip(f"speech sample missing: {SPEECH}")
    return SPEECH


@pytest.fixture
def media_browser(
    chromium_executable: Path, transactional_db: None, allow_orm_beside_playwright: None,
    speech: Path,
) -> Iterator[Browser]:
    """Chromium with a fake microphone and camera that play the speech clip (no prompts)."""
    from playwright.sync_api import sync_playwright

    fake_media = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={speech}"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_executable), headless=True,
            args=[*LAUNCH_ARGS, *fake_media])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def queued_tasks(settings: Any) -> None:
    """Finalisation and transcription wait in the database queue instead of running inline."""
    settings.TASKS = DATABASE_TASKS


def signed_in_context(browser: Browser, live_server: LiveServer, user: Any,
                      *, bypass_csp: bool = False) -> BrowserContext:
    http = sign_in(HttpClient(), user)
    cookie = http.cookies[django_settings.SESSION_COOKIE_NAME].value
    # bypass_csp only so that axe-core can be injected; the page's own code never needs it.
    context = browser.new_context(bypass_csp=bypass_csp)
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie,
                          "url": live_server.url}])
    return context


def session_of(cast: Cast) -> TherapySession:
    return TherapySession.objects.filter(episode__client=cast.client_a).order_by("number")[0]


def open_session(context: BrowserContext, live_server: LiveServer,
                 session: TherapySession) -> Page:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/sessions/{session.public_id}/")
    page.wait_for_load_state("networkidle")
    assert not errors, errors
    return page


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or condition}")


def received(session: TherapySession) -> Recording:
    found: Recording = wait_for(
        lambda: Recording.objects.filter(session=session, state=State.RECEIVED).first(),
        what="a RECEIVED recording")
    return found


def finalize(recording: Recording) -> Recording:
    """What the worker does with the queued finalize task."""
    done = actions.finalize_upload(recording.public_id)
    assert done is not None and done.state == State.READY, done and done.failure
    return done


def loudness_dbfs(recording: Recording) -> float:
    """RMS of the stored recording's decoded audio, in dB below full scale."""
    total = 0.0
    count = 0
    with av.open(open_reader(recording).raw_file(), mode="r") as container:
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().astype(np.float64)
            total += float(np.sum(samples * samples))
            count += samples.size
    assert count > 0
    return 10 * math.log10(total / count) if total else -120.0


def serious_violations(page: Page, selector: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async (sel) => (await axe.run(document.querySelector(sel))).violations", selector)
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def start_recording(page: Page) -> None:
    start = page.locator("#capture-start")
    expect(start).to_be_disabled()  # not before the client's agreement is confirmed
    page.get_by_label("The client has agreed today to this recording.").check()
    expect(start).to_be_enabled()
    start.click()
    expect(page.locator("#capture-state")).to_have_text("Recording")


def active_upload(session: TherapySession) -> Upload:
    found: Upload = wait_for(
        lambda: Upload.objects.filter(recording__session=session, offset__gt=0).first(),
        what="acknowledged bytes")
    return found


@pytest.mark.browser
def test_record_twenty_seconds_becomes_ready_with_speech(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None, screenshot_dir: Path,
) -> None:
    session = session_of(cast)
    context = signed_in_context(media_browser, live_server, cast.therapist_a, bypass_csp=True)
    page = open_session(context, live_server, session)
    assert serious_violations(page, "#capture") == []
    video = page.get_by_label("Audio and video")
    expect(video).to_be_disabled()  # Cora agreed to audio recording only
    expect(page.locator("#capture-why-video")).to_contain_text("not agreed to video recording")

    start_recording(page)
    page.wait_for_timeout(8000)
    level = float(page.locator("#capture-level").get_attribute("data-db") or "-100")
    assert level > -45, f"the level meter shows silence ({level} dB)"
    assert active_upload(session).offset > 0  # chunks go up while recording
    expect(page.locator("#capture-start-why")).to_have_text("A recording is in progress.")
    expect(page.locator("#capture-preview")).to_be_hidden()  # audio only: no camera
    assert serious_violations(page, "#capture") == []
    page.screenshot(path=str(screenshot_dir / "20-session-recording-in-browser.png"),
                    full_page=True)

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#capture-state")).to_have_text("Paused")
    page.wait_for_timeout(3000)  # not part of the recording
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#capture-state")).to_have_text("Recording")
    # Elapsed time leaves the pause out: stop when it says 20 s.
    expect(page.locator("#capture-elapsed")).to_have_text("0:20", timeout=30000)
    page.get_by_role("button", name="Stop and save").click()
    expect(page.locator("#capture-result")).to_contain_text("uploaded and being checked",
                                                            timeout=20000)

    recording = finalize(received(session))
    assert 19 < (recording.duration_s or 0) < 22, recording.duration_s
    assert recording.remuxed and recording.container.startswith("matroska")
    assert loudness_dbfs(recording) > -40
    # Transcription starts on READY (Cora agreed to it): a run is queued.
    assert TranscriptRun.objects.filter(recording=recording).exists()
    link = page.get_by_role("link", name="Open the new recording")
    expect(link).to_have_attribute("href", f"/sessions/{session.public_id}/?r="
                                   f"{recording.public_id}", timeout=15000)
    context.close()


@pytest.mark.browser
def test_closed_tab_mid_recording_is_recovered_on_the_next_visit(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None,
) -> None:
    session = session_of(cast)
    context = signed_in_context(media_browser, live_server, cast.therapist_a)
    page = open_session(context, live_server, session)
    start_recording(page)
    started = time.monotonic()
    upload = active_upload(session)

    # From now on the server hears nothing: chunks pile up in IndexedDB, unacknowledged.
    def cut(route: Route) -> None:
        if route.request.method == "PATCH":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/uploads/**", cut)
    page.wait_for_timeout(1000)
    upload.refresh_from_db()
    acknowledged = upload.offset
    page.wait_for_timeout(8000)
    expect(page.locator("#capture-upload-state")).to_contain_text("not yet uploaded")
    backlog = int(page.locator("#capture-upload-state").get_attribute("data-backlog") or "0")
    assert backlog >= 4, backlog
    recorded = time.monotonic() - started
    page.close()  # no unload handlers: as abrupt as a crash for the page's own code
    upload.refresh_from_db()
    assert upload.offset == acknowledged  # nothing more arrived after the cut

    again = open_session(context, live_server, session)
    notes = again.locator("#capture-recovery")
    expect(notes).to_contain_text("interrupted recording", timeout=10000)
    expect(notes).to_contain_text("uploaded and being checked", timeout=30000)

    recording = finalize(received(session))
    assert recording.size is not None and recording.size > acknowledged
    # Lost: at most the chunk being recorded when the tab closed (plus start-up latency).
    assert recorded - 6 < (recording.duration_s or 0) <= recorded + 1.5, \
        (recorded, recording.duration_s)
    assert loudness_dbfs(recording) > -40
    # Nothing is left behind in IndexedDB once the server has it all.
    assert kept_in_browser(again) == [0, 0]
    context.close()


@pytest.mark.browser
def test_chunks_of_an_upload_the_server_lost_are_reported_not_dropped(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None,
) -> None:
    session = session_of(cast)
    context = signed_in_context(media_browser, live_server, cast.therapist_a)
    page = open_session(context, live_server, session)
    start_recording(page)
    upload = active_upload(session)
    page.route("**/uploads/**", lambda route: route.abort("internetdisconnected")
               if route.request.method == "PATCH" else route.continue_())
    page.wait_for_timeout(5000)
    page.close()
    # Meanwhile the server gave up on it (as it does when an upload expires).
    actions.terminate_upload(actor=cast.therapist_a, upload=upload)

    again = open_session(context, live_server, session)
    problem = again.locator("#capture-recovery .capture-problem")
    expect(problem).to_contain_text("could not be finished: the server no longer has its upload",
                                    timeout=15000)
    expect(problem).to_contain_text("still kept in this browser")
    assert kept_in_browser(again)[1] > 0
    with again.expect_download() as download:
        again.get_by_role("link", name="Save the kept part as a file").click()
    saved = Path(download.value.path())
    assert saved.stat().st_size > 10_000
    again.get_by_role("button", name="Discard the kept part").click()
    expect(problem).to_have_text("The kept part was discarded.")
    assert kept_in_browser(again) == [0, 0]
    context.close()


def kept_in_browser(page: Page) -> list[int]:
    """[recordings, chunks] in this browser context's IndexedDB capture store."""
    found: list[int] = page.evaluate("""async () => {
        const db = await new Promise((ok, bad) => { const r = indexedDB.open('relisten-capture');
                                                     r.onsuccess = () => ok(r.result);
                                                     r.onerror = () => bad(r.error); });
        const count = (name) => new Promise((ok) => {
            const r = db.transaction(name).objectStore(name).count();
            r.onsuccess = () => ok(r.result); });
        return [await count('recordings'), await count('chunks')];
    }""")
    return found


@pytest.mark.browser
def test_video_recording_with_video_consent(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None,
) -> None:
    record_decision(actor=cast.therapist_a, client=cast.client_a,
                    purpose=Purpose.VIDEO_RECORDING, granted=True, method=Method.PAPER_ATTESTED,
                    text=current_text(cast.clinic.pk, Purpose.VIDEO_RECORDING))
    session = session_of(cast)
    context = signed_in_context(media_browser, live_server, cast.therapist_a)
    page = open_session(context, live_server, session)
    page.get_by_label("Audio and video").check()
    start_recording(page)
    expect(page.locator("#capture-preview")).to_be_visible()  # the camera is seen to be on
    expect(page.get_by_label("Audio only")).to_be_disabled()  # no switching mid-recording
    page.wait_for_timeout(5000)
    page.get_by_role("button", name="Stop and save").click()
    expect(page.locator("#capture-result")).to_contain_text("uploaded and being checked",
                                                            timeout=20000)
    recording = finalize(received(session))
    assert recording.kind == "video"
    assert recording.video_codec in {"vp8", "vp9"}, recording.video_codec
    assert recording.audio_codec == "opus"
    assert 4 < (recording.duration_s or 0) < 7, recording.duration_s
    context.close()


@pytest.mark.browser
def test_file_upload_reaches_one_hundred_percent_and_is_checked(
    media_browser: Browser, live_server: LiveServer, cast: Cast, vault: Any,  # noqa: F811
    queued_tasks: None, speech: Path, tmp_path: Path, settings: Any,
) -> None:
    session = session_of(cast)
    context = signed_in_context(media_browser, live_server, cast.therapist_a)
    page = open_session(context, live_server, session)

    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    page.set_input_files("#capture-file", str(notes))
    expect(page.locator("#capture-file-error")).to_contain_text("is not an audio or video file")

    page.set_input_files("#capture-file", str(speech))
    progress = page.locator("#capture-file-progress")
    expect(progress).to_have_attribute("value", "100", timeout=20000)
    expect(page.locator("#capture-file-percent")).to_contain_text("100%")
    expect(page.locator("#capture-file-state")).to_contain_text("is uploaded")
    expect(page.locator("#capture-file-error")).to_be_hidden()

    recording = finalize(received(session))
    assert recording.kind == "audio"
    assert recording.size == speech.stat().st_size
    assert abs((recording.duration_s or 0) - 9.655) < 0.1
    expect(page.get_by_role("link", name="Open the new recording")).to_be_visible(timeout=15000)

    # A file over the clinic's limit is refused before a byte is sent, in plain words.
    settings.UPLOAD_MAX_BYTES = 1000
    page.reload()
    page.set_input_files("#capture-file", str(speech))
    expect(page.locator("#capture-file-error")).to_contain_text("the largest file this clinic "
                                                                "accepts is 1000 bytes")
    context.close()
