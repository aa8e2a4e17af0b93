"""The landing page after sign-in: what each of the person's roles needs first.

Therapists and trainees see their recent sessions, what is still being processed and what
needs them; supervisors their review queue; trainees the feedback they received. Every list is
one query with a fixed limit, whatever the caseload (tests/test_home.py counts them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from relisten import access
from relisten.access import Act
from relisten.accounts.models import Membership, Role, User
from relisten.clients.models import TherapySession
from relisten.recordings.models import Recording, State, Upload
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import RunState, TranscriptRun

RECENT_SESSIONS = 10
LIST_LIMIT = 20
NEW_COMMENT_DAYS = 14
WAITING = (RunState.QUEUED, RunState.RUNNING)


# ---- sessions and recordings -----------------------------------------------------------------

def _latest_run(field: str, recording_path: str = "pk") -> Subquery:
    return Subquery(
        TranscriptRun.objects.filter(recording=OuterRef(recording_path))
        .order_by("-created_at").values(field)[:1]
    )


def session_status(ready: int, transcribed: int, run_state: str | None) -> tuple[str, str]:
    """(words, css class) for a session's recordings, as a list row shows them."""
    if not ready:
        return "No recording", ""
    if transcribed >= ready:
        return "Recorded, transcript ready", "status-ok"
    if run_state in WAITING:
        return "Recorded, transcript being made", ""
    if run_state == RunState.FAILED:
        return "Recorded, transcription failed", "status-failed"
    if run_state == RunState.NO_SPEECH:
        return "Recorded, no speech found", ""
    return "Recorded, not transcribed", ""


@dataclass(frozen=True)
class SessionRow:
    session: TherapySession
    status: str
    css: str


def recent_sessions(user: User) -> list[SessionRow]:
    """The sessions this user treats that have taken place, newest first, with how far their
    recordings have got."""
    ready = Q(recordings__state=State.READY)
    found = (
        access.sessions_for_user(user, Act.TREAT)
        .filter(scheduled_at__lte=timezone.now())
        .select_related("episode__client")
        .annotate(
            ready=Count("recordings", filter=ready, distinct=True),
            transcribed=Count("recordings__transcript", filter=ready, distinct=True),
            run_state=Subquery(
                TranscriptRun.objects.filter(recording__session=OuterRef("pk"),
                                             recording__state=State.READY)
                .order_by("-created_at").values("state")[:1]
            ),
        )
        .order_by("-scheduled_at")[:RECENT_SESSIONS]
    )
    rows = []
    for session in found:
        status, css = session_status(getattr(session, "ready", 0),
                                     getattr(session, "transcribed", 0),
                                     getattr(session, "run_state", None))
        rows.append(SessionRow(session, status, css))
    return rows


def _untranscribed(user: User, latest_run: Q) -> QuerySet[Recording]:
    """READY recordings this user treats that have no transcript, whose latest run matches."""
    return (
        access.recordings_for_user(user, Act.TREAT)
        .filter(transcript__isnull=True)
        .select_related("session__episode__client")
        .annotate(run_state=_latest_run("state"), run_progress=_latest_run("progress"),
                  run_error=_latest_run("error"))
        .filter(latest_run)
        .order_by("-created_at")
    )


def unprocessed_recordings(user: User) -> list[Recording]:
    """Recorded but not transcribed yet: waiting, being transcribed, or never started."""
    waiting = Q(run_state__isnull=True) | Q(run_state__in=WAITING)
    return list(_untranscribed(user, waiting)[:LIST_LIMIT])


def failed_transcriptions(user: User) -> list[Recording]:
    return list(_untranscribed(user, Q(run_state=RunState.FAILED))[:LIST_LIMIT])


def failed_recordings(user: User) -> list[Recording]:
    """Recordings that arrived but could not be used (failed checks): the therapist should know
    the session has no usable recording."""
    return list(
        Recording.objects.filter(state=State.FAILED,
                                 session__in=access.sessions_for_user(user, Act.TREAT))
        .select_related("session__episode__client")
        .order_by("-created_at")[:LIST_LIMIT]
    )


