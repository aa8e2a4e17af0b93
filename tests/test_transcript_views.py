"""The transcript page, corrections, speaker edits, exports and the transcription status API."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import docx
import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.audit.models import AuditEvent
from relisten.clients.actions import share_with_client
from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.transcripts.models import Correction, RunState, Speaker, Transcript, TranscriptRun
from relisten.transcripts.search import search_segments
from relisten.transcripts.views import export_filename, to_asr_transcript
from tests.conftest import sign_in
from tests.test_media_playback import VaultEnv, vault_env_fixture
from tests.test_transcript_search import make_transcript, recording_for

__all__ = ["vault_env_fixture"]

LINES = [
    ("S1", "Good morning, how was the week?"),
    ("S2", "It was ~hard with the ~insomnia again."),
    ("S1", "What helped, if anything?"),
]


@pytest.fixture
def transcript(cast: Cast, vault_env: VaultEnv, tmp_path: Path) -> Transcript:
    recording = recording_for(cast, "a", tmp_path)
    # Cora reads it only because her therapist shared the session with her (issue 5).
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    return make_transcript(recording, LINES)


def page_url(recording: Recording) -> str:
    return f"/recordings/{recording.public_id}/transcript/"


def status_url(recording: Recording) -> str:
    return f"/api/v1/recordings/{recording.public_id}/transcription"


def segment_url(transcript: Transcript, index: int) -> str:
    segment = transcript.segments.get(index=index)
    return f"/transcripts/{transcript.public_id}/segments/{segment.public_id}/edit"


def speaker_url(transcript: Transcript, label: str) -> str:
    speaker = transcript.speakers.get(label=label)
    return f"/transcripts/{transcript.public_id}/speakers/{speaker.public_id}/rename"


def export_url(transcript: Transcript, fmt: str) -> str:
    return f"/transcripts/{transcript.public_id}/export.{fmt}"


def new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=before).order_by("seq"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def run_for(recording: Recording, state: str, **fields: Any) -> TranscriptRun:
    return TranscriptRun.objects.create(recording=recording, state=state, **fields)


# ---- the page --------------------------------------------------------------------------------

def test_therapist_sees_speakers_times_low_confidence_and_forms(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    before = last_seq()
    response = signed_in(cast.therapist_a).get(page_url(transcript.recording))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Therapist" in page and "Client" in page
    assert '<span class="low" title="The recogniser was unsure of this word">hard</span>' in page
    assert ">0:05</a>" in page  # the second segment starts at 5 s
    for fmt in ("vtt", "srt", "txt", "json", "docx"):
        assert export_url(transcript, fmt) in page
    # One correction form for the whole page (moved into a passage by the player script), and
    # a plain link per passage that opens it without JavaScript.
    placeholder = f"/transcripts/{transcript.public_id}/segments/{uuid.UUID(int=0)}/edit"
    assert f'data-edit-url="{placeholder}"' in page
    assert page.count('id="correct-form"') == 1
    segment = transcript.segments.get(index=1)
    assert f"?edit={segment.public_id}#correct-form" in page
    assert speaker_url(transcript, "S2") in page
    assert "csrfmiddlewaretoken" in page
    assert f"/recordings/{transcript.recording.public_id}/media" in page
    [viewed] = [e for e in new_events(before) if e.event_type == "record.viewed"]
    assert viewed.client_id == cast.client_a.public_id
    assert viewed.target_id == str(transcript.public_id)


@pytest.mark.parametrize("persona", ["supervisor", "client_user_a"])
def test_readers_see_the_transcript_but_no_edit_forms(
    cast: Cast, transcript: Transcript, signed_in: Any, persona: str
) -> None:
    response = signed_in(getattr(cast, persona)).get(page_url(transcript.recording))
    assert response.status_code == 200
    page = response.content.decode()
    assert "insomnia" in page
    assert "/edit" not in page and "/rename" not in page
    assert "correct-form" not in page and "edit=" not in page
    assert export_url(transcript, "vtt") in page


def test_client_page_links_back_to_portal(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    page = signed_in(cast.client_user_a).get(page_url(transcript.recording)).content.decode()
    assert f"/me/{cast.client_a.public_id}/" in page
    assert "/clients/" not in page  # no links to staff pages she cannot open


def test_moment_link_starts_the_player_there(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    page = http.get(page_url(transcript.recording), {"t": "5"}).content.decode()
    assert f"/recordings/{transcript.recording.public_id}/media#t=5.0" in page
    # Nonsense in ?t= is ignored rather than echoed.
    odd = http.get(page_url(transcript.recording), {"t": "5\"><script>"})
    assert odd.status_code == 200 and b"<script>" not in odd.content.replace(
        b'<script type="module" src=', b"")


def test_foreign_transcript_page_is_404_and_audited(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    before = last_seq()
    response = signed_in(cast.therapist_b).get(page_url(transcript.recording))
    assert response.status_code == 404
    assert [e.event_type for e in new_events(before)] == ["authz.denied"]


# ---- status while a run is active ------------------------------------------------------------

def test_active_run_shows_progress_with_external_script_only(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: Any
) -> None:
    recording = recording_for(cast, "a", tmp_path)
    run_for(recording, RunState.RUNNING, step="transcribe", progress=42.4,
            started_at=timezone.now())
    page = signed_in(cast.therapist_a).get(page_url(recording)).content.decode()
    assert f'data-status-url="{status_url(recording)}"' in page
    assert re.search(r'<progress max="100" value="42"', page)
    assert "transcribe" in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert '<script type="module" src="/static/relisten/transcript-status.js">' in scripts
    assert all(re.fullmatch(r'<script type="module" src="/static/relisten/[a-z-]+\.js">', tag)
               for tag in scripts), scripts  # same-origin modules only, nothing inline
    assert "insomnia" not in page  # no transcript yet
    assert 'id="player"' in page  # the recording can be played while the transcript is made


@pytest.mark.parametrize(("state", "error", "shown"), [
    (RunState.FAILED, "The file could not be read.", "The file could not be read."),
    (RunState.NO_SPEECH, "", "No speech was detected"),
])
def test_finished_run_without_transcript_says_why(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: Any,
    state: str, error: str, shown: str,
) -> None:
    recording = recording_for(cast, "a", tmp_path)
    run_for(recording, state, error=error, finished_at=timezone.now())
    page = signed_in(cast.therapist_a).get(page_url(recording)).content.decode()
    assert shown in page
    assert "data-status-url" not in page and "transcript-status.js" not in page


def test_no_run_yet(cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: Any) -> None:
    recording = recording_for(cast, "a", tmp_path)
    page = signed_in(cast.therapist_a).get(page_url(recording)).content.decode()
    assert "has not been transcribed" in page


def test_status_js_polls_the_api_every_two_seconds() -> None:
    script = (Path(__file__).parent.parent / "relisten" / "static" / "relisten"
              / "transcript-status.js").read_text()
    assert "dataset.statusUrl" in script and "2000" in script
    assert "data-status-progress" in script and "location.reload" in script


def test_session_page_links_to_transcript_with_status(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    run_for(transcript.recording, RunState.DONE, progress=100, finished_at=timezone.now())
    session = transcript.recording.session
    page = signed_in(cast.therapist_a).get(f"/sessions/{session.public_id}/").content.decode()
    assert page_url(transcript.recording) in page
    assert "Done" in page


# ---- the status API --------------------------------------------------------------------------

def test_status_api_before_any_run(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: Any
) -> None:
    recording = recording_for(cast, "a", tmp_path)
    data = signed_in(cast.therapist_a).get(status_url(recording)).json()
    assert data["state"] == "none" and data["active"] is False and data["transcript"] is None


def test_status_api_reports_latest_run_and_audits_once_per_window(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    recording = transcript.recording
    run_for(recording, RunState.FAILED, error="old")
    run = run_for(recording, RunState.RUNNING, step="diarize", progress=63.25,
                  step_timings={"decode": 1.5, "transcribe": 20.25}, attempts=1,
                  started_at=timezone.now())
    TranscriptRun.objects.filter(pk=run.pk).update(created_at=timezone.now())
    http = signed_in(cast.therapist_a)
    before = last_seq()
    first = http.get(status_url(recording))
    second = http.get(status_url(recording))
    assert first.status_code == second.status_code == 200
    data = first.json()
    assert data["state"] == "running" and data["active"] is True
    assert data["state_label"] == "Transcribing"
    assert data["step"] == "diarize"
    assert data["progress"] == round(63.25, 1)
    assert data["step_timings"] == {"decode": 1.5, "transcribe": 20.25}
    assert data["error"] == "" and data["attempts"] == 1
    assert data["transcript"] == str(transcript.public_id)
    viewed = [e for e in new_events(before) if e.event_type == "record.viewed"]
    assert len(viewed) == 1 and viewed[0].client_id == cast.client_a.public_id


@pytest.mark.parametrize("persona", ["therapist_b", "researcher", "admin", "client_user_b"])
def test_status_api_refuses_strangers(
    cast: Cast, transcript: Transcript, persona: str
) -> None:
    http = sign_in(HttpClient(), getattr(cast, persona))
    before = last_seq()
    response = http.get(status_url(transcript.recording))
    assert response.status_code == 404
    assert [e.event_type for e in new_events(before)] == ["authz.denied"]


# ---- corrections -----------------------------------------------------------------------------

def test_correcting_text_keeps_history_and_reindexes(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    segment = transcript.segments.get(index=1)
    speaker = str(segment.speaker.public_id)
    response = http.post(segment_url(transcript, 1),
                         {"text": "It was hard with the sleeplessness again.", "speaker": speaker})
    assert response.status_code == 302
    assert response["Location"] == f"{page_url(transcript.recording)}#seg-{segment.public_id}"
    segment.refresh_from_db()
    assert segment.text == "It was hard with the sleeplessness again."
    [correction] = Correction.objects.filter(segment=segment)
    assert correction.old_value == "It was hard with the insomnia again."
    assert correction.by == cast.therapist_a
    page = http.get(page_url(transcript.recording)).content.decode()
    assert "<del>It was hard with the insomnia again.</del>" in page
    # The recogniser's words no longer spell the text, so nothing in it is flagged.
    row = page[page.index(f'id="seg-{segment.public_id}"'):]
    row = row[:row.index("</li>")]
    assert 'class="low"' not in row
    assert [h.segment.pk for h in search_segments(cast.therapist_a, "sleeplessness")] == [
        segment.pk]
    assert search_segments(cast.therapist_a, "insomnia") == []


def test_empty_correction_is_refused_kindly(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    response = http.post(segment_url(transcript, 1), {"text": "   ", "speaker": ""}, follow=True)
    assert response.status_code == 200
    assert b"The text cannot be empty" in response.content
    assert transcript.segments.get(index=1).text == "It was hard with the insomnia again."
    assert not Correction.objects.exists()


def test_speaker_edits_flow_into_every_export(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    http = signed_in(cast.therapist_a)
    assert http.post(speaker_url(transcript, "S2"), {"name": "Cora"}).status_code == 302
    assert http.post(speaker_url(transcript, "S1"), {"name": "Tess"}).status_code == 302
    # The third line was said by the client, not the therapist.
    cora = transcript.speakers.get(label="S2")
    third = transcript.segments.get(index=2)
    response = http.post(segment_url(transcript, 2),
                         {"text": third.text, "speaker": str(cora.public_id)})
    assert response.status_code == 302
    assert Correction.objects.get(segment=third).field == "speaker"

    vtt = http.get(export_url(transcript, "vtt")).content.decode()
    assert "<v Tess>Good morning, how was the week?" in vtt
    assert "<v Cora>What helped, if anything?" in vtt
    assert "Therapist" not in vtt
    srt = http.get(export_url(transcript, "srt")).content.decode()
    assert "Cora: What helped, if anything?" in srt
    txt = http.get(export_url(transcript, "txt")).content.decode()
    assert "[00:00:10] Cora: What helped, if anything?" in txt
    data = json.loads(http.get(export_url(transcript, "json")).content)
    assert [s["speaker"] for s in data["segments"]] == ["Tess", "Cora", "Cora"]
    assert data["segments"][1]["words"][2]["low_confidence"] is True
    document = docx.Document(io.BytesIO(http.get(export_url(transcript, "docx")).content))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Cora: What helped, if anything?" in text and "Tess:" in text
    assert "Cora" not in document.core_properties.title
    assert document.core_properties.title.startswith("Session 1 transcript, ")
    # The page's history shows names, not diarization labels.
    page = http.get(page_url(transcript.recording)).content.decode()
    assert "<del>Tess</del> → <ins>Cora</ins>" in page


def test_blank_speaker_name_is_refused(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    response = signed_in(cast.therapist_a).post(speaker_url(transcript, "S2"), {"name": " "},
                                                follow=True)
    assert b"Please give the speaker a name" in response.content
    assert transcript.speakers.get(label="S2").name == "Client"


@pytest.mark.parametrize(("persona", "status"), [
    ("supervisor", 403), ("client_user_a", 403), ("therapist_b", 404), ("researcher", 404),
])
def test_only_the_treating_therapist_corrects(
    cast: Cast, transcript: Transcript, persona: str, status: int
) -> None:
    http = sign_in(HttpClient(), getattr(cast, persona))
    for url, data in ((segment_url(transcript, 1), {"text": "changed", "speaker": ""}),
                      (speaker_url(transcript, "S1"), {"name": "Someone"})):
        assert http.post(url, data).status_code == status
    assert not Correction.objects.exists()
    assert transcript.speakers.get(label="S1").name == "Therapist"


def test_corrections_need_the_csrf_token(cast: Cast, transcript: Transcript) -> None:
    http = sign_in(HttpClient(enforce_csrf_checks=True), cast.therapist_a)
    response = http.post(segment_url(transcript, 1), {"text": "forged", "speaker": ""})
    assert response.status_code == 403
    assert transcript.segments.get(index=1).text != "forged"


def test_speaker_of_another_transcript_is_not_accepted(
    cast: Cast, transcript: Transcript, vault_env: VaultEnv, tmp_path: Path, signed_in: Any
) -> None:
    other = make_transcript(recording_for(cast, "a", tmp_path), [("S9", "Elsewhere entirely.")])
    foreign = Speaker.objects.get(transcript=other)
    segment = transcript.segments.get(index=0)
    response = signed_in(cast.therapist_a).post(
        segment_url(transcript, 0), {"text": segment.text, "speaker": str(foreign.public_id)})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.speaker.label == "S1"


# ---- exports ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "media_type"), [
    ("vtt", "text/vtt"), ("srt", "application/x-subrip"), ("txt", "text/plain"),
    ("json", "application/json"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
])
def test_export_download_is_private_audited_and_safely_named(
    cast: Cast, transcript: Transcript, signed_in: Any, fmt: str, media_type: str
) -> None:
    before = last_seq()
    response = signed_in(cast.supervisor).get(export_url(transcript, fmt))
    assert response.status_code == 200
    assert response["Content-Type"].startswith(media_type)
    assert response["Cache-Control"] == "no-store"
    disposition = response["Content-Disposition"]
    session = transcript.recording.session
    assert disposition.startswith("attachment; filename=\"session-1-")
    assert disposition.endswith(f'-transcript.{fmt}"')
    assert "Cora" not in disposition and "Client" not in disposition
    assert re.fullmatch(r'attachment; filename="[a-z0-9.-]+"', disposition)
    assert str(session.number) in disposition
    [event] = new_events(before)
    assert event.event_type == "transcript.exported"
    assert event.changes == {"format": fmt}
    assert event.client_id == cast.client_a.public_id
    assert event.target_id == str(transcript.public_id)
    assert event.actor_role == "supervisor"


def test_vtt_has_voice_tags(cast: Cast, transcript: Transcript, signed_in: Any) -> None:
    vtt = signed_in(cast.therapist_a).get(export_url(transcript, "vtt")).content.decode()
    assert vtt.startswith("WEBVTT")
    assert "00:00:05.000 --> 00:00:09.500\n<v Client>It was hard with the insomnia again." in vtt


def test_unknown_export_format_is_404(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    assert signed_in(cast.therapist_a).get(export_url(transcript, "pdf")).status_code == 404


def test_foreign_export_is_404_and_not_exported(
    cast: Cast, transcript: Transcript, signed_in: Any
) -> None:
    before = last_seq()
    assert signed_in(cast.therapist_b).get(export_url(transcript, "txt")).status_code == 404
    assert [e.event_type for e in new_events(before)] == ["authz.denied"]


def test_conversion_uses_speaker_names_and_words(transcript: Transcript) -> None:
    converted = to_asr_transcript(transcript)
    assert [s.speaker for s in converted.segments] == ["Therapist", "Client", "Therapist"]
    assert converted.segments[1].words[2].probability < 0.5
    assert "".join(w.text for w in converted.segments[1].words).strip() == (
        converted.segments[1].text)
    assert export_filename(transcript, "txt").startswith("session-1-")
