"""Bad input: forms say what is wrong, and nothing half-done is ever saved.

Each invalid submission must re-render the form (200) with a visible, kind message on the
field, and leave every table exactly as it was, audit trail included. Malformed ids are plain
404s. An action that fails after its first insert leaves no trace at all.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.accounts.models import Membership, User
from relisten.audit.models import AuditEvent, AuditHead
from relisten.audit.verify import verify_chain
from relisten.clients.actions import create_client, give_portal_access
from relisten.clients.models import Client, Episode, TherapySession
from relisten.consent.actions import publish_consent_text
from relisten.consent.models import ConsentDecision, ConsentText, Purpose
from relisten.core.personas import Cast

SignedIn = Callable[[User], HttpClient]
COUNTED: tuple[type[Model], ...] = (
    Client, Episode, TherapySession, ConsentDecision, ConsentText, User, Membership, AuditEvent,
)
TODAY = dt.date.today()
GOOD_PASSWORD = "a-long-enough-passphrase-42"


def _counts() -> dict[str, int]:
    return {model.__name__: model._default_manager.count() for model in COUNTED}


@contextmanager
def nothing_saved() -> Iterator[None]:
    """Every counted table has the same number of rows afterwards."""
    before = _counts()
    yield
    assert _counts() == before


def _shows(response: object, message: str) -> None:
    """The message is on the page as the person will read it (templates escape quotes)."""
    content = response.content.decode()  # type: ignore[attr-defined]
    assert html.escape(message) in content, message
    assert 'role="alert"' in content  # announced to screen readers, not only coloured red


def _new_client_data(cast: Cast, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "given_name": "Dana", "family_name": "Doe", "date_of_birth": "1990-04-01",
        "reference": "", "clinic": str(cast.clinic.public_id), "supervisor": "",
        "start_date": TODAY.isoformat(),
    }
    data.update(changes)
    return data


# ---- new client, edit client -----------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"given_name": "", "family_name": "   "}, "This field is required."),
    ({"date_of_birth": (TODAY + dt.timedelta(days=1)).isoformat()},
     "The date of birth cannot be in the future."),
    ({"date_of_birth": "31/31/1990"}, "Enter a valid date."),
    ({"start_date": ""}, "This field is required."),
])
def test_new_client_invalid(cast: Cast, signed_in: SignedIn, changes: dict[str, object],
                            message: str) -> None:
    http = signed_in(cast.therapist_a)
    with nothing_saved():
        response = http.post("/clients/new/", _new_client_data(cast, **changes))
    assert response.status_code == 200
    _shows(response, message)


def test_new_client_valid_data_is_saved(cast: Cast, signed_in: SignedIn) -> None:
    # The control for the test above: the same data, corrected, does save.
    http = signed_in(cast.therapist_a)
    response = http.post("/clients/new/", _new_client_data(cast, supervisor=str(
        cast.supervisor.public_id)))
    assert response.status_code == 302
    client = Client.objects.get(given_name="Dana")
    assert client.episodes.get().supervisor == cast.supervisor


@pytest.mark.parametrize("field", ["clinic", "supervisor"])
def test_new_client_foreign_choices_are_refused(cast: Cast, signed_in: SignedIn,
                                                field: str) -> None:
    """Another clinic, or a colleague who is no supervisor, cannot be slipped into the form."""
    http = signed_in(cast.therapist_a)
    foreign = {
        "clinic": cast.other_clinic.public_id, "supervisor": cast.therapist_b.public_id,
    }[field]
    message = {
        "clinic": "This clinic is not one you work in.",
        "supervisor": "Select a valid choice. That choice is not one of the available choices.",
    }[field]
    for value in (str(foreign), "1", "not-an-id"):
        with nothing_saved():
            response = http.post("/clients/new/", _new_client_data(cast, **{field: value}))
        assert response.status_code == 200
        _shows(response, message)


def test_new_client_form_carries_no_integer_ids(cast: Cast, signed_in: SignedIn) -> None:
    page = signed_in(cast.therapist_a).get("/clients/new/").content.decode()
    assert f'value="{cast.clinic.public_id}"' in page
    assert f'value="{cast.supervisor.public_id}"' in page
    assert f'value="{cast.clinic.pk}"' not in page


def test_edit_client_future_birth_date(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.therapist_a)
    url = f"/clients/{cast.client_a.public_id}/edit/"
    with nothing_saved():
        response = http.post(url, {
            "given_name": "Changed", "family_name": "Name",
            "date_of_birth": (TODAY + dt.timedelta(days=365)).isoformat(),
        })
    assert response.status_code == 200
    _shows(response, "The date of birth cannot be in the future.")
    cast.client_a.refresh_from_db()
    assert (cast.client_a.given_name, cast.client_a.date_of_birth) == ("Cora", None)


# ---- episodes and sessions -------------------------------------------------------------------

def test_discharge_before_start(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.therapist_a)
    episode = cast.client_a.episodes.get()
    before_start = episode.start_date - dt.timedelta(days=1)
    with nothing_saved():
        response = http.post(f"/episodes/{episode.public_id}/discharge/",
                             {"end_date": before_start.isoformat()})
    assert response.status_code == 200
    _shows(response, "The discharge date cannot be before the episode started.")
    episode.refresh_from_db()
    assert episode.end_date is None


def test_database_refuses_discharge_before_start(cast: Cast) -> None:
    """The check constraint backs the form: even a direct write cannot end before the start."""
    episode = cast.client_a.episodes.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Episode.objects.filter(pk=episode.pk).update(
            end_date=episode.start_date - dt.timedelta(days=1))
    episode.refresh_from_db()
    assert episode.end_date is None


@pytest.mark.parametrize("value", ["", "tomorrow", "2025-02-30T10:00", "2025-13-01T10:00"])
def test_session_bad_date(cast: Cast, signed_in: SignedIn, value: str) -> None:
    http = signed_in(cast.therapist_a)
    episode = cast.client_a.episodes.get()
    with nothing_saved():
        response = http.post(f"/episodes/{episode.public_id}/sessions/new/",
                             {"scheduled_at": value, "modality": "in_person"})
    assert response.status_code == 200
    _shows(response, "This field is required." if not value else "Enter a valid date/time.")


def test_session_edit_bad_choice(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.therapist_a)
    session = TherapySession.objects.filter(episode__client=cast.client_a).first()
    assert session is not None
    with nothing_saved():
        response = http.post(f"/sessions/{session.public_id}/edit/", {
            "scheduled_at": "2030-01-01T10:00", "modality": "carrier-pigeon",
            "attendance": "attended",
        })
    assert response.status_code == 200
    _shows(response, "Select a valid choice.")
    session.refresh_from_db()
    assert session.attendance == "scheduled"


# ---- portal access ---------------------------------------------------------------------------

@pytest.mark.parametrize(("username", "password", "message"), [
    ("tomas.client", "xk3!pq", "This password is too short. It must contain at least 12 "
                               "characters."),
    ("tomas.client", "123456789012345", "This password is entirely numeric."),
    ("CORA.CLIENT", GOOD_PASSWORD, "Someone already signs in with this username."),
    ("tomas client", GOOD_PASSWORD, "Enter a valid username."),
    ("", GOOD_PASSWORD, "This field is required."),
])
def test_portal_access_invalid(cast: Cast, signed_in: SignedIn, username: str, password: str,
                               message: str) -> None:
    http = signed_in(cast.trainee)
    with nothing_saved():
        response = http.post(f"/clients/{cast.trainee_client.public_id}/portal-access/",
                             {"username": username, "password": password})
    assert response.status_code == 200
    _shows(response, message)
    cast.trainee_client.refresh_from_db()
    assert cast.trainee_client.user_id is None
    assert password not in response.content.decode()  # a rejected password is not echoed back


# ---- consent ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"paper_form_signed": ""}, "Tick this to confirm a signed form exists."),
    ({"purpose": "mind_reading"}, "Select a valid choice."),
    ({"decision": ""}, "This field is required."),
])
def test_consent_attest_invalid(cast: Cast, signed_in: SignedIn, changes: dict[str, str],
                                message: str) -> None:
    http = signed_in(cast.therapist_a)
    data = {"purpose": Purpose.RESEARCH.value, "decision": "grant", "paper_form_signed": "on",
            **changes}
    with nothing_saved():
        response = http.post(f"/clients/{cast.client_a.public_id}/consent/",
                             {k: v for k, v in data.items() if v})
    assert response.status_code == 200
    _shows(response, message)


def test_consent_attest_stale_wording(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.therapist_a)
    with nothing_saved():
        response = http.post(f"/clients/{cast.client_a.public_id}/consent/", {
            "purpose": Purpose.RESEARCH.value, "decision": "grant", "paper_form_signed": "on",
            "text_version": 7,
        })
    assert response.status_code == 200
    _shows(response, "The consent wording changed while you were on this page.")


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden {name} on the page"
    return html.unescape(match.group(1))


def test_consent_attest_wording_published_meanwhile(cast: Cast, signed_in: SignedIn) -> None:
    """The page remembers which wording it showed; a newer one is caught, then accepted."""
    http = signed_in(cast.therapist_a)
    url = f"/clients/{cast.client_a.public_id}/consent/"
    shown = _hidden(http.get(url).content.decode(), "shown_versions")
    assert f"{Purpose.RESEARCH.value}=1" in shown
    publish_consent_text(actor=cast.admin, clinic=cast.clinic, purpose=Purpose.RESEARCH,
                         body="Research wording, second version, read it again please.")
    data = {"purpose": Purpose.RESEARCH.value, "decision": "grant", "paper_form_signed": "on",
            "shown_versions": shown}
    with nothing_saved():
        stale = http.post(url, data)
    assert stale.status_code == 200
    _shows(stale, "The consent wording changed while you were on this page.")
    refreshed = _hidden(stale.content.decode(), "shown_versions")
    assert f"{Purpose.RESEARCH.value}=2" in refreshed
    assert http.post(url, {**data, "shown_versions": refreshed}).status_code == 302
    decision = ConsentDecision.objects.filter(client=cast.client_a).first()
    assert decision is not None and decision.text.version == 2


@pytest.mark.parametrize(("purpose", "data", "message"), [
    ("mind_reading", {"decision": "grant", "text_version": "1"},
     "That is not a consent choice we know."),
    ("research", {"decision": "maybe", "text_version": "1"},
     "Choose to agree or to withdraw, then try again."),
    ("research", {"decision": "grant", "text_version": "one"},
     "Choose to agree or to withdraw, then try again."),
    ("research", {"decision": "grant", "text_version": "2"},  # the wording changed meanwhile
     "The wording of this consent has just changed."),
])
def test_portal_decision_invalid(cast: Cast, signed_in: SignedIn, purpose: str,
                                 data: dict[str, str], message: str) -> None:
    http = signed_in(cast.client_user_a)
    consent_page = f"/me/{cast.client_a.public_id}/consent/"
    with nothing_saved():
        response = http.post(f"{consent_page}{purpose}/", data)
    assert response.status_code == 302 and response["Location"] == consent_page
    page = http.get(consent_page)
    assert html.escape(message) in page.content.decode()
    assert b"msg-error" in page.content


# ---- malformed ids ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/clients/not-a-uuid/", "/clients/123/", "/clients/123/edit/", "/episodes/1/",
    "/episodes/1/discharge/", "/sessions/0/", "/sessions/../edit/", "/me/1/", "/me/1/consent/",
    "/clinics/1/people/", "/consent-texts/1/", "/api/v1/clients/123",
    "/api/v1/clients/not-a-uuid/consent", "/api/v1/sessions/1",
    # One character short of a UUID.
    "/clients/3f2b8c1e-1111-4222-8333-44445555666/",
])
def test_malformed_ids_are_404(cast: Cast, signed_in: SignedIn, path: str) -> None:
    http = signed_in(cast.therapist_a)
    assert http.get(path).status_code == 404
    assert http.post(path, {}).status_code == 404


@pytest.mark.parametrize("path", ["/memberships/1/revoke/", "/memberships/1/add-role/",
                                  "/me/1/consent/research/"])
def test_malformed_ids_on_post_only_routes(cast: Cast, signed_in: SignedIn, path: str) -> None:
    with nothing_saved():
        assert signed_in(cast.admin).post(path, {"role": "trainee"}).status_code == 404


# ---- an action that fails midway -------------------------------------------------------------

def _plant_audit_row_two_ahead() -> None:
    """Occupy the audit sequence number create_client's *second* event will need.

    The client row, its audit row and the episode row are all inserted first; then the unique
    constraint on AuditEvent.seq fails for real. A real database error, no mocks.
    """
    head = AuditHead.objects.get(pk=1)
    AuditEvent(seq=head.seq + 2, at=timezone.now(), event_type="test.planted",
               previous_mac="0" * 64, mac="0" * 64).save()


def test_create_client_failing_midway_leaves_nothing(cast: Cast) -> None:
    _plant_audit_row_two_ahead()
    before = _counts()
    with pytest.raises(IntegrityError):
        create_client(actor=cast.therapist_a, clinic=cast.clinic, given_name="Half",
                      family_name="Done", start_date=TODAY)
    assert _counts() == before
    assert not Client.objects.filter(given_name="Half").exists()
    assert not AuditEvent.objects.filter(event_type__in=["client.created", "episode.opened"],
                                         seq__gt=AuditHead.objects.get(pk=1).seq - 2).exists()


def test_create_client_failing_midway_through_the_page(cast: Cast) -> None:
    from tests.conftest import sign_in

    http = sign_in(HttpClient(raise_request_exception=False), cast.therapist_a)
    _plant_audit_row_two_ahead()
    before = _counts()
    response = http.post("/clients/new/", _new_client_data(cast, given_name="Half"))
    assert response.status_code == 500
    assert b"Half" not in response.content  # no clinical text in the error page
    assert _counts() == before
    assert not Client.objects.filter(given_name="Half").exists()


def test_audit_chain_intact_after_rolled_back_action(cast: Cast) -> None:
    """The rollback also restores the chain's head, so the next event links correctly."""
    head_before = AuditHead.objects.get(pk=1)
    # Audit rows cannot be deleted (a database trigger refuses), so the planted row lives in
    # a savepoint that is rolled back afterwards.
    with transaction.atomic():
        _plant_audit_row_two_ahead()
        with pytest.raises(IntegrityError):
            create_client(actor=cast.therapist_a, clinic=cast.clinic, given_name="Half",
                          family_name="Done")
        head_after = AuditHead.objects.get(pk=1)
        assert (head_after.seq, head_after.mac) == (head_before.seq, head_before.mac)
        transaction.set_rollback(True)
    assert not AuditEvent.objects.filter(event_type="test.planted").exists()
    create_client(actor=cast.therapist_a, clinic=cast.clinic, given_name="Whole",
                  family_name="Done")
    assert verify_chain().ok


def test_portal_access_twice_is_refused(cast: Cast) -> None:
    """Cora already signs in; a second account would silently lock her out of the first."""
    with nothing_saved(), pytest.raises(ValueError):
        give_portal_access(actor=cast.therapist_a, client=cast.client_a,
                           username="cora.second", password=GOOD_PASSWORD)
    cast.client_a.refresh_from_db()
    assert cast.client_a.user == cast.client_user_a
