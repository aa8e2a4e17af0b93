"""Transcript pages: the recording's review workspace (status while a run is active, then
who-said-what beside the player, with corrections), exports, and search across every transcript
the person may see.

Every object comes through relisten.access (a transcript is visible exactly when its recording
is); every change goes through relisten.transcripts.actions. The workspace itself is built in
relisten.review.workspace; its scripts are same-origin static modules, as the CSP requires.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_event, record_event_now
from relisten.audit.models import AuditEvent, AuditHead
from relisten.lib.asr import export as asr_export
from relisten.lib.asr import types as asr
from relisten.lib.hashchain import GENESIS
from relisten.recordings.models import Recording
from relisten.review.workspace import ACTIVE_STATES as ACTIVE_STATES  # the API reads it here
from relisten.review.workspace import workspace_context
from relisten.transcripts import actions
from relisten.transcripts.models import Segment, Transcript, TranscriptRun
from relisten.transcripts.search import hit_transcripts, search_segments
from relisten.web import signed_in_user as _user

STATUS_POLL_WINDOW = dt.timedelta(minutes=15)



# ---- the DB transcript as the framework-free type the exporters take --------------------------

def to_asr_transcript(transcript: Transcript) -> asr.Transcript:
    """Speaker *names* (as edited) go into every export, not the diarization labels."""
    segments = transcript.segments.select_related("speaker").prefetch_related("words")
    return asr.Transcript(
        segments=tuple(
            asr.Segment(
                start=segment.start, end=segment.end, text=segment.text,
                words=tuple(
                    asr.Word(start=w.start, end=w.end, text=w.text, probability=w.probability)
                    for w in segment.words.all()
                ),
                speaker=segment.speaker.name if segment.speaker else None,
            )
            for segment in segments
        ),
        language=transcript.language,
        duration_s=transcript.duration_s,
    )


# ---- the page: the review workspace for one recording -----------------------------------------

class SegmentForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=5000, strip=True,
        error_messages={"required": "The text cannot be empty. To leave it as it was, "
                                    "just close the form."},
    )
    speaker = forms.ChoiceField(required=False, choices=())

    def __init__(self, *args: object, transcript: Transcript, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        speaker_field = self.fields["speaker"]
        assert isinstance(speaker_field, forms.ChoiceField)
        speaker_field.choices = [("", "(no speaker)")] + [
            (str(s.public_id), s.name) for s in transcript.speakers.all()
        ]


class SpeakerForm(forms.Form):
    name = forms.CharField(max_length=60, strip=True, error_messages={
        "required": "Please give the speaker a name, for example “Therapist” or “Client”.",
    })


@login_required
@require_GET
def transcript_page(request: HttpRequest, recording_id: str) -> HttpResponse:
    """The recording's own page: the workspace clients use, and `?t=` deep links open."""
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id)
    return render(request, "transcripts/transcript.html",
                  workspace_context(request, user, recording))


def _tell_errors(request: HttpRequest, form: forms.Form) -> None:
    """The forms sit inside the transcript, so their errors come back as page messages."""
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, str(error))


def _return_address(request: HttpRequest, recording: Recording) -> str:
    """Where a correction sends the person back to: the page the form was on (the session page
    or the recording page), given as `next`; anything that is not a path on this site falls
    back to the recording page."""
    wanted = request.POST.get("next", "")
    if (wanted.startswith("/") and not wanted.startswith("//") and "#" not in wanted
            and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()})):
        return wanted
    return reverse("transcripts:page", kwargs={"recording_id": recording.public_id})


def _back_to(request: HttpRequest, segment: Segment) -> HttpResponse:
    url = _return_address(request, segment.transcript.recording)
    return redirect(f"{url}#seg-{segment.public_id}")


@login_required
@require_POST
def edit_segment(request: HttpRequest, transcript_id: str, segment_id: str) -> HttpResponse:
    user = _user(request)
    segment = access.get_segment_for_user(user, transcript_id, segment_id, Act.TREAT)
    transcript = segment.transcript
    form = SegmentForm(request.POST, transcript=transcript)
    if not form.is_valid():
        _tell_errors(request, form)
        return _back_to(request, segment)
    text: str = form.cleaned_data["text"]
    wanted: str = form.cleaned_data["speaker"]
    speaker = transcript.speakers.filter(public_id=wanted).first() if wanted else None
    changed = False
    with transaction.atomic():
        if text != segment.text:
            segment = actions.correct_segment(actor=user, segment=segment, text=text)
            changed = True
        current = segment.speaker.public_id if segment.speaker else None
        if (speaker.public_id if speaker else None) != current:
            segment = actions.set_segment_speaker(actor=user, segment=segment, speaker=speaker)
            changed = True
    if changed:
        messages.success(request, "Saved. The earlier version is kept in the history.")
    else:
        messages.info(request, "Nothing had changed, so nothing was saved.")
    return _back_to(request, segment)


