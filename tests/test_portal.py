"""Sharing sessions (with the client, for supervision), the client portal and the supervisor's
queue: the actions and their audit rows, the access rules, and what the pages show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relisten import access
from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.clients.actions import (
    schedule_session,
    set_clinic_sharing_default,
    share_for_supervision,
    share_with_client,
)
from relisten.clients.models import TherapySession
from relisten.clients.sharing import sharing_context
from relisten.consent.actions import revoke
from relisten.consent.models import Method, Purpose
from relisten.core.personas import Cast
from relisten.recordings.models import Recording, State
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import RunState, TranscriptRun
from tests.test_media_playback import (
    VaultEnv,
    first_session,
    make_recording,
    set_consent,
    vault_env_fixture,
)
from tests.test_transcript_search import make_transcript

__all__ = ["vault_env_fixture"]

SignedIn = Callable[[User], HttpClient]


def session_of(cast: Cast, number: int, which: str = "a") -> TherapySession:
    client = cast.client_a if which == "a" else cast.client_b
    return client.episodes.get().sessions.get(number=number)


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("seq"))


def recorded(session: TherapySession, by: User, tmp_path: Path, seconds: float = 3120) -> Recording:
    recording = make_recording(session, b"session audio " * 300, created_by=by, scratch=tmp_path)
    Recording.objects.filter(pk=recording.pk).update(duration_s=seconds)
    recording.refresh_from_db()
    return recording


def portal_url(cast: Cast, which: str = "a") -> str:
    return f"/me/{(cast.client_a if which == 'a' else cast.client_b).public_id}/"


def sharing_url(session: TherapySession) -> str:
    return f"/sessions/{session.public_id}/sharing/"


# ---- actions and their audit rows ------------------------------------------------------------

def test_sharing_with_the_client_is_audited_and_idempotent(cast: Cast) -> None:
    session = first_session(cast)
    assert session.shared_with_client is False  # the demo clinic's policy is "off"
    share_with_client(actor=cast.therapist_a, session=session, shared=True)
    session.refresh_from_db()
    assert session.shared_with_client is True
    [shared] = events("session.shared_with_client")
    assert shared.actor_id == cast.therapist_a.public_id
    assert shared.client_id == cast.client_a.public_id
    assert shared.target_id == str(session.public_id)
    assert shared.changes == {"shared_with_client": True}
    # Sharing again changes nothing and so writes nothing.
    share_with_client(actor=cast.therapist_a, session=session, shared=True)
    assert len(events("session.shared_with_client")) == 1
    share_with_client(actor=cast.therapist_a, session=session, shared=False)
    session.refresh_from_db()
    assert session.shared_with_client is False
    assert len(events("session.unshared_with_client")) == 1


def test_sharing_for_supervision_keeps_when_and_needs_a_supervisor(cast: Cast) -> None:
    session = first_session(cast)
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    session.refresh_from_db()
    assert session.shared_for_supervision is True
    assert session.shared_for_supervision_at is not None
    assert events("session.shared_for_supervision")[0].changes == {"shared_for_supervision": True}
    share_for_supervision(actor=cast.therapist_a, session=session, shared=False)
    session.refresh_from_db()
    assert session.shared_for_supervision is False
    assert session.shared_for_supervision_at is None
    assert len(events("session.unshared_for_supervision")) == 1
    # Colin's episode has no supervisor: there is no one to share it with.
    with pytest.raises(ValueError, match="no supervisor"):
        share_for_supervision(actor=cast.therapist_b, session=session_of(cast, 1, "b"),
                              shared=True)
    assert session_of(cast, 1, "b").shared_for_supervision is False


def test_new_sessions_take_the_clinic_default(cast: Cast) -> None:
    episode = cast.client_a.episodes.get()
    before = schedule_session(actor=cast.therapist_a, episode=episode,
                              scheduled_at=timezone.now(), modality="in_person")
    assert before.shared_with_client is False
    set_clinic_sharing_default(actor=cast.admin, clinic=cast.clinic, share=True)
    [changed] = events("clinic.sharing_default_changed")
    assert changed.clinic_id == cast.clinic.public_id
    assert changed.changes == {"share_sessions_with_clients_by_default": True}
    episode.client.clinic.refresh_from_db()
    after = schedule_session(actor=cast.therapist_a, episode=episode,
                             scheduled_at=timezone.now(), modality="in_person")
    assert after.shared_with_client is True
    assert events("session.scheduled")[-1].changes["shared_with_client"] is True
    before.refresh_from_db()
    assert before.shared_with_client is False  # existing sessions keep their setting


def test_admin_sets_the_clinic_default_on_the_people_page(
    cast: Cast, signed_in: SignedIn
) -> None:
    http = signed_in(cast.admin)
    page = http.get(f"/clinics/{cast.clinic.public_id}/people/").content.decode()
    assert "New sessions start shared with the client" in page
    assert 'name="share_by_default"' in page and " checked" not in page
    response = http.post(f"/clinics/{cast.clinic.public_id}/sharing-default/",
                         {"share_by_default": "on"})
    assert response.status_code == 302
    cast.clinic.refresh_from_db()
    assert cast.clinic.share_sessions_with_clients_by_default is True
    page = http.get(f"/clinics/{cast.clinic.public_id}/people/").content.decode()
    assert 'id="share-default" aria-describedby="share-default-help" checked' in page
    # An unticked box is "off".
    http.post(f"/clinics/{cast.clinic.public_id}/sharing-default/", {})
    cast.clinic.refresh_from_db()
    assert cast.clinic.share_sessions_with_clients_by_default is False


# ---- the sharing panel and its form ----------------------------------------------------------

def test_therapist_shares_from_the_session_page(cast: Cast, signed_in: SignedIn) -> None:
    session = first_session(cast)
    http = signed_in(cast.therapist_a)
    page = http.get(f"/sessions/{session.public_id}/").content.decode()
    assert "Not shared. Cora cannot play this session" in page
    assert "Share with Cora" in page and "Share for supervision" in page
    response = http.post(sharing_url(session), {"target": "client", "shared": "1"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/sessions/{session.public_id}/"
    page = response.content.decode()
    assert "Session 1 is now shared with Cora." in page
    assert "Shared: Cora can play it and read its transcript in the portal." in page
    assert "Stop sharing with Cora" in page
    http.post(sharing_url(session), {"target": "supervision", "shared": "1"})
    session.refresh_from_db()
    assert session.shared_with_client and session.shared_for_supervision


def test_panel_says_when_consent_holds_a_share_back(cast: Cast) -> None:
    session = first_session(cast)
    share_with_client(actor=cast.therapist_a, session=session, shared=True)
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    revoke(actor=cast.client_user_a, client=cast.client_a, purpose=Purpose.CLIENT_ACCESS,
           method=Method.CLIENT_ONLINE)
    revoke(actor=cast.client_user_a, client=cast.client_a, purpose=Purpose.SUPERVISION_REVIEW,
           method=Method.CLIENT_ONLINE)
    session = access.get_session_for_user(cast.therapist_a, session.public_id)
    html = render_to_string("clients/_sharing.html",
                            {"sharing": sharing_context(cast.therapist_a, session)})
    assert ("Shared, but Cora cannot see it until Cora agrees to "
            "“Client access to own recordings”.") in html
    assert ("Shared, but Dr Sam Reyes cannot review it until Cora agrees to "
            "“Review by a clinical supervisor”.") in html
    assert f'href="/clients/{cast.client_a.public_id}/consent/"' in html


def test_panel_without_a_supervisor_disables_the_button_and_says_why(
    cast: Cast, signed_in: SignedIn
) -> None:
    session = session_of(cast, 1, "b")
    http = signed_in(cast.therapist_b)
    page = http.get(f"/sessions/{session.public_id}/").content.decode()
    assert "This episode of care has no supervisor, so there is no one to share it with." in page
    assert ('<button type="submit" disabled aria-describedby="share-supervision-state">'
            "Share for supervision</button>") in page
    # A forged request is refused in words, and nothing changes.
    response = http.post(sharing_url(session), {"target": "supervision", "shared": "1"},
                         follow=True)
    assert "there is no one to share the session with" in response.content.decode()
    session.refresh_from_db()
    assert session.shared_for_supervision is False
    assert events("session.shared_for_supervision") == []


def test_supervisor_sees_the_state_but_cannot_share(cast: Cast, signed_in: SignedIn) -> None:
    session = first_session(cast)
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    http = signed_in(cast.supervisor)
    page = http.get(f"/sessions/{session.public_id}/").content.decode()
    assert "Shared for supervision: it is in Dr Sam Reyes’s review queue." in page
    assert sharing_url(session) not in page  # no forms for someone who cannot change it
    assert http.post(sharing_url(session), {"target": "client", "shared": "1"}).status_code == 403
    session.refresh_from_db()
    assert session.shared_with_client is False


@pytest.mark.parametrize("persona", ["therapist_b", "client_user_a", "admin", "trainee"])
def test_nobody_else_may_share(cast: Cast, signed_in: SignedIn, persona: str) -> None:
    session = first_session(cast)
    response = signed_in(getattr(cast, persona)).post(
        sharing_url(session), {"target": "client", "shared": "1"})
    assert response.status_code == 404
    session.refresh_from_db()
    assert session.shared_with_client is False


def test_nonsense_sharing_form_changes_nothing(cast: Cast, signed_in: SignedIn) -> None:
    session = first_session(cast)
    http = signed_in(cast.therapist_a)
    response = http.post(sharing_url(session), {"target": "everyone", "shared": "1"},
                         follow=True)
    assert "That sharing choice was not understood" in response.content.decode()
    assert http.get(sharing_url(session)).status_code == 405  # POST only
    session.refresh_from_db()
    assert not session.shared_with_client and not session.shared_for_supervision


def test_sharing_context_takes_a_fixed_number_of_queries(
    cast: Cast, django_assert_max_num_queries: Any
) -> None:
    session = access.get_session_for_user(cast.therapist_a, first_session(cast).public_id)
    with django_assert_max_num_queries(3):
        context = sharing_context(cast.therapist_a, session)
    assert context["can_change"] is True and context["supervision"]["possible"] is True


# ---- who sees what ---------------------------------------------------------------------------

def test_client_sees_only_shared_sessions(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    shared = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    private = recorded(session_of(cast, 2), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=shared.session, shared=True)
    assert list(access.recordings_for_user(cast.client_user_a)) == [shared]
    http = signed_in(cast.client_user_a)
    assert http.get(f"/recordings/{shared.public_id}/media").status_code == 200
    assert http.get(f"/recordings/{private.public_id}/media").status_code == 404
    assert http.get(f"/recordings/{private.public_id}/transcript/").status_code == 404
    # Staff rules do not depend on sharing.
    for staff in (cast.therapist_a, cast.supervisor):
        assert set(access.recordings_for_user(staff)) == {shared, private}
    # Unsharing takes effect on the next request.
    share_with_client(actor=cast.therapist_a, session=shared.session, shared=False)
    assert http.get(f"/recordings/{shared.public_id}/media").status_code == 404


def test_shared_but_without_consent_is_not_visible(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    recording = recorded(first_session(cast), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    set_consent(cast, Purpose.CLIENT_ACCESS, granted=False)
    assert list(access.recordings_for_user(cast.client_user_a)) == []
    page = signed_in(cast.client_user_a).get(portal_url(cast)).content.decode()
    assert "Review my consent" in page and "Session 1" not in page
    # Colin's session is shared too, but he never agreed to client access.
    colin = recorded(session_of(cast, 1, "b"), cast.therapist_b, tmp_path)
    share_with_client(actor=cast.therapist_b, session=colin.session, shared=True)
    assert list(access.recordings_for_user(cast.client_user_b)) == []


def test_another_client_gets_404_for_a_shared_recording(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    recording = recorded(first_session(cast), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    set_consent(cast, Purpose.CLIENT_ACCESS, granted=True, client=cast.client_b)
    colin = signed_in(cast.client_user_b)
    for url in (f"/recordings/{recording.public_id}/media",
                f"/recordings/{recording.public_id}/transcript/", portal_url(cast)):
        response = colin.get(url)
        assert response.status_code == 404, url
        assert b"Session 1" not in response.content


# ---- the portal page -------------------------------------------------------------------------

def test_portal_lists_shared_sessions_with_status_and_links(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    first = recorded(session_of(cast, 1), cast.therapist_a, tmp_path, seconds=3120)
    make_transcript(first, [("S1", "How was the week?"), ("S2", "Quieter.")])
    second = recorded(session_of(cast, 2), cast.therapist_a, tmp_path, seconds=45)
    TranscriptRun.objects.create(recording=second, state=RunState.RUNNING, progress=40)
    hidden = recorded(schedule_session(actor=cast.therapist_a, episode=cast.client_a.episodes.get(),
                                       scheduled_at=timezone.now(), modality="in_person"),
                      cast.therapist_a, tmp_path)
    for recording in (first, second):
        share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    page = signed_in(cast.client_user_a).get(portal_url(cast)).content.decode()
    for recording in (first, second):
        assert f'href="/recordings/{recording.public_id}/transcript/"' in page
    assert f"/recordings/{hidden.public_id}/" not in page and "Session 3" not in page
    assert "52 min · Transcript ready" in page
    assert "45 s · Transcript being prepared" in page
    assert first.session.scheduled_at.strftime("%-d %b %Y") in page
    # Newest session first.
    assert page.index(str(second.public_id)) < page.index(str(first.public_id))
    assert 'action="/transcripts/search/"' in page and 'name="q"' in page
    assert f'href="/me/{cast.client_a.public_id}/consent/"' in page
    assert f'href="/me/{cast.client_a.public_id}/access/"' in page


def test_portal_says_when_nothing_is_shared(cast: Cast, signed_in: SignedIn) -> None:
    page = signed_in(cast.client_user_a).get(portal_url(cast)).content.decode()
    assert "No sessions have been shared with you yet." in page
    assert 'action="/transcripts/search/"' not in page  # nothing to search


def test_portal_search_finds_only_shared_sessions(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    shared = recorded(session_of(cast, 1), cast.therapist_a, tmp_path)
    make_transcript(shared, [("S2", "The garden felt calm today.")])
    private = recorded(session_of(cast, 2), cast.therapist_a, tmp_path)
    make_transcript(private, [("S2", "The garden was overgrown.")])
    share_with_client(actor=cast.therapist_a, session=shared.session, shared=True)
    page = signed_in(cast.client_user_a).get("/transcripts/search/", {"q": "garden"})
    content = page.content.decode()
    assert "calm" in content and "overgrown" not in content


def test_portal_lists_own_bookmarks_and_notes_only(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    recording = recorded(first_session(cast), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    Comment.objects.create(recording=recording, author=cast.client_user_a, start=754.0,
                           body="Remember what she said about the garden", scope=Scope.PRIVATE)
    Comment.objects.create(recording=recording, author=cast.client_user_a, start=61.0,
                           body="Can we talk about this next time?", scope=Scope.CLIENT)
    Comment.objects.create(recording=recording, author=cast.therapist_a, start=10.0,
                           body="Therapist note for the care team", scope=Scope.CARE_TEAM)
    page = signed_in(cast.client_user_a).get(portal_url(cast)).content.decode()
    assert "My bookmarks and notes" in page
    assert "Session 1 at 12:34" in page and "Only me" in page
    assert "Session 1 at 1:01" in page and "Shared with my therapist" in page
    assert f"/recordings/{recording.public_id}/transcript/?t=754.00" in page
    assert "Therapist note" not in page


def test_portal_page_queries_do_not_grow_with_sessions(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path, signed_in: SignedIn
) -> None:
    http = signed_in(cast.client_user_a)
    first = recorded(first_session(cast), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=first.session, shared=True)
    Comment.objects.create(recording=first, author=cast.client_user_a, start=1.0, body="x",
                           scope=Scope.PRIVATE)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert http.get(portal_url(cast)).status_code == 200
        return len(queries)

    few = count()
    episode = cast.client_a.episodes.get()
    for _ in range(6):
        session = schedule_session(actor=cast.therapist_a, episode=episode,
                                   scheduled_at=timezone.now() - dt.timedelta(days=1),
                                   modality="in_person")
        recording = recorded(session, cast.therapist_a, tmp_path)
        TranscriptRun.objects.create(recording=recording, state=RunState.DONE)
        share_with_client(actor=cast.therapist_a, session=session, shared=True)
        Comment.objects.create(recording=recording, author=cast.client_user_a, start=2.0,
                               body="y", scope=Scope.PRIVATE)
    assert count() == few
    assert few <= 16


# ---- the supervisor's queue ------------------------------------------------------------------

def test_queue_holds_shared_sessions_with_consent_oldest_first(cast: Cast) -> None:
    older, newer = session_of(cast, 2), session_of(cast, 1)
    share_for_supervision(actor=cast.therapist_a, session=older, shared=True)
    TherapySession.objects.filter(pk=older.pk).update(
        shared_for_supervision_at=timezone.now() - dt.timedelta(days=3))
    share_for_supervision(actor=cast.therapist_a, session=newer, shared=True)
    assert list(access.supervision_queue_for_user(cast.supervisor)) == [older, newer]
    # Nobody else supervises Cora, so nobody else has a queue of her sessions.
    for other in (cast.therapist_a, cast.trainee, cast.client_user_a, cast.admin):
        assert list(access.supervision_queue_for_user(other)) == []
    revoke(actor=cast.client_user_a, client=cast.client_a, purpose=Purpose.SUPERVISION_REVIEW,
           method=Method.CLIENT_ONLINE)
    assert list(access.supervision_queue_for_user(cast.supervisor)) == []


def test_queue_leaves_out_clients_without_supervision_consent(cast: Cast) -> None:
    # The trainee's client has a supervisor but never agreed to supervision review.
    episode = cast.trainee_client.episodes.get()
    session = schedule_session(actor=cast.trainee, episode=episode, scheduled_at=timezone.now(),
                               modality="in_person")
    share_for_supervision(actor=cast.trainee, session=session, shared=True)
    assert list(access.supervision_queue_for_user(cast.supervisor)) == []
    set_consent(cast, Purpose.SUPERVISION_REVIEW, granted=True, client=cast.trainee_client)
    assert list(access.supervision_queue_for_user(cast.supervisor)) == [session]


def test_unready_recordings_stay_invisible_to_the_client(
    cast: Cast, vault_env: VaultEnv, tmp_path: Path
) -> None:
    recording = recorded(first_session(cast), cast.therapist_a, tmp_path)
    share_with_client(actor=cast.therapist_a, session=recording.session, shared=True)
    Recording.objects.filter(pk=recording.pk).update(state=State.FAILED)
    assert list(access.recordings_for_user(cast.client_user_a)) == []
