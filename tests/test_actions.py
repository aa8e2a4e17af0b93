"""Every action function: the data change and its audit row are one unit.

For each action: exactly the expected events, naming actor, client and target; never a
client's name, date of birth or case reference anywhere in the audit table; and a rollback of
the surrounding transaction removes the change and its audit row together.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models, transaction
from django.utils import timezone

from relisten.accounts import actions as accounts
from relisten.accounts.models import Clinic, Membership, Role, User
from relisten.audit.models import AuditEvent, AuditHead
from relisten.audit.verify import verify_chain
from relisten.clients import actions as clients
from relisten.clients.models import Attendance, Client, Episode, Modality, TherapySession
from relisten.consent import actions as consent
from relisten.consent.models import ConsentDecision, ConsentText, Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast

# Distinctive so that a leak cannot hide behind a common word.
GIVEN, FAMILY, NEW_FAMILY = "Zephyrine", "Quillfeather", "Marchbanks"
BIRTH = dt.date(1987, 3, 14)
REFERENCE = "CASE-Q-5531"
SECRETS = [GIVEN, FAMILY, NEW_FAMILY, REFERENCE, "1987-03-14", "14/03/1987", "03/14/1987"]

# (event type, actor, client or None, target object or None)
Expected = list[tuple[str, User | None, Client | None, models.Model | None]]


@dataclass
class World:
    cast: Cast
    subject: Client
    episode: Episode
    session: TherapySession


@pytest.fixture
def world(cast: Cast) -> World:
    subject = clients.create_client(
        actor=cast.therapist_a, clinic=cast.clinic, given_name=GIVEN, family_name=FAMILY,
        date_of_birth=BIRTH, reference=REFERENCE, supervisor=cast.supervisor,
        start_date=dt.date.today() - dt.timedelta(days=20),
    )
    episode = subject.episodes.get()
    session = clients.schedule_session(actor=cast.therapist_a, episode=episode,
                                       scheduled_at=timezone.now(), modality=Modality.IN_PERSON)
    return World(cast, subject, episode, session)


def _create_clinic(w: World) -> Expected:
    clinic = accounts.create_clinic(actor=w.cast.admin, name="Northside Therapy")
    assert ConsentText.objects.filter(clinic=clinic, version=1).count() == len(Purpose.values)
    return [("clinic.created", w.cast.admin, None, clinic)]


def _create_user(w: World) -> Expected:
    user = accounts.create_user(actor=w.cast.admin, clinic=w.cast.clinic, username="nia.new",
                                password="a-long-enough-password", roles=[Role.THERAPIST])
    membership = Membership.objects.get(user=user)
    return [("user.created", w.cast.admin, None, user),
            ("role.granted", w.cast.admin, None, membership)]


def _grant_role(w: World) -> Expected:
    membership = accounts.grant_role(actor=w.cast.admin, clinic=w.cast.clinic,
                                     user=w.cast.therapist_b, role=Role.SUPERVISOR)
    return [("role.granted", w.cast.admin, None, membership)]


def _revoke_role(w: World) -> Expected:
    membership = Membership.objects.get(user=w.cast.therapist_b, role=Role.THERAPIST)
    accounts.revoke_role(actor=w.cast.admin, membership=membership)
    assert not Membership.objects.get(pk=membership.pk).active
    return [("role.revoked", w.cast.admin, None, membership)]


def _set_password(w: World) -> Expected:
    accounts.set_password(actor=w.cast.admin, user=w.cast.therapist_b,
                          password="another-long-password")
    return [("user.password_set", w.cast.admin, None, w.cast.therapist_b)]


def _create_client(w: World) -> Expected:
    client = clients.create_client(actor=w.cast.therapist_a, clinic=w.cast.clinic,
                                   given_name=GIVEN, family_name=FAMILY + "-Twin",
                                   date_of_birth=BIRTH, reference=REFERENCE + "-2")
    return [("client.created", w.cast.therapist_a, client, client),
            ("episode.opened", w.cast.therapist_a, client, client.episodes.get())]


def _update_client(w: World) -> Expected:
    clients.update_client(actor=w.cast.therapist_a, client=w.subject, family_name=NEW_FAMILY,
                          date_of_birth=BIRTH + dt.timedelta(days=1))
    assert Client.objects.get(pk=w.subject.pk).family_name == NEW_FAMILY
    return [("client.updated", w.cast.therapist_a, w.subject, w.subject)]


def _open_episode(w: World) -> Expected:
    episode = clients.open_episode(actor=w.cast.therapist_a, client=w.subject,
                                   therapist=w.cast.therapist_a, supervisor=None,
                                   start_date=dt.date.today())
    return [("episode.opened", w.cast.therapist_a, w.subject, episode)]


def _discharge_episode(w: World) -> Expected:
    clients.discharge_episode(actor=w.cast.therapist_a, episode=w.episode,
                              end_date=dt.date.today())
    assert Episode.objects.get(pk=w.episode.pk).end_date == dt.date.today()
    return [("episode.discharged", w.cast.therapist_a, w.subject, w.episode)]


def _schedule_session(w: World) -> Expected:
    session = clients.schedule_session(actor=w.cast.therapist_a, episode=w.episode,
                                       scheduled_at=timezone.now() + dt.timedelta(days=7),
                                       modality=Modality.TELEHEALTH)
    assert session.number == 2
    return [("session.scheduled", w.cast.therapist_a, w.subject, session)]


def _update_session(w: World) -> Expected:
    clients.update_session(actor=w.cast.therapist_a, session=w.session,
                           attendance=Attendance.ATTENDED)
    assert TherapySession.objects.get(pk=w.session.pk).attendance == Attendance.ATTENDED
    return [("session.updated", w.cast.therapist_a, w.subject, w.session)]


def _give_portal_access(w: World) -> Expected:
    # A username unrelated to the client's name: see the report on user.created's username.
    user = clients.give_portal_access(actor=w.cast.therapist_a, client=w.subject,
                                      username="portal-7731", password="a-long-enough-password")
    membership = Membership.objects.get(user=user)
    return [("user.created", w.cast.therapist_a, None, user),
            ("role.granted", w.cast.therapist_a, None, membership),
            ("client.portal_access_given", w.cast.therapist_a, w.subject, w.subject)]


def _record_decision(w: World) -> Expected:
    decision = consent.record_decision(
        actor=w.cast.therapist_a, client=w.subject, purpose=Purpose.AUDIO_RECORDING,
        granted=True, method=Method.PAPER_ATTESTED,
        text=current_text(w.cast.clinic.pk, Purpose.AUDIO_RECORDING),
    )
    return [("consent.granted", w.cast.therapist_a, w.subject, decision)]


def _revoke(w: World) -> Expected:
    # Cora's recording consent was granted by the demo; her therapist records the withdrawal.
    decision = consent.revoke(actor=w.cast.therapist_a, client=w.cast.client_a,
                              purpose=Purpose.AUDIO_RECORDING, method=Method.PAPER_ATTESTED)
    return [("consent.revoked", w.cast.therapist_a, w.cast.client_a, decision)]


def _publish_consent_text(w: World) -> Expected:
    text = consent.publish_consent_text(actor=w.cast.admin, clinic=w.cast.clinic,
                                        purpose=Purpose.RESEARCH, body="New research wording.")
    assert text.version == 2
    return [("consent_text.published", w.cast.admin, None, text)]


def _share_with_client(w: World) -> Expected:
    clients.share_with_client(actor=w.cast.therapist_a, session=w.session, shared=True)
    assert TherapySession.objects.get(pk=w.session.pk).shared_with_client
    return [("session.shared_with_client", w.cast.therapist_a, w.subject, w.session)]


def _share_for_supervision(w: World) -> Expected:
    clients.share_for_supervision(actor=w.cast.therapist_a, session=w.session, shared=True)
    assert TherapySession.objects.get(pk=w.session.pk).shared_for_supervision
    return [("session.shared_for_supervision", w.cast.therapist_a, w.subject, w.session)]


def _set_clinic_sharing_default(w: World) -> Expected:
    clients.set_clinic_sharing_default(actor=w.cast.admin, clinic=w.cast.clinic, share=True)
    assert Clinic.objects.get(pk=w.cast.clinic.pk).share_sessions_with_clients_by_default
    return [("clinic.sharing_default_changed", w.cast.admin, None, w.cast.clinic)]


ACTIONS: dict[str, Callable[[World], Expected]] = {
    "create_clinic": _create_clinic,
    "create_user": _create_user,
    "grant_role": _grant_role,
    "revoke_role": _revoke_role,
    "set_password": _set_password,
    "create_client": _create_client,
    "update_client": _update_client,
    "open_episode": _open_episode,
    "discharge_episode": _discharge_episode,
    "schedule_session": _schedule_session,
    "update_session": _update_session,
    "give_portal_access": _give_portal_access,
    "record_decision": _record_decision,
    "revoke": _revoke,
    "publish_consent_text": _publish_consent_text,
    "share_with_client": _share_with_client,
    "share_for_supervision": _share_for_supervision,
    "set_clinic_sharing_default": _set_clinic_sharing_default,
}

AUDITED_MODELS: list[type[models.Model]] = [
    Clinic, User, Membership, Client, Episode, TherapySession, ConsentText, ConsentDecision,
    AuditEvent, AuditHead,
]


def tip() -> int:
    return AuditHead.objects.get(pk=1).seq


def snapshot() -> dict[str, list[dict[str, Any]]]:
    return {m.__name__: list(m._default_manager.order_by("pk").values()) for m in AUDITED_MODELS}


def _public_id(obj: models.Model | None) -> Any:
    return getattr(obj, "public_id", None)


def test_every_action_in_the_codebase_is_covered() -> None:
    """A new action function must join ACTIONS (and so these tests) before it can ship."""
    import inspect

    modules = [accounts, clients, consent]
    public = {
        name for module in modules
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_")
    }
    helpers = {"create_default_texts", "link_existing_portal_user"}
    assert public - helpers == set(ACTIONS)


@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_writes_exactly_the_expected_events(world: World, name: str) -> None:
    before = tip()
    expected = ACTIONS[name](world)
    events = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq"))
    assert [
        (e.event_type, e.actor_id, e.client_id, e.target_type, e.target_id) for e in events
    ] == [
        (event_type, _public_id(actor), _public_id(client),
         target._meta.model_name if target is not None else "",
         str(_public_id(target)) if target is not None else "")
        for event_type, actor, client, target in expected
    ]
    for event in events:
        if event.client_id is not None:
            assert event.clinic_id is not None
    assert verify_chain().ok


@pytest.mark.parametrize("name", list(ACTIONS))
def test_rollback_removes_the_change_and_its_audit_row(world: World, name: str) -> None:
    class Abort(Exception):
        pass

    before = snapshot()
    with pytest.raises(Abort), transaction.atomic():
        ACTIONS[name](world)
        assert AuditHead.objects.get(pk=1).seq > before["AuditHead"][0]["seq"]  # it did write
        raise Abort
    assert snapshot() == before
    assert verify_chain().ok


def test_no_client_names_or_birth_dates_in_the_audit_table(world: World) -> None:
    for name in ACTIONS:
        ACTIONS[name](world)
    # The client also acts for themself (withdrawing online) and staff read the record.
    portal_user = world.subject.user
    assert portal_user is not None
    consent.record_decision(actor=portal_user, client=world.subject,
                            purpose=Purpose.TRANSCRIPTION, granted=False,
                            method=Method.CLIENT_ONLINE,
                            text=current_text(world.cast.clinic.pk, Purpose.TRANSCRIPTION))
    serialized = json.dumps(list(AuditEvent.objects.values()), default=str).lower()
    for secret in SECRETS:
        assert secret.lower() not in serialized, secret
    # The update is still on record, by field name.
    updated = AuditEvent.objects.get(event_type="client.updated", client_id=world.subject.public_id)
    assert updated.changes == {"changed_fields": ["family_name", "date_of_birth"]}
    assert verify_chain().ok
