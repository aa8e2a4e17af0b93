"""Supervision (issue 6, must-show 1): assignments per clinic decide what a supervisor sees;
the review queue; sign-off of a reviewed session (and reopening it); supervision consent.

Real components throughout: the demo cast, the vault for recordings, the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from relisten import access
from relisten.accounts.actions import create_user, grant_role
from relisten.accounts.models import Role, User
from relisten.audit.models import AuditEvent
from relisten.clients.actions import schedule_session, share_for_supervision
from relisten.clients.models import Episode, Modality, TherapySession
from relisten.consent.actions import record_decision, revoke
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from relisten.supervision import actions
from relisten.supervision.models import SessionSignOff, SupervisionAssignment
from relisten.supervision.views import signoff_context
from relisten.transcripts.models import Transcript
from tests.conftest import PASSWORD
from tests.test_media_playback import VaultEnv, make_recording, vault_env_fixture  # noqa: F401
from tests.test_transcript_search import make_transcript

SignedIn = Callable[[User], HttpClient]


def _cora_session(cast: Cast) -> TherapySession:
    return cast.client_a.episodes.get().sessions.get(number=1)


def _assignment(cast: Cast, supervisee: User) -> SupervisionAssignment:
    return SupervisionAssignment.objects.get(supervisor=cast.supervisor, supervisee=supervisee,
                                             ended_at__isnull=True)


def _events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("seq"))


@pytest.fixture
def recorded(cast: Cast, vault_env: VaultEnv) -> tuple[TherapySession, Recording, Transcript]:
    """Cora's session 1 recorded, transcribed and shared for supervision."""
    session = _cora_session(cast)
    recording = make_recording(session, b"a recorded session " * 500, created_by=cast.therapist_a)
    transcript = make_transcript(recording, [("S1", "How was the week?"),
                                             ("S2", "Quieter than the one before.")])
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    return session, recording, transcript


def _pages(session: TherapySession, recording: Recording, transcript: Transcript) -> list[str]:
    return [f"/sessions/{session.public_id}/",
            f"/recordings/{recording.public_id}/transcript/",
            f"/recordings/{recording.public_id}/media",
            f"/transcripts/{transcript.public_id}/export.txt"]


# ---- the demo cast -----------------------------------------------------------------------------

def test_demo_cast_has_the_supervision_the_demo_needs(cast: Cast) -> None:
    active = access.active_assignments(cast.clinic)
    assert {(a.supervisor, a.supervisee) for a in active} == {
        (cast.supervisor, cast.therapist_a), (cast.supervisor, cast.trainee)}
    assert len(_events("supervision.assigned")) == 2


# ---- assignments: validation and the admin page ------------------------------------------------

def test_assignment_problems_are_named_plainly(cast: Cast) -> None:
    clinic = cast.clinic
    assert actions.assignment_problem(clinic, cast.supervisor, cast.therapist_b) is None
    assert "cannot supervise themselves" in str(
        actions.assignment_problem(clinic, cast.supervisor, cast.supervisor))
    assert "does not have the Supervisor role in Riverside" in str(
        actions.assignment_problem(clinic, cast.therapist_a, cast.therapist_b))
    assert "Rita Chen is not a therapist or trainee" in str(
        actions.assignment_problem(clinic, cast.supervisor, cast.researcher))
    assert "already supervises Tess Morgan" in str(
        actions.assignment_problem(clinic, cast.supervisor, cast.therapist_a))
    # Roles count per clinic: Otto treats only at the other clinic.
    assert "is not a therapist or trainee in Riverside" in str(
        actions.assignment_problem(clinic, cast.supervisor, cast.other_clinic_therapist))
    with pytest.raises(actions.SupervisionError):
        actions.assign_supervisor(actor=cast.admin, clinic=clinic, supervisor=cast.therapist_a,
                                  supervisee=cast.therapist_b)
    assert not SupervisionAssignment.objects.filter(supervisor=cast.therapist_a).exists()


