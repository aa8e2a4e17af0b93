"""Time-stamped comments: what the panel beside the player shows, and the forms behind it.

`comments_context(user, recording)` returns what `review/_comments.html` needs, in one query
for the comments (authors joined) however many there are. Who may read which comment is
decided in relisten.access; this module only words it for the person reading: a client sees
"Only me" and "Shared with my therapist", staff see the care team and the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.urls import reverse

from relisten import access
from relisten.accounts.models import User
from relisten.lib.asr import export as asr_export
from relisten.recordings.models import Recording
from relisten.review.models import Comment, Scope
from relisten.transcripts.models import Transcript
from relisten.transcripts.search import clock

MAX_BODY = 4000
MAX_TAGS = 5
MAX_TAG_LENGTH = 24
LONGEST_RECORDING_S = 10 * 3600  # when the duration is unknown: a sanity bound, not a rule
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_TAG_SPACES = re.compile(r"[\s_]+")

# How each scope is worded for the person reading, in the form and on each comment's badge.
STAFF_CHOICES = {
    Scope.PRIVATE: "Only me",
    Scope.CARE_TEAM: "Care team (therapist, supervisor, trainee)",
    Scope.CLIENT: "Care team and the client",
}
CLIENT_CHOICES = {
    Scope.PRIVATE: "Only me",
    Scope.CLIENT: "Share with my therapist",
}
STAFF_BADGES = {
    Scope.PRIVATE: "Only me", Scope.CARE_TEAM: "Care team", Scope.CLIENT: "Shared with the client",
}


def badge(scope: str, *, for_client: bool, mine: bool) -> str:
    if not for_client:
        return STAFF_BADGES[Scope(scope)]
    if scope == Scope.PRIVATE:
        return "Only me"
    return "Shared with my therapist" if mine else "Shared with you"


# ---- reading what people type ----------------------------------------------------------------

def parse_time(raw: str) -> float | None:
    """Seconds from "12:34", "1:02:03", "754" or "754.5"; None if it is none of these."""
    text = raw.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        match = _CLOCK.match(text)
        if match is None:
            return None
        hours, minutes, secs = match.groups()
        if (hours is not None and int(minutes) >= 60) or float(secs) >= 60:
            return None
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return round(seconds, 2)


def parse_tags(raw: str) -> list[str]:
    """Comma-separated, lowercased, inner spaces as hyphens, no "#", no repeats, in order."""
    tags: list[str] = []
    for part in raw.split(","):
        tag = _TAG_SPACES.sub("-", part.strip().lstrip("#").strip().lower())
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _check_tags(raw: str) -> list[str]:
    tags = parse_tags(raw)
    if len(tags) > MAX_TAGS:
        raise forms.ValidationError(
            f"Please use at most {MAX_TAGS} tags; this has {len(tags)}.")
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise forms.ValidationError(
            f"Each tag can be at most {MAX_TAG_LENGTH} characters long; please shorten the "
            f"longer ones (a tag is a word or two, such as “rupture” or “homework”).")
    return tags


def _body_field() -> forms.CharField:
    return forms.CharField(
        max_length=MAX_BODY, strip=True, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "Please write something: the comment is empty.",
            "max_length": f"Please keep a comment under {MAX_BODY} characters "
                          f"(this one has %(show_value)d).",
        },
    )


class CommentForm(forms.Form):
    at = forms.CharField(max_length=20, error_messages={
        "required": "Please say where in the recording the comment belongs, for example 12:34.",
    })
    until = forms.CharField(max_length=20, required=False)
    body = _body_field()
    tags = forms.CharField(max_length=400, required=False)
    scope = forms.ChoiceField(choices=(), error_messages={
        "required": "Please choose who can see this comment.",
        "invalid_choice": "Please choose who can see this comment from the list.",
    })

    def __init__(self, *args: Any, user: User, recording: Recording, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording = recording
        self.duration = recording.duration_s
        scope_field = self.fields["scope"]
        assert isinstance(scope_field, forms.ChoiceField)
        scope_field.choices = list(scope_choices(user, recording))

    def _seconds(self, name: str, what: str) -> float | None:
        raw: str = self.cleaned_data.get(name, "")
        if not raw.strip():
            return None
        seconds = parse_time(raw)
        if seconds is None:
            raise forms.ValidationError(
                f"Please write the {what} as minutes:seconds, for example 12:34.")
        limit = self.duration if self.duration is not None else LONGEST_RECORDING_S
        if seconds > limit:
            raise forms.ValidationError(
                f"The {what} ({clock(seconds)}) is after the end of the recording, "
                f"which is {clock(limit)} long.")
        return seconds

    def clean_at(self) -> float | None:
        return self._seconds("at", "time")

    def clean_until(self) -> float | None:
        return self._seconds("until", "end time")

    def clean_tags(self) -> list[str]:
        return _check_tags(self.cleaned_data.get("tags", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("at"), data.get("until")
        if start is not None and end is not None:
            if end < start:
                self.add_error("until", f"The end ({clock(end)}) is before the start "
                                        f"({clock(start)}). Leave it empty for a single moment.")
            elif end == start:
                data["until"] = None  # a range of no length is a moment
        return data


class ReplyForm(forms.Form):
    body = _body_field()


class EditForm(forms.Form):
    body = _body_field()
    tags = forms.CharField(max_length=400, required=False)

    def clean_tags(self) -> list[str]:
        return _check_tags(self.cleaned_data.get("tags", ""))


def scope_choices(user: User, recording: Recording) -> list[tuple[str, str]]:
    words = CLIENT_CHOICES if access.is_recordings_client(user, recording) else STAFF_CHOICES
    return [(scope, words[Scope(scope)])
            for scope in access.writable_comment_scopes(user, recording)]


def default_scope(user: User, recording: Recording) -> str:
    """The least surprising choice: a client's note stays theirs until they share it; staff
    write to the care team, which never includes the client."""
    return Scope.PRIVATE if access.is_recordings_client(user, recording) else Scope.CARE_TEAM


# ---- what the panel shows --------------------------------------------------------------------

@dataclass(frozen=True)
class Failed:
    """A refused form, shown again where it was, as typed, with its errors."""

    kind: str  # "create", "reply" or "edit"
    form: forms.Form
    comment_id: str = ""  # the comment replied to or edited


@dataclass
class CommentView:
    comment: Comment
    author: str
    badge: str
    mine: bool
    at: str  # "12:34" or "12:34–13:00"
    can_delete: bool = True
    why_not_delete: str = ""
    # A refused reply to (or edit of) this comment, shown again as typed:
    reply_body: str = ""
    reply_errors: list[str] = field(default_factory=list)
    edit_body: str | None = None
    edit_tags: str | None = None
    edit_errors: list[str] = field(default_factory=list)

    @property
    def tags_text(self) -> str:
        return ", ".join(self.comment.tags)


@dataclass
class Thread:
    root: CommentView
    replies: list[CommentView] = field(default_factory=list)

    @property
    def marker_label(self) -> str:
        return f"Comment at {self.root.at} by {self.root.author}"


def _span(comment: Comment) -> str:
    if comment.end is None:
        return clock(comment.start)
    return f"{clock(comment.start)}–{clock(comment.end)}"


def _author(comment: Comment, user: User, client_user_id: int | None, client_name: str) -> str:
    if comment.author_id == user.pk:
        return "You"
    if comment.author_id == client_user_id:
        return f"{client_name} (client)"
    return comment.author.label()


def threads_for(user: User, recording: Recording) -> list[Thread]:
    """Visible threads in time order, replies oldest first: one query."""
    client = recording.session.episode.client
    for_client = access.is_recordings_client(user, recording)

    def view(comment: Comment) -> CommentView:
        mine = comment.author_id == user.pk
        return CommentView(
            comment=comment, author=_author(comment, user, client.user_id, client.given_name),
            badge=badge(comment.scope, for_client=for_client, mine=mine), mine=mine,
            at=_span(comment),
        )

    threads: dict[int, Thread] = {}
    replies: list[Comment] = []
    for comment in access.comments_for_user(user, recording).order_by("start", "created_at",
                                                                       "id"):
        if comment.parent_id is None:
            threads[comment.pk] = Thread(root=view(comment))
        else:
            replies.append(comment)
    for reply in sorted(replies, key=lambda c: (c.created_at, c.pk)):
        thread = threads.get(reply.parent_id or 0)
        if thread is not None:
            thread.replies.append(view(reply))
    for thread in threads.values():
        root = thread.root
        if root.mine and any(not r.mine for r in thread.replies):
            root.can_delete = False
            root.why_not_delete = "Others have replied, so this comment stays. You can edit it."
    return list(threads.values())


def _errors(form: forms.Form) -> list[str]:
    return [str(error) for errors in form.errors.values() for error in errors]


def _typed(form: forms.Form, name: str) -> str:
    value = form.data.get(name, "")
    return value if isinstance(value, str) else ""


def _show_refusal(threads: list[Thread], failed: Failed) -> None:
    """Put a refused reply or edit back under the comment it was for."""
    for thread in threads:
        for item in (thread.root, *thread.replies):
            if str(item.comment.public_id) != failed.comment_id:
                continue
            if failed.kind == "reply":
                item.reply_body = _typed(failed.form, "body")
                item.reply_errors = _errors(failed.form)
            else:
                item.edit_body = _typed(failed.form, "body")
                item.edit_tags = _typed(failed.form, "tags")
                item.edit_errors = _errors(failed.form)


def _new_comment_form(user: User, recording: Recording, failed: Failed | None) -> dict[str, Any]:
    """The values and errors of the "new comment" form: empty, or as typed when refused."""
    if failed is None or failed.kind != "create":
        return {"at": "0:00", "until": "", "body": "", "tags": "",
                "scope": default_scope(user, recording), "errors": {}, "general": []}
    form = failed.form
    return {
        "at": _typed(form, "at"), "until": _typed(form, "until"), "body": _typed(form, "body"),
        "tags": _typed(form, "tags"), "scope": _typed(form, "scope"),
        "errors": {name: [str(e) for e in errors] for name, errors in form.errors.items()
                   if name != "__all__"},
        "general": [str(e) for e in form.non_field_errors()],
    }


def transcript_of(recording: Recording) -> Transcript | None:
    """The recording's transcript or None. Django keeps the answer (None too) on `recording`,
    so the workspace and this panel share one query, none when the caller selected it."""
    try:
        return recording.transcript
    except Transcript.DoesNotExist:
        return None


def comments_context(user: User, recording: Recording, *, failed: Failed | None = None,
                     **extra: Any) -> dict[str, Any]:
    """Everything the panel needs. `failed`: a refused form, shown again as typed; `extra`:
    the page to come back to (`back`) or a message after a change (`message`)."""
    threads = threads_for(user, recording)
    transcript = transcript_of(recording)
    transcript_id = transcript.public_id if transcript else None
    if failed is not None and failed.kind != "create":
        _show_refusal(threads, failed)
    for_client = access.is_recordings_client(user, recording)
    duration = recording.duration_s
    context: dict[str, Any] = {
        "recording": recording,
        "threads": threads,
        "count": len(threads),
        "for_client": for_client,
        "scope_choices": scope_choices(user, recording),
        "default_scope": default_scope(user, recording),
        "duration": duration,
        "duration_clock": clock(duration) if duration is not None else "",
        "create_url": reverse("review:comments", kwargs={"recording_id": recording.public_id}),
        # "Download with these comments": each of the transcript's formats, ?comments=1.
        "exports": [
            (fmt.upper(), reverse("transcripts:export",
                                  kwargs={"transcript_id": transcript_id, "fmt": fmt})
             + "?comments=1")
            for fmt in asr_export.FORMATS
        ] if transcript_id else [],
        "max_tags": MAX_TAGS,
        "max_tag_length": MAX_TAG_LENGTH,
        "max_body": MAX_BODY,
        "new": _new_comment_form(user, recording, failed),
        "failed": failed,
        "back": "",
        "message": "",
    }
    context.update(extra)
    return context


# ---- exports ---------------------------------------------------------------------------------

EXPORT_SCOPES = {
    Scope.PRIVATE: "private note",
    Scope.CARE_TEAM: "care team",
    Scope.CLIENT: "shared with the client",
}


def _export_author(comment: Comment, client_user_id: int | None) -> str:
    """Names of staff as they sign; a client only as "Client": files travel further than the
    record, and the export never names the client (its title and file name do not either)."""
    return "Client" if comment.author_id == client_user_id else comment.author.label()


def export_comments(user: User, recording: Recording) -> list[asr_export.ExportComment]:
    """The comments `user` may read on `recording`, as the transcript exports write them."""
    client_user_id = recording.session.episode.client.user_id
    return [
        asr_export.ExportComment(
            start=thread.root.comment.start, end=thread.root.comment.end,
            author=_export_author(thread.root.comment, client_user_id),
            scope=EXPORT_SCOPES[Scope(thread.root.comment.scope)],
            text=thread.root.comment.body, written=thread.root.comment.created_at.isoformat(),
            tags=tuple(thread.root.comment.tags),
            replies=tuple(
                asr_export.ExportReply(author=_export_author(r.comment, client_user_id),
                                       text=r.comment.body,
                                       written=r.comment.created_at.isoformat())
                for r in thread.replies
            ),
        )
        for thread in threads_for(user, recording)
    ]
