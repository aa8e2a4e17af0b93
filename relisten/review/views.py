"""The comment endpoints. Plain POST forms: with the panel's script (or htmx) they answer with
the updated panel, which replaces the old one; without script they send the person back to the
page they came from, or, when a form was refused, show it again as typed with what to fix.

Every object comes through relisten.access; every change goes through relisten.review.actions.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from relisten import access
from relisten.audit.log import record_read
from relisten.recordings.models import Recording
from relisten.review import actions
from relisten.review.comments import (
    CommentForm,
    EditForm,
    Failed,
    ReplyForm,
    comments_context,
)
from relisten.review.models import Comment
from relisten.web import same_site_next
from relisten.web import signed_in_user as _user
from relisten.web import wants_fragment as _wants_fragment

PANEL = "review/_comments.html"
PAGE = "review/comments_page.html"




def _back(request: HttpRequest, recording: Recording) -> str:
    """Where the person came from (a page on this site only), else the recording's page."""
    return same_site_next(
        request, reverse("transcripts:page", kwargs={"recording_id": recording.public_id}))


def _panel(request: HttpRequest, recording: Recording, *, status: int = 200,
           failed: Failed | None = None, message: str = "") -> HttpResponse:
    """The panel alone (script/htmx), or the panel on a page of its own (no script)."""
    context = comments_context(_user(request), recording, failed=failed,
                               back=_back(request, recording), message=message)
    template = PANEL if _wants_fragment(request) else PAGE
    return render(request, template, {"comments": context}, status=status)


def _done(request: HttpRequest, recording: Recording, message: str) -> HttpResponse:
    if _wants_fragment(request):
        return _panel(request, recording, message=message)
    messages.success(request, message)
    return redirect(f"{_back(request, recording)}#comments")


def _refused(request: HttpRequest, recording: Recording, failed: Failed) -> HttpResponse:
    """Nothing was changed. htmx swaps only 2xx answers by default, so the panel with the
    errors comes back as 200; the page without script says 422 (Unprocessable)."""
    status = 200 if _wants_fragment(request) else 422
    return _panel(request, recording, status=status, failed=failed)


def _refusal_form(form: forms.Form, message: str) -> forms.Form:
    form.add_error(None, message)
    return form


@login_required
@require_http_methods(["GET", "POST"])
def comments(request: HttpRequest, recording_id: str) -> HttpResponse:
    """GET: the visible comments (a read, audited). POST: a new comment at a time."""
    user = _user(request)
    recording = access.get_recording_for_user(user, recording_id)
    if request.method == "GET":
        client = recording.session.episode.client
        record_read(actor=user, client=client, target=recording,
                    role=access.relationship_to(user, client))
        return _panel(request, recording)
    form = CommentForm(request.POST, user=user, recording=recording)
    if not form.is_valid():
        return _refused(request, recording, Failed("create", form))
    data = form.cleaned_data
    try:
        actions.create_comment(
            actor=user, recording=recording, start=data["at"], end=data["until"],
            body=data["body"], tags=data["tags"], scope=data["scope"],
        )
    except actions.CommentRefused as refusal:
        return _refused(request, recording, Failed("create", _refusal_form(form,
                                                                           refusal.message)))
    return _done(request, recording, "Comment added.")


@login_required
@require_POST
def reply(request: HttpRequest, comment_id: str) -> HttpResponse:
    user = _user(request)
    comment = access.get_comment_for_user(user, comment_id)
    form = ReplyForm(request.POST)
    if not form.is_valid():
        return _refused(request, comment.recording,
                        Failed("reply", form, str(_thread_root(comment).public_id)))
    actions.reply_to(actor=user, comment=comment, body=form.cleaned_data["body"])
    return _done(request, comment.recording, "Reply added.")


@login_required
@require_POST
def edit(request: HttpRequest, comment_id: str) -> HttpResponse:
    user = _user(request)
    comment = access.get_comment_for_user(user, comment_id, author_only=True)
    form = EditForm(request.POST)
    if not form.is_valid():
        return _refused(request, comment.recording,
                        Failed("edit", form, str(comment.public_id)))
    tags = form.cleaned_data["tags"] if comment.parent_id is None else None
    before = (comment.body, list(comment.tags))
    comment = actions.edit_comment(actor=user, comment=comment, body=form.cleaned_data["body"],
                                   tags=tags)
    changed = before != (comment.body, list(comment.tags))
    return _done(request, comment.recording,
                 "Comment saved." if changed else "Nothing had changed, so nothing was saved.")


@login_required
@require_POST
def delete(request: HttpRequest, comment_id: str) -> HttpResponse:
    user = _user(request)
    comment = access.get_comment_for_user(user, comment_id, author_only=True)
    recording = comment.recording
    try:
        actions.delete_comment(actor=user, comment=comment)
    except actions.CommentRefused as refusal:
        if _wants_fragment(request):
            return _panel(request, recording, message=refusal.message)
        messages.error(request, refusal.message)
        return redirect(f"{_back(request, recording)}#comments")
    return _done(request, recording, "Comment deleted.")


def _thread_root(comment: Comment) -> Comment:
    return comment.parent or comment
