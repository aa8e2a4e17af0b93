"""The client's own area: their shared sessions, notes, consents and who accessed them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from relisten import access
from relisten.accounts.models import User
from relisten.audit.labels import event_label, target_label
from relisten.clients.models import Client
from relisten.clients.views import access_events
from relisten.consent.models import Purpose
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import RunState, Transcript, TranscriptRun
from relisten.transcripts.search import clock
from relisten.web import signed_in_user as _user

NOTES_SHOWN = 20



def duration_label(seconds: float | None) -> str:
    """52 min, 1 h 5 min, 40 s: how long a recording is, in words a phone has room for."""
    if not seconds:
        return ""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    hours, minutes = divmod(round(total / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def transcript_label(has_transcript: bool, run_state: str | None) -> str:
    if has_transcript:
        return "Transcript ready"
    if run_state in (RunState.QUEUED, RunState.RUNNING):
        return "Transcript being prepared"
    if run_state == RunState.NO_SPEECH:
        return "No speech found, so no transcript"
    return "No transcript"


@dataclass(frozen=True)
class SharedRecording:
    recording: Recording
    duration: str
    transcript: str


def _latest_run_state() -> Subquery:
    return Subquery(
        TranscriptRun.objects.filter(recording=OuterRef("pk"))
        .order_by("-created_at").values("state")[:1]
    )


def shared_recordings(user: User, client: Client) -> list[SharedRecording]:
    """Everything the client may play, newest session first; one query."""
    found = (
        access.shared_recordings_for_client(user, client)
        .select_related("session")
        .annotate(run_state=_latest_run_state(),
                  has_transcript=Exists(Transcript.objects.filter(recording=OuterRef("pk"))))
        .order_by("-session__scheduled_at", "-created_at")
    )
    return [
        SharedRecording(recording, duration_label(recording.duration_s),
                        transcript_label(bool(getattr(recording, "has_transcript", False)),
                                         getattr(recording, "run_state", None)))
        for recording in found
    ]


@dataclass(frozen=True)
class OwnNote:
    comment: Comment
    clock: str  # where in the recording, as the player shows it
    shared: bool  # shared with the therapist, or only for the client


def own_notes(user: User, playable: list[SharedRecording]) -> list[OwnNote]:
    """The client's own bookmarks and notes (and what they shared with their therapist) on the
    recordings they can still play (`playable`, from shared_recordings); withdrawing consent
    hides these too. One query."""
    if not playable:
        return []
    found = (
        Comment.objects.filter(
            author=user, scope__in=(Scope.PRIVATE, Scope.CLIENT), parent__isnull=True,
            recording__in=[item.recording.pk for item in playable],
        )
        .select_related("recording__session")
        .order_by("-created_at")[:NOTES_SHOWN]
    )
    return [OwnNote(note, clock(note.start), note.scope == Scope.CLIENT) for note in found]


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    records = list(access.own_client_records(_user(request)))
    if len(records) == 1:
        return redirect("portal:record", record_id=records[0].public_id)
    return render(request, "portal/home.html", {"records": records})


@login_required
def portal_record(request: HttpRequest, record_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_own_client_record(user, record_id)
    consent = access.consents_in_force(client, Purpose.CLIENT_ACCESS)
    recordings = shared_recordings(user, client)
    context: dict[str, Any] = {
        "client": client,
        "client_access": consent[Purpose.CLIENT_ACCESS],
        "client_access_label": Purpose.CLIENT_ACCESS.label,
        "recordings": recordings,
        "notes": own_notes(user, recordings),
    }
    return render(request, "portal/record.html", context)


@login_required
def portal_access_log(request: HttpRequest, record_id: str) -> HttpResponse:
    client = access.get_own_client_record(_user(request), record_id)
    events = access_events(client)
    users = {u.public_id: u for u in User.objects.filter(
        public_id__in=[e.actor_id for e in events if e.actor_id])}
    rows = [
        {"event": event,
         "who": users[event.actor_id].label() if event.actor_id in users else "System",
         "action": event_label(event.event_type), "what": target_label(event.target_type)}
        for event in events
    ]
    return render(request, "portal/access_log.html", {"client": client, "rows": rows})
