"""The review workspace on the staff session page and on the recording page: what it renders,
the data the player script reads, who sees what, corrections that return to the page they came
from, and that a 50-minute session costs no more SQL queries than a 5-minute one."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from bench.pages import build_long_transcript
from relisten.audit.models import AuditEvent
from relisten.clients.actions import share_with_client
from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.transcripts.models import Segment, Transcript, Word
from tests.conftest import sign_in
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    media_url,
    vault_env_fixture,
)
from tests.test_transcript_search import make_transcript, recording_for

LINES = [
    ("S1", "Good morning, how was the week?"),
    ("S2", "It was ~hard with the ~insomnia again."),
    ("S1", "What helped, if anything?"),
]
__all__ = ["vault_env_fixture"]  # registers the `vault_env` fixture here

PLAYER_JS = Path(__file__).parent.parent / "relisten" / "static" / "relisten" / "player.js"


@pytest.fixture
def transcript(cast: Cast, vault_env: VaultEnv, tmp_path: Path) -> Transcript:
    recording = recording_for(cast, "a", tmp_path)
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    return make_transcript(recording, LINES)


def session_url(recording: Recording) -> str:
    return f"/sessions/{recording.session.public_id}/"


def page_url(recording: Recording) -> str:
    return f"/recordings/{recording.public_id}/transcript/"


def timings(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="ws-data" type="application/json">(.*?)</script>', page)
    assert found, "the word timings are embedded once, as JSON"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def passage(page: str, segment: Segment) -> str:
    start = page.index(f'id="seg-{segment.public_id}"')
    return page[start:page.index("</li>", start)]


# ---- what the workspace shows -------------------------------------------------------------------

def test_session_page_is_the_workspace(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    recording = transcript.recording
    page = signed_in(cast.therapist_a).get(session_url(recording)).content.decode()
    assert f'<div id="workspace" class="workspace" data-recording="{recording.public_id}"' in page
    assert f'<audio id="player" controls preload="metadata" src="{media_url(recording)}"' in page
    assert '<div id="timeline-markers"></div>' in page
    assert 'role="slider"' in page and 'aria-label="Position in the recording"' in page
    for control in ("ws-play", "ws-back", "ws-forward", "ws-speed", "ws-search", "ws-next",
                    "ws-prev"):
        assert f'id="{control}"' in page
    speeds = re.findall(r'<option value="([0-9.]+)"(?: selected)?>[0-9.]+×</option>', page)
    assert speeds == ["0.75", "1", "1.25", "1.5", "1.75", "2"]
    assert "Keyboard shortcuts" in page and "<kbd>J</kbd>" in page
    # The speakers each have their own colour, in the legend and on every passage.
    assert '<span class="chip spk-0">Therapist</span>' in page
    assert '<span class="chip spk-1">Client</span>' in page
    second = transcript.segments.get(index=1)
    assert f'<li class="seg spk-1" id="seg-{second.public_id}"' in page
    assert f"/recordings/{recording.public_id}/erase/" in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert '<script type="module" src="/static/relisten/player.js">' in scripts
    # Nothing inline runs (the CSP forbids it): scripts are same-origin files, or JSON data.
    assert all('src="/static/' in tag or 'type="application/json"' in tag
               for tag in scripts), scripts


def test_word_timings_match_the_word_spans(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    page = signed_in(cast.therapist_a).get(page_url(transcript.recording)).content.decode()
    data = timings(page)
    segments = list(transcript.segments.order_by("index"))
    assert data["s"] == [[round(s.start, 2), round(s.end, 2)] for s in segments]
    assert data["k"] == [0, 1, 0]
    assert data["speakers"] == [str(s.public_id) for s in transcript.speakers.order_by("label")]
    for segment, starts in zip(segments, data["w"], strict=True):
        words = list(Word.objects.filter(segment=segment).order_by("index"))
        assert starts == [round(w.start, 2) for w in words]
        text = passage(page, segment).split('<p class="seg-text">')[1]
        spans = re.findall(r"<span(?: [^>]*)?>([^<]*)</span>", text)
        assert spans == [w.text.strip() for w in words]  # one <span> per timed word, in order
    # Doubtful words keep their mark; the passage's time link plays from its start.
    assert '<span class="low" title="The recogniser was unsure of this word">hard</span>' in page
    assert '<a class="seg-time" href="?t=5.00">0:05</a>' in page


def test_corrected_passage_has_no_stale_word_timings(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    segment = transcript.segments.get(index=1)
    edit = f"/transcripts/{transcript.public_id}/segments/{segment.public_id}/edit"
    http.post(edit, {"text": "It was hard with the sleeplessness again.",
                     "speaker": str(segment.speaker.public_id)})
    page = http.get(page_url(transcript.recording)).content.decode()
    assert timings(page)["w"][1] == []
    row = passage(page, segment)
    assert '<p class="seg-text">It was hard with the sleeplessness again.</p>' in row
    assert "<del>It was hard with the insomnia again.</del>" in row


def test_transcript_text_is_escaped(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: Any
) -> None:
    made = make_transcript(recording_for(cast, "a", tmp_path),
                           [("S1", 'A <b>bold</b> "claim" & more')])
    page = signed_in(cast.therapist_a).get(page_url(made.recording)).content.decode()
    assert "<b>" not in page
    assert "<span>&lt;b&gt;bold&lt;/b&gt;</span>" in page and "<span>&amp;</span>" in page


# ---- choosing a recording, and none yet --------------------------------------------------------

def test_session_page_chooses_a_recording_with_r(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    older = transcript.recording
    newer = make_recording(older.session, b"second recording " * 50, created_by=cast.therapist_a)
    http = signed_in(cast.therapist_a)
    default = http.get(session_url(older)).content.decode()
    assert f'data-recording="{newer.public_id}"' in default  # the newest by default
    assert f'href="?r={older.public_id}#workspace"' in default
    assert "has not been transcribed" in default
    chosen = http.get(session_url(older), {"r": str(older.public_id)}).content.decode()
    assert f'data-recording="{older.public_id}"' in chosen and "insomnia" in chosen
    # Passage links keep the choice, so playing from a passage stays on this recording.
    assert f'href="?r={older.public_id}&amp;t=5.00"' in chosen
    # Nonsense, or a recording of another session, falls back to the newest.
    for wrong in ("nonsense", str(make_recording(first_session(cast, "b"), b"x" * 100,
                                                 created_by=cast.therapist_b).public_id)):
        page = http.get(session_url(older), {"r": wrong}).content.decode()
        assert f'data-recording="{newer.public_id}"' in page
        assert f'data-recording="{wrong}"' not in page


def test_session_without_a_recording_says_how_to_add_one(cast: Cast, signed_in: Any) -> None:
    session = first_session(cast)
    url = f"/sessions/{session.public_id}/"
    page = signed_in(cast.therapist_a).get(url).content.decode()
    assert "No recording of this session yet." in page
    assert "Record the session in the browser or upload a file" in page
    assert 'id="workspace"' not in page
    supervisor = signed_in(cast.supervisor).get(url).content.decode()
    assert "When the therapist records this session" in supervisor


# ---- who sees what -----------------------------------------------------------------------------

def test_supervisor_listens_and_reads_but_cannot_correct_or_erase(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    page = signed_in(cast.supervisor).get(session_url(transcript.recording)).content.decode()
    assert 'id="workspace"' in page and "insomnia" in page
    assert "correct-form" not in page and "data-edit-url" not in page and "edit=" not in page
    assert "/rename" not in page and "/erase/" not in page


def test_client_page_shows_the_workspace_without_staff_links_or_her_name(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    page = signed_in(cast.client_user_a).get(page_url(transcript.recording)).content.decode()
    assert 'id="workspace"' in page and "insomnia" in page
    assert f'<a href="/me/{cast.client_a.public_id}/">← My care</a>' in page
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert heading and cast.client_a.given_name not in heading.group(1)
    assert "/clients/" not in page and "/sessions/" not in page
    assert "correct-form" not in page and "/erase/" not in page


@pytest.mark.parametrize("persona", ["therapist_b", "client_user_b", "researcher", "admin"])
def test_strangers_get_404_on_both_pages(
    cast: Cast, transcript: Transcript, persona: str
) -> None:
    http = sign_in(HttpClient(), getattr(cast, persona))
    for url in (session_url(transcript.recording), page_url(transcript.recording)):
        response = http.get(url)
        assert response.status_code == 404
        assert b"insomnia" not in response.content


def test_session_page_records_reading_the_session_and_its_transcript(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    signed_in(cast.therapist_a).get(session_url(transcript.recording))
    viewed = AuditEvent.objects.filter(seq__gt=before, event_type="record.viewed")
    assert {e.target_id for e in viewed} == {
        str(transcript.recording.session.public_id), str(transcript.public_id)}
    assert {e.client_id for e in viewed} == {cast.client_a.public_id}


# ---- deep links and corrections that come back here --------------------------------------------

def test_moment_link_starts_there_on_both_pages(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    recording = transcript.recording
    for url, extra in ((page_url(recording), {}), (session_url(recording),
                                                   {"r": str(recording.public_id)})):
        page = http.get(url, {"t": "5", **extra}).content.decode()
        assert 'data-start="5.00"' in page
        assert f'src="{media_url(recording)}#t=5.0"' in page
    odd = http.get(page_url(recording), {"t": "-3"}).content.decode()
    assert "data-start" not in odd and "#t=" not in odd


def test_correction_without_javascript_returns_to_the_session_page(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    recording = transcript.recording
    segment = transcript.segments.get(index=1)
    here = f"{session_url(recording)}?r={recording.public_id}"
    page = http.get(session_url(recording), {"r": str(recording.public_id),
                                             "edit": str(segment.public_id)}).content.decode()
    form = page[page.index('<form id="correct-form"'):]
    form = form[:form.index("</form>")]
    action = f"/transcripts/{transcript.public_id}/segments/{segment.public_id}/edit"
    assert f'action="{action}"' in form and " hidden" not in form.split(">")[0]
    assert ">It was hard with the insomnia again.</textarea>" in form
    assert f'<option value="{segment.speaker.public_id}" selected>' in form
    assert f'name="next" value="{html.escape(here)}"' in form
    response = http.post(action, {"text": "It was hard, the insomnia again.",
                                  "speaker": str(segment.speaker.public_id), "next": here})
    assert response.status_code == 302
    assert response["Location"] == f"{here}#seg-{segment.public_id}"
    segment.refresh_from_db()
    assert segment.text == "It was hard, the insomnia again."


@pytest.mark.parametrize("next_url", [
    "//evil.example/", "https://evil.example/x", "javascript:alert(1)", "/ok#frag", "",
])
def test_only_local_return_addresses_are_followed(
    cast: Cast, transcript: Transcript, signed_in: Any, next_url: str
) -> None:
    segment = transcript.segments.get(index=0)
    response = signed_in(cast.therapist_a).post(
        f"/transcripts/{transcript.public_id}/segments/{segment.public_id}/edit",
        {"text": segment.text, "speaker": "", "next": next_url})
    assert response["Location"] == (f"{page_url(transcript.recording)}#seg-{segment.public_id}")


def test_speaker_rename_returns_to_the_page_it_came_from(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    recording = transcript.recording
    speaker = transcript.speakers.get(label="S2")
    here = f"{session_url(recording)}?r={recording.public_id}"
    response = signed_in(cast.therapist_a).post(
        f"/transcripts/{transcript.public_id}/speakers/{speaker.public_id}/rename",
        {"name": "Cora", "next": here})
    assert response["Location"] == f"{here}#speakers"


def test_player_script_keeps_the_contract_with_the_comments_panel() -> None:
    script = PLAYER_JS.read_text()
    for name in ("relisten:seek", "relisten:timeupdate", "relisten:comment-here"):
        assert f'"{name}"' in script
    assert "TIMEUPDATE_EVERY_MS = 250" in script  # at most four reports a second
    assert 'getElementById("ws-data")' in script
    assert "fetch(" not in script  # nothing is asked of the server per word, or at all


# ---- speed: a 50-minute session in a bounded number of queries ---------------------------------

def _count_queries(http: HttpClient, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = http.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_long_session_pages_take_a_fixed_number_of_queries(
    cast: Cast, vault_env: VaultEnv, signed_in: Any, django_assert_max_num_queries: Any
) -> None:
    session = first_session(cast)
    http = signed_in(cast.therapist_a)
    counts: dict[int, tuple[int, int]] = {}
    for passages in (70, 700):
        recording = make_recording(session, b"audio " * 100, created_by=cast.therapist_a)
        build_long_transcript(recording, author=cast.therapist_a, segments=passages,
                              comments=passages // 14, seconds=passages * 60 / 14)
        session_page = f"/sessions/{session.public_id}/?r={recording.public_id}"
        on_session, page = _count_queries(http, session_page)
        on_recording, _ = _count_queries(http, page_url(recording))
        counts[passages] = (on_session, on_recording)
        data = timings(page)
        assert len(data["s"]) == passages
        corrected = len(range(0, passages, 100))  # every 100th passage, from the first
        assert sum(len(w) for w in data["w"]) == (passages - corrected) * 10
    assert counts[70] == counts[700], counts  # nothing is fetched per passage, word or comment
    # 39 and 25 today (the session page adds its own panels, and each page audits its reads).
    with django_assert_max_num_queries(42):
        http.get(session_page)
    with django_assert_max_num_queries(28):
        http.get(page_url(recording))
