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
from relisten.audit.log import record_read
from relisten.consent.policy import current_status
from relisten.transcripts.models import RunState, Transcript
from relisten.transcripts.views import ACTIVE_STATES, audit_status_look, latest_run
from relisten.web import signed_in_user as _user

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


class TranscriptionStatusOut(Schema):
    recording: UUID
    state: str  # "none" before any run; then queued, running, done, no_speech or failed
    state_label: str
    active: bool
    step: str
    progress: float  # 0-100
    step_timings: dict[str, float]
    error: str  # plain words about what failed, never what was said
    attempts: int
    queued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    transcript: UUID | None


@api.get("/recordings/{uuid:recording_id}/transcription", response=TranscriptionStatusOut)
def get_transcription_status(request: HttpRequest, recording_id: UUID) -> TranscriptionStatusOut:
    """The latest transcription run of a recording, for the page's progress bar and scripts."""
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id)
    audit_status_look(user, recording)
    run = latest_run(recording)
    transcript_id = (
        Transcript.objects.filter(recording=recording).values_list("public_id", flat=True).first()
    )
    if run is None:
        return TranscriptionStatusOut(
            recording=recording.public_id, state="none", state_label="Not transcribed",
            active=False, step="", progress=0.0, step_timings={}, error="", attempts=0,
            queued_at=None, started_at=None, finished_at=None, transcript=transcript_id,
        )
    return TranscriptionStatusOut(
        recording=recording.public_id, state=run.state,
        state_label=RunState(run.state).label, active=run.state in ACTIVE_STATES,
        step=run.step, progress=round(run.progress, 1),
        step_timings={str(k): float(v) for k, v in (run.step_timings or {}).items()},
        error=run.error, attempts=run.attempts, queued_at=run.created_at,
        started_at=run.started_at, finished_at=run.finished_at, transcript=transcript_id,
    )
