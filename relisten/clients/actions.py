"""Writes to client records, episodes and therapy sessions.

Audit rows name which fields changed; values are kept only for non-clinical fields
(dates, statuses), never names or other identifying text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from relisten.accounts.actions import create_user, grant_role
from relisten.accounts.models import Clinic, Role, User
from relisten.audit.log import record_event
from relisten.clients.models import Client, Episode, TherapySession

CLIENT_FIELDS = ("given_name", "family_name", "date_of_birth", "reference")
SESSION_FIELDS = ("scheduled_at", "attendance", "modality")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def _changed(old: dict[str, Any], new: dict[str, Any], *, reveal: bool) -> dict[str, Any]:
    """Field-level diff; reveal=False lists the names of changed fields only."""
    names = [name for name in new if old.get(name) != new[name]]
    if not reveal:
        return {"changed_fields": names}
    return {name: {"old": _iso(old.get(name)), "new": _iso(new[name])} for name in names}


def create_client(
    *, actor: User, clinic: Clinic, given_name: str, family_name: str,
    date_of_birth: dt.date | None = None, reference: str = "",
    therapist: User | None = None, supervisor: User | None = None,
    start_date: dt.date | None = None,
) -> Client:
    """A client and their first episode of care (with the actor as therapist by default)."""
    with transaction.atomic():
        client = Client.objects.create(
            clinic=clinic, given_name=given_name, family_name=family_name,
            date_of_birth=date_of_birth, reference=reference,
        )
        record_event(actor=actor, event_type="client.created", target=client, client=client,
                     clinic=clinic)
        open_episode(
            actor=actor, client=client, therapist=therapist or actor, supervisor=supervisor,
            start_date=start_date or dt.date.today(),
        )
    return client


def update_client(*, actor: User, client: Client, **values: Any) -> Client:
    unknown = set(values) - set(CLIENT_FIELDS)
    if unknown:
        raise ValueError(f"not client fields: {sorted(unknown)}")
    with transaction.atomic():
        old = {name: getattr(client, name) for name in values}
        for name, value in values.items():
            setattr(client, name, value)
        client.save(update_fields=list(values))
        record_event(actor=actor, event_type="client.updated", target=client, client=client,
                     clinic=client.clinic, changes=_changed(old, values, reveal=False))
    return client


def open_episode(
    *, actor: User, client: Client, therapist: User, supervisor: User | None,
    start_date: dt.date,
) -> Episode:
    with transaction.atomic():
        episode = Episode.objects.create(
            client=client, therapist=therapist, supervisor=supervisor, start_date=start_date
        )
        record_event(
            actor=actor, event_type="episode.opened", target=episode, client=client,
            clinic=client.clinic,
            changes={"therapist": str(therapist.public_id),
                     "supervisor": str(supervisor.public_id) if supervisor else None,
                     "start_date": start_date.isoformat()},
        )
    return episode


def discharge_episode(*, actor: User, episode: Episode, end_date: dt.date) -> Episode:
    if end_date < episode.start_date:
        raise ValueError("The discharge date cannot be before the episode started.")
    with transaction.atomic():
        old = episode.end_date
        episode.end_date = end_date
        episode.save(update_fields=["end_date"])
        record_event(
            actor=actor, event_type="episode.discharged", target=episode, client=episode.client,
            clinic=episode.client.clinic,
            changes={"end_date": {"old": _iso(old), "new": end_date.isoformat()}},
        )
    return episode


def schedule_session(
    *, actor: User, episode: Episode, scheduled_at: dt.datetime, modality: str,
) -> TherapySession:
    with transaction.atomic():
        # Numbering inside the transaction: the write lock (IMMEDIATE on SQLite, the
        # unique constraint on PostgreSQL) keeps two schedulers from taking the same number.
        last = episode.sessions.aggregate(last=Max("number"))["last"] or 0
        clinic = episode.client.clinic
        session = TherapySession.objects.create(
            episode=episode, number=last + 1, scheduled_at=scheduled_at, modality=modality,
            shared_with_client=clinic.share_sessions_with_clients_by_default,
        )
        record_event(
            actor=actor, event_type="session.scheduled", target=session, client=episode.client,
            clinic=clinic,
            changes={"number": session.number, "scheduled_at": scheduled_at.isoformat(),
                     "modality": modality, "shared_with_client": session.shared_with_client},
        )
    return session


def update_session(*, actor: User, session: TherapySession, **values: Any) -> TherapySession:
    unknown = set(values) - set(SESSION_FIELDS)
    if unknown:
        raise ValueError(f"not session fields: {sorted(unknown)}")
    with transaction.atomic():
        old = {name: getattr(session, name) for name in values}
        for name, value in values.items():
            setattr(session, name, value)
        session.save(update_fields=list(values))
        client = session.episode.client
        record_event(actor=actor, event_type="session.updated", target=session, client=client,
                     clinic=client.clinic, changes=_changed(old, values, reveal=True))
    return session


def give_portal_access(*, actor: User, client: Client, username: str, password: str) -> User:
    """Create the client's own sign-in (role: client) and link it to their record."""
    if client.user_id is not None:
        # Relinking would silently lock the client out of the sign-in they already use.
        raise ValueError("this client already has a sign-in")
    with transaction.atomic():
        user = create_user(actor=actor, clinic=client.clinic, username=username,
                           password=password, roles=[Role.CLIENT],
                           display_name=client.given_name)
        client.user = user
        client.save(update_fields=["user"])
        record_event(actor=actor, event_type="client.portal_access_given", target=client,
                     client=client, clinic=client.clinic)
    return user