def test_admin_assigns_and_ends_supervision_on_record(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.admin)
    people = http.get(f"/clinics/{cast.clinic.public_id}/people/").content.decode()
    page_url = f"/clinics/{cast.clinic.public_id}/supervision/"
    assert page_url in people  # linked from People and roles
    page = http.get(page_url).content.decode()
    assert "Tess Morgan" in page and "Tara Lind" in page and "End supervision" in page

    refused = http.post(page_url, {"supervisor": str(cast.supervisor.public_id),
                                   "supervisee": str(cast.therapist_a.public_id)})
    assert refused.status_code == 200
    assert "Dr Sam Reyes already supervises Tess Morgan here." in refused.content.decode()
    # A researcher is not offered as someone to supervise, and cannot be slipped in.
    slipped = http.post(page_url, {"supervisor": str(cast.supervisor.public_id),
                                   "supervisee": str(cast.researcher.public_id)})
    assert "not a therapist or trainee here" in slipped.content.decode()

    made = http.post(page_url, {"supervisor": str(cast.supervisor.public_id),
                                "supervisee": str(cast.therapist_b.public_id)})
    assert made.status_code == 302
    assignment = _assignment(cast, cast.therapist_b)
    assert assignment.created_by == cast.admin
    event = _events("supervision.assigned")[-1]
    assert event.target_id == str(assignment.public_id)
    assert event.changes == {"supervisor": str(cast.supervisor.public_id),
                             "supervisee": str(cast.therapist_b.public_id)}

    assert http.post(f"/supervision-assignments/{assignment.public_id}/end/").status_code == 302
    assignment.refresh_from_db()
    assert assignment.ended_at is not None and assignment.ended_by == cast.admin
    assert _events("supervision.ended")[-1].target_id == str(assignment.public_id)
    assert "Ended supervision" in http.get(page_url).content.decode()


def test_other_clinics_admin_cannot_touch_these_assignments(
    cast: Cast, signed_in: SignedIn
) -> None:
    http = signed_in(cast.other_clinic_therapist)
    assignment = _assignment(cast, cast.therapist_a)
    assert http.get(f"/clinics/{cast.clinic.public_id}/supervision/").status_code == 404
    assert http.post(f"/supervision-assignments/{assignment.public_id}/end/").status_code == 404
    assignment.refresh_from_db()
    assert assignment.ended_at is None


# ---- access follows the assignment -------------------------------------------------------------

