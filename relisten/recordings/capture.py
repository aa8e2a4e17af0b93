"""Recording in the browser and uploading a file, from a therapy session's page.

`capture_context()` gives the `recordings/_capture.html` partial what it needs: which kinds of
recording the client's consent allows right now (and, for those it does not, why and where to
fix it), the tus endpoint, and this user's recent uploads of the session that are still being
checked or could not be used. The browser side lives in static/relisten/capture.js (recorder,
IndexedDB chunk store, tus queue) and uploader.js (file upload through tus-js-client).

`capture_status` answers the panel's polling after an upload finishes: the state of this
user's recordings of the session, so the page can say "ready" without reloading itself.
The server refuses anything the panel would not offer (tus.py / actions.create_upload ask
consent again inside their transaction); the panel is for people, not for enforcement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_event_now
from relisten.audit.models import AuditEvent
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose
from relisten.consent.policy import is_allowed
from relisten.recordings.models import Kind, Recording, State

# The panel polls the status every few seconds; the client's access log should read a quarter
# hour of polling (or the page view that started it) as one look, as transcript status does.
STATUS_POLL_WINDOW = dt.timedelta(minutes=15)
# Recordings that stopped being "in progress" this long ago no longer show in the panel.
RECENT = dt.timedelta(days=7)
SHOWN_PENDING = 5
# The recorder cuts a chunk this often; each is stored in IndexedDB, then uploaded. A tab that
# crashes loses at most this much plus the chunk being written (the issue allows ~10 s).
TIMESLICE_MS = 2000

KIND_PURPOSE = {Kind.AUDIO: Purpose.AUDIO_RECORDING, Kind.VIDEO: Purpose.VIDEO_RECORDING}
KIND_LABEL = {Kind.AUDIO: "Audio only", Kind.VIDEO: "Audio and video"}
NOT_AGREED = {
    Kind.AUDIO: "The client has not agreed to audio recording, so it cannot be started.",
    Kind.VIDEO: "The client has not agreed to video recording, so it cannot be started.",
}


@dataclass(frozen=True)
class KindOption:
    kind: str
    label: str
    allowed: bool
    reason: str  # empty when allowed


def _option(kind: Kind, allowed: bool) -> KindOption:
    return KindOption(kind=kind.value, label=KIND_LABEL[kind], allowed=allowed,
                      reason="" if allowed else NOT_AGREED[kind])


def may_capture(user: User, session: TherapySession) -> bool:
    """Only the treating therapist or trainee records or uploads (supervisors only watch)."""
    return access.sessions_for_user(user, Act.TREAT).filter(pk=session.pk).exists()


def capture_context(user: User, session: TherapySession) -> dict[str, Any]:
    """What the capture panel shows; empty (no panel) for anyone who may not treat.

    Four queries whatever the data: the treat check, two consent questions and the list of
    this user's recent unfinished recordings of the session."""
    if not may_capture(user, session):
        return {}
    client = session.episode.client
    options = [_option(kind, is_allowed(client, KIND_PURPOSE[kind])) for kind in Kind]
    allowed = [option.kind for option in options if option.allowed]
    pending = list(
        Recording.objects.filter(session=session, created_by=user,
                                 state__in=[State.RECEIVED, State.FAILED],
                                 created_at__gte=timezone.now() - RECENT)
        .order_by("-created_at")[:SHOWN_PENDING]
    )
    return {
        "session_id": str(session.public_id),
        "options": options,
        "can_record": bool(allowed),
        "some_refused": len(allowed) < len(options),
        "consent_url": reverse("clients:consent", args=[client.public_id]),
        "pending": pending,
        "max_label": size_label(settings.UPLOAD_MAX_BYTES),
        "config": {
            "session": str(session.public_id),
            "uploadUrl": reverse("recordings:upload_create"),
            "statusUrl": reverse("recordings:capture_status", args=[session.public_id]),
            "sessionUrl": reverse("clients:session", args=[session.public_id]),
            "allowedKinds": allowed,
            "maxBytes": settings.UPLOAD_MAX_BYTES,
            "maxLabel": size_label(settings.UPLOAD_MAX_BYTES),
            "timesliceMs": TIMESLICE_MS,
        },
    }


def size_label(size: int) -> str:
    """A byte count as people say it (1.5 GB, 200 MB), for limits and error messages."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _audit_status_look(user: User, session: TherapySession) -> None:
    """The states are not clinical text, but they say this person looked at the session: one
    `record.viewed` per person and session per quarter hour."""
    seen = AuditEvent.objects.filter(
        event_type="record.viewed", actor_id=user.public_id, target_id=str(session.public_id),
        at__gte=timezone.now() - STATUS_POLL_WINDOW,
    ).exists()
    if not seen:
        client = session.episode.client
        record_event_now(actor=user, event_type="record.viewed", target=session, client=client,
                         clinic=client.clinic, changes={"via": "recording status"},
                         actor_role=access.relationship_to(user, client))


def _status_row(recording: Recording, session_url: str) -> dict[str, Any]:
    return {
        "id": str(recording.public_id),
        "state": recording.state,
        "label": recording.get_state_display(),
        "failure": recording.failure if recording.state == State.FAILED else "",
        "duration_s": recording.duration_s,
        "url": f"{session_url}?r={recording.public_id}" if recording.state == State.READY else "",
    }


@never_cache
@login_required
@require_GET
def capture_status(request: HttpRequest, session_id: str) -> JsonResponse:
    """This user's recordings of the session made in the last week, newest first: states only
    (no clinical content), so the panel can tell when a finished upload has been checked."""
    user = request.user
    assert isinstance(user, User)
    session = access.get_session_for_user(user, session_id, Act.TREAT)
    _audit_status_look(user, session)
    session_url = reverse("clients:session", args=[session.public_id])
    recent = (Recording.objects.filter(session=session, created_by=user,
                                       created_at__gte=timezone.now() - RECENT)
              .exclude(state=State.ERASED).order_by("-created_at")[:20])
    return JsonResponse({"recordings": [_status_row(r, session_url) for r in recent]})