def unfinished_uploads(user: User) -> list[Upload]:
    """This user's own recordings still uploading: the session page resumes them."""
    return list(
        Upload.objects.filter(recording__state=State.UPLOADING, recording__created_by=user,
                              recording__session__in=access.sessions_for_user(user, Act.TREAT))
        .select_related("recording__session__episode__client")
        .order_by("-created_at")[:LIST_LIMIT]
    )


# ---- comments from others --------------------------------------------------------------------

@dataclass(frozen=True)
class CommentRow:
    comment: Comment
    who: str  # the author and how they relate: "Cora (client)", "Dr Sam Reyes (supervisor)"
    seconds: float


def _who(comment: Comment) -> str:
    episode = comment.recording.session.episode
    if comment.author_id == episode.client.user_id:
        return f"{episode.client.given_name} (client)"
    if comment.author_id == episode.supervisor_id:
        return f"{comment.author.label()} (supervisor)"
    return comment.author.label()


def comments_from_others(user: User, since: dt.datetime | None = None) -> list[CommentRow]:
    """What others said on this user's recordings that this user may read; no comment text
    (the link opens the recording at the moment, where reading it is on record)."""
    found = access.comments_from_others_for_user(user)
    if since is not None:
        found = found.filter(created_at__gte=since)
    found = found.select_related("author", "recording__session__episode__client").order_by(
        "-created_at")[:LIST_LIMIT]
    return [CommentRow(comment, _who(comment), round(comment.start, 2)) for comment in found]


# ---- supervisor ------------------------------------------------------------------------------

def supervision_queue(user: User) -> list[TherapySession]:
    return list(
        access.supervision_queue_for_user(user)
        .select_related("episode__client", "episode__therapist")
        .annotate(ready=Count("recordings", filter=Q(recordings__state=State.READY)))[:50]
    )


# ---- the page --------------------------------------------------------------------------------

def _treating_panels(user: User, roles: set[str]) -> dict[str, Any]:
    is_trainee = Role.TRAINEE in roles
    recent_comments_since = timezone.now() - dt.timedelta(days=NEW_COMMENT_DAYS)
    return {
        "recent_sessions": recent_sessions(user),
        "unprocessed": unprocessed_recordings(user),
        "failed_transcriptions": failed_transcriptions(user),
        "failed_recordings": failed_recordings(user),
        "unfinished_uploads": unfinished_uploads(user),
        # A trainee's comments from others are their feedback, listed in full below; a
        # therapist sees the new ones among the things that need them.
        "new_comments": [] if is_trainee else comments_from_others(user, recent_comments_since),
        "feedback": comments_from_others(user) if is_trainee else [],
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    roles = set(Membership.objects.filter(user=user, active=True).values_list("role", flat=True))
    treats = bool(roles & {Role.THERAPIST, Role.TRAINEE})
    context: dict[str, Any] = {
        "roles": roles,
        "treats": treats,
        "is_trainee": Role.TRAINEE in roles,
        "treating": access.clients_for_user(user, Act.TREAT).select_related("clinic")[:50],
        "supervising": access.clients_for_user(user, Act.VIEW)
        .exclude(pk__in=access.clients_for_user(user, Act.TREAT)).select_related("clinic")[:50],
        "own_records": access.own_client_records(user),
        "admin_clinics": access.admin_clinics(user),
        "is_researcher": Role.RESEARCHER in roles,
        "can_create": access.clinics_where_user_treats(user).exists(),
        "queue": supervision_queue(user) if Role.SUPERVISOR in roles else [],
        "is_supervisor": Role.SUPERVISOR in roles,
        "scope_labels": dict(Scope.choices),
    }
    if treats:
        context.update(_treating_panels(user, roles))
    return render(request, "home.html", context)
