"""JSON API (django-ninja, OpenAPI at /api/v1/docs). Same access policy as the pages.

Object ids in paths use the `uuid` converter, like the pages: an id that is not a UUID never
reaches a view, and the OpenAPI schema documents the format.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from django.http import HttpRequest
from ninja import NinjaAPI, Schema
from ninja.security import django_auth

from relisten import access
from relisten.accounts.models import User
from relisten.audit.log import record_read
from relisten.consent.policy import current_status

api = NinjaAPI(title="Relisten API", version="1", urls_namespace="api", auth=django_auth)


class ClientOut(Schema):
    id: UUID
    given_name: str
    family_name: str
    date_of_birth: dt.date | None
    episodes: list[UUID]


class ConsentOut(Schema):
    purpose: str
    allowed: bool
    decided_at: dt.datetime | None
    text_version: int | None


class SessionOut(Schema):
    id: UUID
    episode: UUID
    number: int
    scheduled_at: dt.datetime
    attendance: str
    modality: str


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@api.get("/clients/{uuid:client_id}", response=ClientOut)
def get_client(request: HttpRequest, client_id: UUID) -> ClientOut:
    user = _user(request)
    client = access.get_client_for_user(user, client_id)
    record_read(actor=user, client=client, target=client, role=access.relationship_to(user, client))
    return ClientOut(
        id=client.public_id, given_name=client.given_name, family_name=client.family_name,
        date_of_birth=client.date_of_birth,
        episodes=[e.public_id for e in client.episodes.all()],
    )


@api.get("/clients/{uuid:client_id}/consent", response=list[ConsentOut])
def get_client_consent(request: HttpRequest, client_id: UUID) -> list[ConsentOut]:
    user = _user(request)
    client = access.get_client_for_user(user, client_id)
    # Consent is part of the record: the client's access log shows this read like the page's.
    record_read(actor=user, client=client, target=client, role=access.relationship_to(user, client))
    answers = []
    for purpose, decision in current_status(client).items():
        answers.append(ConsentOut(
            purpose=purpose, allowed=bool(decision and decision.granted),
            decided_at=decision.recorded_at if decision else None,
            text_version=decision.text.version if decision else None,
        ))
    return answers


@api.get("/sessions/{uuid:session_id}", response=SessionOut)
def get_session(request: HttpRequest, session_id: UUID) -> SessionOut:
    user = _user(request)
    session = access.get_session_for_user(user, session_id)
    client = session.episode.client
    record_read(actor=user, client=client, target=session,
                role=access.relationship_to(user, client))
    return SessionOut(
        id=session.public_id, episode=session.episode.public_id, number=session.number,
        scheduled_at=session.scheduled_at, attendance=session.attendance, modality=session.modality,
    )