def test_supervisor_without_assignment_gets_404_everywhere(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    """A second supervisor, named on Cora's episode but not assigned to Tess, sees nothing;
    once the admin assigns them, they see what Sam sees."""
    session, recording, transcript = recorded
    sue = create_user(actor=cast.admin, clinic=cast.clinic, username="sue.super",
                      password=PASSWORD, display_name="Sue Lowe", roles=[Role.SUPERVISOR])
    Episode.objects.filter(pk=session.episode_id).update(supervisor=sue)
    http = signed_in(sue)
    for url in _pages(session, recording, transcript):
        assert http.get(url).status_code == 404, url
    assert not access.supervision_queue_for_user(sue).exists()
    assert "Cora" not in http.get("/").content.decode()

    actions.assign_supervisor(actor=cast.admin, clinic=cast.clinic, supervisor=sue,
                              supervisee=cast.therapist_a)
    for url in _pages(session, recording, transcript):
        assert http.get(url).status_code == 200, url
    assert list(access.supervision_queue_for_user(sue)) == [session]


def test_ending_the_assignment_removes_access_at_once(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    session, recording, transcript = recorded
    http = signed_in(cast.supervisor)  # one signed-in browser, before and after
    for url in _pages(session, recording, transcript):
        assert http.get(url).status_code == 200, url
    assert "Cora Client, session 1" in http.get("/").content.decode()

    admin = signed_in(cast.admin)
    ended = admin.post(f"/supervision-assignments/{_assignment(cast, cast.therapist_a).public_id}"
                       "/end/")
    assert ended.status_code == 302

    for url in _pages(session, recording, transcript):
        assert http.get(url).status_code == 404, url
    assert http.get(f"/clients/{cast.client_a.public_id}/").status_code == 404
    assert "Cora" not in http.get("/").content.decode()  # neither queue nor client list
    # The trainee's episode is a separate assignment and stays open to Sam.
    trainee_episode = cast.trainee_client.episodes.get()
    assert http.get(f"/episodes/{trainee_episode.public_id}/").status_code == 200
    # Tess is told why her shared session is out of reach.
    tess_page = signed_in(cast.therapist_a).get(f"/sessions/{session.public_id}/")
    assert "Dr Sam Reyes is no longer assigned as supervisor" in tess_page.content.decode()


def test_losing_the_supervisor_role_also_closes_access(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    session, _, _ = recorded
    http = signed_in(cast.supervisor)
    membership = cast.supervisor.memberships.get(role=Role.SUPERVISOR)
    from relisten.accounts.actions import revoke_role
    revoke_role(actor=cast.admin, membership=membership)
    assert http.get(f"/sessions/{session.public_id}/").status_code == 404
    grant_role(actor=cast.admin, clinic=cast.clinic, user=cast.supervisor, role=Role.SUPERVISOR)
    assert http.get(f"/sessions/{session.public_id}/").status_code == 200


def test_revoking_supervision_consent_hides_recordings_at_once(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    session, recording, transcript = recorded
    http = signed_in(cast.supervisor)
    before = http.get(f"/sessions/{session.public_id}/").content.decode()
    assert f"/recordings/{recording.public_id}/transcript/" in before
    assert 'id="workspace"' in before
    assert http.get(f"/recordings/{recording.public_id}/transcript/").status_code == 200

    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.SUPERVISION_REVIEW,
           method=Method.PAPER_ATTESTED)

    # The session itself stays (it is the episode's); its recording does not.
    after = http.get(f"/sessions/{session.public_id}/")
    assert after.status_code == 200
    page = after.content.decode()
    assert str(recording.public_id) not in page and 'id="workspace"' not in page
    assert "Quieter than the one before" not in page
    assert http.get(f"/recordings/{recording.public_id}/transcript/").status_code == 404
    assert http.get(f"/transcripts/{transcript.public_id}/export.txt").status_code == 404
    assert not access.supervision_queue_for_user(cast.supervisor).exists()


# ---- the queue and sign-off --------------------------------------------------------------------

def test_sign_off_flow_queue_and_audit(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    session, _, _ = recorded
    sam = signed_in(cast.supervisor)
    assert list(access.supervision_queue_for_user(cast.supervisor)) == [session]
    queue = sam.get("/").content.decode().split('id="queue"')[1]
    assert "Cora Client, session 1" in queue

    page = sam.get(f"/sessions/{session.public_id}/").content.decode()
    assert "Sign off this session" in page and "Not signed off yet" in page

    note = "Good pacing; try one more complex reflection."
    done = sam.post(f"/sessions/{session.public_id}/sign-off/", {"note": note})
    assert done.status_code == 302 and done["Location"].endswith("#signoff")
    signoff = SessionSignOff.objects.get(session=session)
    assert signoff.supervisor == cast.supervisor and signoff.note == note
    event = _events("session.signed_off")[-1]
    assert event.client_id == cast.client_a.public_id
    assert event.changes == {"signoff": str(signoff.public_id), "with_note": True}
    assert note not in str(event.changes)  # feedback text never enters the audit trail

    # It leaves the queue; the therapist sees who signed it off, when, and the note.
    assert not access.supervision_queue_for_user(cast.supervisor).exists()
    assert "Nothing is waiting for your review" in sam.get("/").content.decode()
    tess = signed_in(cast.therapist_a).get(f"/sessions/{session.public_id}/").content.decode()
    when = timezone.localtime(signoff.signed_at).strftime("%-d %B %Y")
    assert f"Signed off by Dr Sam Reyes on {when}" in tess
    assert note in tess
    assert "Reopen for review" not in tess

    again = sam.post(f"/sessions/{session.public_id}/sign-off/", {"note": ""}, follow=True)
    assert "This session is already signed off." in again.content.decode()
    assert SessionSignOff.objects.filter(session=session).count() == 1

    reopened = sam.post(f"/sessions/{session.public_id}/reopen/")
    assert reopened.status_code == 302
    signoff.refresh_from_db()
    assert signoff.reopened_at is not None and signoff.reopened_by == cast.supervisor
    assert _events("session.signoff_reopened")[-1].changes == {"signoff": str(signoff.public_id)}
    assert list(access.supervision_queue_for_user(cast.supervisor)) == [session]
    tess = signed_in(cast.therapist_a).get(f"/sessions/{session.public_id}/").content.decode()
    assert "Signed off by" not in tess and "Not signed off yet" in tess


def test_only_the_assigned_supervisor_signs_off(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn
) -> None:
    session, _, _ = recorded
    tess = signed_in(cast.therapist_a)
    assert tess.post(f"/sessions/{session.public_id}/sign-off/", {"note": ""}).status_code == 403
    assert signed_in(cast.therapist_b).post(
        f"/sessions/{session.public_id}/sign-off/", {"note": ""}).status_code == 404
    _assignment(cast, cast.therapist_a).delete()  # no assignment: as if it never existed
    sam = signed_in(cast.supervisor)
    assert sam.post(f"/sessions/{session.public_id}/sign-off/", {"note": ""}).status_code == 404
    assert not SessionSignOff.objects.exists()
    assert not _events("session.signed_off")


@pytest.mark.parametrize("obstacle", ["not_shared", "consent_withdrawn"])
def test_sign_off_needs_a_shared_session_with_consent(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript], signed_in: SignedIn,
    obstacle: str,
) -> None:
    session, _, _ = recorded
    if obstacle == "not_shared":
        share_for_supervision(actor=cast.therapist_a, session=session, shared=False)
        expected = "This session is not shared for supervision"
    else:
        revoke(actor=cast.therapist_a, client=cast.client_a,
               purpose=Purpose.SUPERVISION_REVIEW, method=Method.PAPER_ATTESTED)
        expected = "The client has not agreed to supervision review"
    sam = signed_in(cast.supervisor)
    page = sam.get(f"/sessions/{session.public_id}/").content.decode()
    assert expected in page
    assert '<button type="button" disabled aria-describedby="signoff-state">' in page
    response = sam.post(f"/sessions/{session.public_id}/sign-off/", {"note": ""}, follow=True)
    assert expected in response.content.decode()
    assert not SessionSignOff.objects.exists()


def test_signoff_panel_costs_at_most_three_queries(
    cast: Cast, recorded: tuple[TherapySession, Recording, Transcript],
    django_assert_max_num_queries: Callable[..., object],
) -> None:
    session, _, _ = recorded
    actions.sign_off_session(actor=cast.supervisor, session=session, note="Fine work.")
    for user in (cast.supervisor, cast.therapist_a):
        loaded = access.get_session_for_user(user, session.public_id)
        with django_assert_max_num_queries(3):  # type: ignore[operator]
            context = signoff_context(user, loaded)
        assert context is not None and context["signoff"].note == "Fine work."
    # Colin's episode has no supervisor: no panel, no query.
    colin = access.get_session_for_user(
        cast.therapist_b, cast.client_b.episodes.get().sessions.get(number=1).public_id)
    with django_assert_max_num_queries(0):  # type: ignore[operator]
        assert signoff_context(cast.therapist_b, colin) is None


# ---- choosing a supervisor for an episode ------------------------------------------------------

def test_only_assigned_supervisors_are_offered(cast: Cast, signed_in: SignedIn) -> None:
    sue = create_user(actor=cast.admin, clinic=cast.clinic, username="sue.super",
                      password=PASSWORD, display_name="Sue Lowe", roles=[Role.SUPERVISOR])
    tess = signed_in(cast.therapist_a)
    for url in ("/clients/new/", f"/clients/{cast.client_a.public_id}/episodes/new/"):
        page = tess.get(url).content.decode()
        assert f'value="{cast.supervisor.public_id}"' in page
        assert f'value="{sue.public_id}"' not in page  # a supervisor, but not Tess's
    refused = tess.post(f"/clients/{cast.client_a.public_id}/episodes/new/",
                        {"start_date": dt.date.today().isoformat(),
                         "supervisor": str(sue.public_id)})
    assert refused.status_code == 200
    assert cast.client_a.episodes.count() == 1

    # Ben has no supervisor assigned: the form says so instead of offering an empty list.
    ben = signed_in(cast.therapist_b).get(f"/clients/{cast.client_b.public_id}/episodes/new/")
    assert "No supervisor is assigned to you yet" in ben.content.decode()
    assert f'value="{cast.supervisor.public_id}"' not in ben.content.decode()


def test_new_client_form_checks_the_assignment_in_the_chosen_clinic(
    cast: Cast, signed_in: SignedIn
) -> None:
    """Sam supervises Tess in the demo clinic only; naming Sam for a client of another clinic
    Tess also works in is refused with a plain message."""
    grant_role(actor=None, clinic=cast.other_clinic, user=cast.therapist_a, role=Role.THERAPIST)
    grant_role(actor=None, clinic=cast.other_clinic, user=cast.supervisor, role=Role.SUPERVISOR)
    response = signed_in(cast.therapist_a).post("/clients/new/", {
        "given_name": "Dana", "family_name": "Doe", "clinic": str(cast.other_clinic.public_id),
        "supervisor": str(cast.supervisor.public_id),
        "start_date": dt.date.today().isoformat(),
    })
    assert response.status_code == 200
    assert "Dr Sam Reyes is not assigned to supervise you in this clinic." in (
        response.content.decode())


# ---- feedback ----------------------------------------------------------------------------------

def test_trainee_sees_supervisor_feedback_and_the_sign_off(
    cast: Cast, vault_env: VaultEnv, signed_in: SignedIn
) -> None:
    episode = cast.trainee_client.episodes.get()
    session = schedule_session(actor=cast.trainee, episode=episode, modality=Modality.IN_PERSON,
                               scheduled_at=timezone.now() - dt.timedelta(days=1))
    record_decision(actor=cast.trainee, client=cast.trainee_client,
                    purpose=Purpose.SUPERVISION_REVIEW, granted=True,
                    method=Method.PAPER_ATTESTED,
                    text=current_text(cast.clinic.pk, Purpose.SUPERVISION_REVIEW))
    recording = make_recording(session, b"trainee session " * 300, created_by=cast.trainee)
    share_for_supervision(actor=cast.trainee, session=session, shared=True)
    Comment.objects.create(recording=recording, author=cast.supervisor, start=12.0,
                           body="Try an open question here.", scope=Scope.CARE_TEAM)
    actions.sign_off_session(actor=cast.supervisor, session=session)

    tara = signed_in(cast.trainee)
    feedback = tara.get("/").content.decode().split('id="feedback"')[1]
    assert "Comment from Dr Sam Reyes (supervisor)" in feedback
    page = tara.get(f"/sessions/{session.public_id}/").content.decode()
    assert "Signed off by Dr Sam Reyes on" in page
    assert 'href="#comments">Feedback' in page and "Try an open question here." in page