@login_required
@require_POST
def rename_speaker(request: HttpRequest, transcript_id: str, speaker_id: str) -> HttpResponse:
    user = _user(request)
    speaker = access.get_speaker_for_user(user, transcript_id, speaker_id, Act.TREAT)
    form = SpeakerForm(request.POST)
    if form.is_valid():
        name: str = form.cleaned_data["name"]
        if name != speaker.name:
            actions.rename_speaker(actor=user, speaker=speaker, name=name)
            messages.success(request, "Speaker renamed everywhere in this transcript, "
                                      "exports included.")
    else:
        _tell_errors(request, form)
    return redirect(f"{_return_address(request, speaker.transcript.recording)}#speakers")


# ---- exports ---------------------------------------------------------------------------------

def export_filename(transcript: Transcript, fmt: str) -> str:
    """Session number and date only: file names travel (mail, shared folders) and must not
    name the client."""
    session = transcript.recording.session
    day = timezone.localtime(session.scheduled_at).date().isoformat()
    return f"session-{session.number}-{day}-transcript.{fmt}"


@login_required
@require_GET
def export(request: HttpRequest, transcript_id: str, fmt: str) -> HttpResponse:
    user = _user(request)
    transcript = access.get_transcript_for_user(user, transcript_id)
    if fmt not in asr_export.FORMATS:
        raise Http404("Not found")
    session = transcript.recording.session
    client = session.episode.client
    # No client name in the document either: exported files travel further than the record.
    title = (f"Session {session.number} transcript, "
             f"{timezone.localtime(session.scheduled_at):%d %B %Y}")
    # ?comments=1: with the comments on the recording that THIS person may read, no others.
    from relisten.review.comments import export_comments

    comments = (export_comments(user, transcript.recording)
                if request.GET.get("comments") == "1" else None)
    body = asr_export.export(to_asr_transcript(transcript), fmt, title=title, comments=comments)
    changes: dict[str, object] = {"format": fmt}
    if comments is not None:
        changes["with_comments"] = len(comments)  # how many, never what they say
    record_event_now(
        actor=user, event_type="transcript.exported", target=transcript, client=client,
        clinic=client.clinic, changes=changes,
        actor_role=access.relationship_to(user, client),
    )
    return HttpResponse(body, content_type=asr_export.MEDIA_TYPES[fmt], headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{export_filename(transcript, fmt)}"',
        "X-Content-Type-Options": "nosniff",
    })


# ---- search ----------------------------------------------------------------------------------

@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    query = request.GET.get("q", "").strip()[:200]
    hits = search_segments(user, query) if query else []
    # The snippets are clinical content: each transcript shown leaves a row in that client's
    # access log (the query itself is never recorded; it may be clinical text too).
    for transcript in hit_transcripts(hits):
        client = transcript.recording.session.episode.client
        record_event_now(
            actor=user, event_type="record.viewed", target=transcript, client=client,
            clinic=client.clinic, changes={"via": "search"},
            actor_role=access.relationship_to(user, client),
        )
    return render(request, "transcripts/search.html", {"query": query, "hits": hits})


# ---- status (shared with the API) ------------------------------------------------------------

def latest_run(recording: Recording) -> TranscriptRun | None:
    return recording.runs.first()


def _status_seen_recently(user: User, recording: Recording) -> bool:
    return AuditEvent.objects.filter(
        event_type="record.viewed", actor_id=user.public_id, target_id=str(recording.public_id),
        at__gte=timezone.now() - STATUS_POLL_WINDOW,
    ).exists()


def audit_status_look(user: User, recording: Recording) -> None:
    """One `record.viewed` per person and recording per quarter hour: the page polls the
    status every two seconds, and the client's access log should read that as one look."""
    if _status_seen_recently(user, recording):
        return
    client = recording.session.episode.client
    with transaction.atomic():
        AuditHead.objects.select_for_update().get_or_create(pk=1, defaults={"mac": GENESIS})
        if not _status_seen_recently(user, recording):
            record_event(
                actor=user, event_type="record.viewed", target=recording, client=client,
                clinic=client.clinic, changes={"via": "transcription status"},
                actor_role=access.relationship_to(user, client),
            )
