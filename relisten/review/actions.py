"""Writes to time-stamped comments. Each saves and audits in one transaction.

Callers have already checked, through relisten.access, that the actor may read the recording
(and, for edits and deletions, that they wrote the comment); the scope a person may choose is
checked here again, so no view can hand a client a care-team comment by mistake.

Audit rows say which comment, its scope and shape (a range? how many tags?), never its words
or its tags: both are clinical text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from relisten import access
from relisten.accounts.models import User
from relisten.audit.log import record_event
from relisten.recordings.models import Recording
from relisten.review.models import Comment


class CommentRefused(Exception):
    """The change cannot be made; `message` says why, in words for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


HAS_REPLIES = ("Others have replied to this comment, so it stays to keep their replies in "
               "context. You can still edit what it says.")
SCOPE_NOT_YOURS = "That choice of who can see the comment is not available to you."


def _audit(actor: User, event_type: str, comment: Comment, changes: dict[str, Any]) -> None:
    client = comment.recording.session.episode.client
    record_event(
        actor=actor, event_type=event_type, target=comment, client=client, clinic=client.clinic,
        changes={"recording_id": str(comment.recording.public_id), **changes},
        actor_role=access.relationship_to(actor, client),
    )


def create_comment(*, actor: User, recording: Recording, start: float, end: float | None,
                   body: str, tags: Sequence[str], scope: str) -> Comment:
    """A new top-level point (end None) or range comment."""
    if scope not in access.writable_comment_scopes(actor, recording):
        raise CommentRefused(SCOPE_NOT_YOURS)
    with transaction.atomic():
        comment = Comment.objects.create(
            recording=recording, author=actor, start=start, end=end, body=body,
            tags=list(tags), scope=scope,
        )
        _audit(actor, "comment.created", comment, {
            "scope": scope, "range": end is not None, "tag_count": len(tags),
        })
    return comment


def reply_to(*, actor: User, comment: Comment, body: str) -> Comment:
    """A reply in `comment`'s thread (a reply to a reply joins the same thread). It takes the
    thread's scope and time, so exactly the thread's readers can read it."""
    root = comment.parent or comment
    with transaction.atomic():
        reply = Comment.objects.create(
            recording=comment.recording, author=actor, parent=root, start=root.start,
            end=root.end, body=body, tags=[], scope=root.scope,
        )
        reply.recording = comment.recording
        _audit(actor, "comment.replied", reply, {
            "scope": root.scope, "thread_id": str(root.public_id),
        })
    return reply


def edit_comment(*, actor: User, comment: Comment, body: str,
                 tags: Sequence[str] | None = None) -> Comment:
    """The author rewords their comment (and, on a thread's first comment, its tags).
    Who can see it stays as it was: readers of the thread may have replied."""
    if comment.author_id != actor.pk:
        raise CommentRefused("Only the person who wrote a comment can change it.")
    changed = []
    if body != comment.body:
        comment.body = body
        changed.append("body")
    if tags is not None and comment.parent_id is None and list(tags) != comment.tags:
        comment.tags = list(tags)
        changed.append("tags")
    if not changed:
        return comment
    with transaction.atomic():
        comment.edited_at = timezone.now()
        comment.save(update_fields=[*changed, "edited_at"])
        _audit(actor, "comment.edited", comment, {"changed_fields": changed})
    return comment


def others_replied(comment: Comment) -> bool:
    return comment.replies.exclude(author_id=comment.author_id).exists()


def delete_comment(*, actor: User, comment: Comment) -> None:
    """The author removes their comment, with their own replies under it. A comment others
    have answered stays (their replies would lose their meaning); it can be edited instead."""
    if comment.author_id != actor.pk:
        raise CommentRefused("Only the person who wrote a comment can delete it.")
    with transaction.atomic():
        if comment.parent_id is None and others_replied(comment):
            raise CommentRefused(HAS_REPLIES)
        replies = comment.replies.count()
        _audit(actor, "comment.deleted", comment, {
            "scope": comment.scope, "reply": comment.parent_id is not None, "replies": replies,
        })
        comment.delete()


def erase_comments(*, actor: User | None, recording: Recording, reason: str) -> int:
    """Delete every comment on a recording being erased (what was said about it goes with it).
    Joins the caller's transaction; one audit row with the count. Returns the count."""
    with transaction.atomic():
        found = Comment.objects.filter(recording=recording)
        count = found.count()
        if not count:
            return 0
        found.delete()  # replies go with their thread (on_delete=CASCADE)
        client = recording.session.episode.client
        record_event(
            actor=actor, event_type="comments.erased", target=recording, client=client,
            clinic=client.clinic, changes={"count": count, "reason": reason},
        )
    return count
