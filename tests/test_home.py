"""The home page per persona: the therapist's recent and unprocessed sessions and what needs
them, the supervisor's review queue, the trainee's feedback; bounded queries for all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relisten.accounts.models import User
from relisten.clients.actions import schedule_session, share_for_supervision, share_with_client
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose
from relisten.core.personas import Cast
from relisten.recordings import actions as recording_actions
from relisten.recordings.models import Kind, Recording, State
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import RunState, TranscriptRun
from tests.test_media_playback import VaultEnv, make_recording, set_consent, vault_env_fixture
from tests.test_transcript_search import make_transcript

__all__ = ["vault_env_fixture"]

SignedIn = Callable[[User], HttpClient]


def session_of(cast: Cast, number: int, which: str = "a") -> TherapySession:
    client = cast.client_a if which == "a" else cast.client_b
    return client.episodes.get().sessions.get(number=number)


def new_session(cast: Cast, by: User, days_ago: float = 1, which: str = "a") -> TherapySession:
    client = {"a": cast.client_a, "b": cast.client_b, "t": cast.trainee_client}[which]
    return schedule_session(actor=by, episode=client.episodes.get(), modality="in_person",
                            scheduled_at=timezone.now() - dt.timedelta(days=days_ago))


def recorded(session: TherapySession, by: User, tmp_path: Path) -> Recording:
    return make_recording(session, b"audio " * 200, created_by=by, scratch=tmp_path)


def section(page: str, section_id: str) -> str:
    """The HTML of one <section id=...> of the page (tests look only where things belong)."""
    start = page.index(f'id="{section_id}"')
    return page[start:page.index("</section>", start)]


def comment(recording: Recording, author: User, scope: str, start: float = 30.0,
            days_ago: float = 0) -> Comment:
    made = Comment.objects.create(recording=recording, author=author, start=start, scope=scope,
                                  body="A remark about this moment")
    if days_ago:
        Comment.objects.filter(pk=made.pk).update(
            created_at=timezone.now() - dt.timedelta(days=days_ago))
    return made


# ---- therapist -------------------------------------------------------------------------------

def test_therapist_sees_recent_sessions_with_status(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    done = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    make_transcript(done, [("S1", "Hello.")])
    waiting = recorded(session_of(cast, 2), cast.therapist_a, tmp_path)
    TranscriptRun.objects.create(recording=waiting, state=RunState.RUNNING, progress=40)
    future = new_session(cast, cast.therapist_a, days_ago=-3)
    page = signed_in(cast.therapist_a).get("/").content.decode()
    recent = section(page, "recent")
    assert "Cora Client, session 1" in recent and "Recorded, transcript ready" in recent
    assert "Cora Client, session 2" in recent and "Recorded, transcript being made" in recent
    assert f'href="/sessions/{session_of(cast, 1).public_id}/"' in recent
    # Newest first; sessions still to come are not "recent"; other therapists' never shown.
    assert recent.index("session 2") < recent.index("session 1")
    assert str(future.public_id) not in recent
    assert "Colin" not in page


def test_therapist_sees_what_is_not_transcribed_yet(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    running = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    TranscriptRun.objects.create(recording=running, state=RunState.RUNNING, progress=42)
    never = recorded(session_of(cast, 2), cast.therapist_a, tmp_path)
    done = recorded(new_session(cast, cast.therapist_a), cast.therapist_a, tmp_path)
    make_transcript(done, [("S1", "Hello.")])
    TranscriptRun.objects.create(recording=done, state=RunState.DONE, progress=100)
    unprocessed = section(signed_in(cast.therapist_a).get("/").content.decode(), "unprocessed")
    assert f"/recordings/{running.public_id}/transcript/" in unprocessed
    assert "Being transcribed, 42%" in unprocessed
    assert f"/recordings/{never.public_id}/transcript/" in unprocessed
    assert f"/recordings/{done.public_id}/" not in unprocessed


def test_therapist_attention_lists_failures_uploads_and_new_comments(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    failed = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    TranscriptRun.objects.create(recording=failed, state=RunState.FAILED,
                                 error="The file could not be read.")
    broken = recorded(session_of(cast, 2), cast.therapist_a, tmp_path)
    Recording.objects.filter(pk=broken.pk).update(state=State.FAILED,
                                                  failure="The upload was incomplete.")
    upload = recording_actions.create_upload(actor=cast.therapist_a, session=session_of(cast, 2),
                                             kind=Kind.AUDIO, length=1000)
    shared = recorded(new_session(cast, cast.therapist_a), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=shared.session, shared=True)
    comment(shared, cast.client_user_a, Scope.CLIENT, start=75.5)
    comment(shared, cast.supervisor, Scope.CARE_TEAM)
    comment(shared, cast.client_user_a, Scope.PRIVATE)  # her own note: never shown to staff
    comment(shared, cast.therapist_a, Scope.CARE_TEAM)  # the therapist's own: not "new"
    comment(shared, cast.supervisor, Scope.CARE_TEAM, days_ago=30)  # too old to be new
    attention = section(signed_in(cast.therapist_a).get("/").content.decode(), "attention")
    assert "Transcription failed" in attention and "The file could not be read." in attention
    assert "A recording could not be used" in attention
    assert "The upload was incomplete." in attention
    assert "Upload not finished" in attention
    assert f'href="/sessions/{upload.recording.session.public_id}/"' in attention
    assert "New comment from Cora (client)" in attention
    assert f"/recordings/{shared.public_id}/transcript/?t=75.5" in attention
    assert "New comment from Dr Sam Reyes (supervisor)" in attention
    assert attention.count("New comment from") == 2  # not private, own or old ones
    assert "A remark about this moment" not in attention  # no comment text on the home page


def test_nothing_to_do_says_so(cast: Cast, signed_in: SignedIn) -> None:
    page = signed_in(cast.therapist_b).get("/").content.decode()
    assert "Nothing needs your attention." in section(page, "attention")
    assert "Nothing is waiting to be transcribed." in section(page, "unprocessed")
    assert 'id="queue"' not in page and 'id="feedback"' not in page


# ---- supervisor ------------------------------------------------------------------------------

def test_supervisor_queue_oldest_first_and_only_with_consent(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    older, newer = session_of(cast, 2), session_of(cast, 1)
    recorded(newer, cast.therapist_a, tmp_path)
    share_for_supervision(actor=cast.therapist_a, session=older, shared=True)
    TherapySession.objects.filter(pk=older.pk).update(
        shared_for_supervision_at=timezone.now() - dt.timedelta(days=2))
    share_for_supervision(actor=cast.therapist_a, session=newer, shared=True)
    unconsented = new_session(cast, cast.trainee, which="t")
    share_for_supervision(actor=cast.trainee, session=unconsented, shared=True)
    http = signed_in(cast.supervisor)
    queue = section(http.get("/").content.decode(), "queue")
    assert queue.index(f"/sessions/{older.public_id}/") < queue.index(
        f"/sessions/{newer.public_id}/")
    assert "Cora Client, session 1" in queue and "Tess Morgan" in queue
    assert "1 recording" in queue and "no recording yet" in queue
    assert str(unconsented.public_id) not in queue and "Tomas" not in queue
    set_consent(cast, Purpose.SUPERVISION_REVIEW, granted=False)
    queue = section(http.get("/").content.decode(), "queue")
    assert "Nothing is waiting for your review." in queue


# ---- trainee ---------------------------------------------------------------------------------

def test_trainee_sees_own_sessions_and_feedback(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    session = new_session(cast, cast.trainee, which="t")
    recording = recorded(session, cast.trainee, tmp_path)
    comment(recording, cast.supervisor, Scope.CARE_TEAM, start=12)
    comment(recording, cast.supervisor, Scope.PRIVATE, start=13)  # the supervisor's own note
    comment(recording, cast.trainee, Scope.CARE_TEAM, start=14)
    tess = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    comment(tess, cast.supervisor, Scope.CARE_TEAM)  # feedback for someone else
    page = signed_in(cast.trainee).get("/").content.decode()
    recent = section(page, "recent")
    assert "My recent sessions" in recent and "Tomas Field, session 1" in recent
    assert "Cora" not in page
    feedback = section(page, "feedback")
    assert feedback.count("Comment from Dr Sam Reyes (supervisor)") == 1
    assert f"/recordings/{recording.public_id}/transcript/?t=12" in feedback
    assert "New comment from" not in section(page, "attention")


# ---- everyone else still gets what they had --------------------------------------------------

def test_other_roles_keep_their_home(cast: Cast, signed_in: SignedIn) -> None:
    admin = signed_in(cast.admin).get("/").content.decode()
    assert f"/clinics/{cast.clinic.public_id}/people/" in admin
    assert 'id="attention"' not in admin and "Cora" not in admin
    researcher = signed_in(cast.researcher).get("/").content.decode()
    assert "Research reports will appear here" in researcher
    client = signed_in(cast.client_user_a).get("/").content.decode()
    assert f"/me/{cast.client_a.public_id}/" in client and 'id="attention"' not in client


# ---- bounded queries -------------------------------------------------------------------------

def _queries(http: HttpClient) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert http.get("/").status_code == 200
    return len(captured)


def _busy_week(cast: Cast, tmp_path: Path, sessions: int) -> None:
    """Sessions with recordings in every state, comments from the client and the supervisor."""
    for number in range(sessions):
        session = new_session(cast, cast.therapist_a, days_ago=number + 0.5)
        share_with_client(actor=cast.therapist_a, session=session, shared=True)
        share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
        recording = recorded(session, cast.therapist_a, tmp_path)
        state = (RunState.FAILED, RunState.RUNNING, RunState.DONE)[number % 3]
        TranscriptRun.objects.create(recording=recording, state=state)
        if state == RunState.DONE:
            make_transcript(recording, [("S1", "Hello.")])
        comment(recording, cast.client_user_a, Scope.CLIENT)
        comment(recording, cast.supervisor, Scope.CARE_TEAM)
        recording_actions.create_upload(actor=cast.therapist_a, session=session,
                                        kind=Kind.AUDIO, length=1000)
        trainee_session = new_session(cast, cast.trainee, which="t", days_ago=number + 0.5)
        trainee_recording = recorded(trainee_session, cast.trainee, tmp_path)
        comment(trainee_recording, cast.supervisor, Scope.CARE_TEAM)


def test_home_queries_do_not_grow_with_the_caseload(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn,
    django_assert_max_num_queries: Any,
) -> None:
    people = (cast.therapist_a, cast.supervisor, cast.trainee)
    clients = {user.pk: signed_in(user) for user in people}
    _busy_week(cast, tmp_path, sessions=1)
    few = {pk: _queries(http) for pk, http in clients.items()}
    _busy_week(cast, tmp_path, sessions=8)
    many = {pk: _queries(http) for pk, http in clients.items()}
    assert many == few, (few, many)
    for http in clients.values():
        with django_assert_max_num_queries(25):
            http.get("/")