def link_existing_portal_user(*, actor: User, client: Client, user: User) -> None:
    with transaction.atomic():
        grant_role(actor=actor, clinic=client.clinic, user=user, role=Role.CLIENT)
        client.user = user
        client.save(update_fields=["user"])
        record_event(actor=actor, event_type="client.portal_access_given", target=client,
                     client=client, clinic=client.clinic)


# ---- sharing (portal helper) -----------------------------------------------------------------
# Sharing opens nothing by itself: relisten.access still asks for the client's consent (client
# access, supervision review) on every request. The audit rows hold only the new on/off state.

def share_with_client(*, actor: User, session: TherapySession, shared: bool) -> TherapySession:
    """Let the client play this session's recordings in their portal (or stop letting them)."""
    if session.shared_with_client == shared:
        return session  # nothing changed, so nothing to put on record
    with transaction.atomic():
        session.shared_with_client = shared
        session.save(update_fields=["shared_with_client"])
        client = session.episode.client
        record_event(
            actor=actor, target=session, client=client, clinic=client.clinic,
            event_type="session.shared_with_client" if shared else "session.unshared_with_client",
            changes={"shared_with_client": shared},
        )
    return session


def share_for_supervision(
    *, actor: User, session: TherapySession, shared: bool
) -> TherapySession:
    """Put this session in the episode supervisor's review queue (or take it out)."""
    if session.shared_for_supervision == shared:
        return session
    if shared and session.episode.supervisor_id is None:
        raise ValueError("This episode of care has no supervisor to share the session with.")
    with transaction.atomic():
        session.shared_for_supervision = shared
        session.shared_for_supervision_at = timezone.now() if shared else None
        session.save(update_fields=["shared_for_supervision", "shared_for_supervision_at"])
        client = session.episode.client
        record_event(
            actor=actor, target=session, client=client, clinic=client.clinic,
            event_type=("session.shared_for_supervision" if shared
                        else "session.unshared_for_supervision"),
            changes={"shared_for_supervision": shared},
        )
    return session


def set_clinic_sharing_default(*, actor: User, clinic: Clinic, share: bool) -> Clinic:
    """Clinic policy for sessions scheduled from now on; existing sessions keep their setting."""
    if clinic.share_sessions_with_clients_by_default == share:
        return clinic
    with transaction.atomic():
        clinic.share_sessions_with_clients_by_default = share
        clinic.save(update_fields=["share_sessions_with_clients_by_default"])
        record_event(
            actor=actor, event_type="clinic.sharing_default_changed", target=clinic,
            clinic=clinic, changes={"share_sessions_with_clients_by_default": share},
        )
    return clinic
