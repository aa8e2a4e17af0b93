"""The list of comment threads in the comments panel, written in Python.

A long session carries about 50 comments, each with its author's edit and delete forms and a
reply form per thread. Through the template engine (an include per comment, `{% url %}` and
`{% csrf_token %}` per form) that list cost more than the rest of the workspace together, so it
is written here like the transcript: each piece escaped once, addresses made from one
`reverse()` per kind, the CSRF token read once. The markup is what `review/_comments.html`
showed before; comments.js relies on `[data-comment]` (with data-start, data-end, data-label),
`[data-seek]` and `[data-comments-form]`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.safestring import SafeString, mark_safe

from relisten.review.comments import CommentView, Thread

# Stands in for a comment's id in the addresses below; swapped per comment.
_PLACEHOLDER = str(uuid.UUID(int=0))


def _when(local: datetime) -> str:
    """As the template's `date:"j M Y, H:i"` wrote it ("30 Nov 2026, 03:04"), without the
    general date formatter, which cost more than the rest of a comment."""
    month = str(MONTHS_3[local.month]).title()
    return f"{local.day} {month} {local.year}, {local.hour:02d}:{local.minute:02d}"


def _lines(text: str) -> str:
    """Escaped, with line breaks as <br> (the `linebreaksbr` filter)."""
    return escape(text.replace("\r\n", "\n").replace("\r", "\n")).replace("\n", "<br>")


@dataclass(frozen=True)
class _Page:
    """What every form and link in the list shares, each escaped once."""

    play_url: str  # the recording page, for the time links' no-script path
    reply_url: str
    edit_url: str
    delete_url: str
    hidden: str  # the CSRF token and the page to come back to, as hidden inputs
    max_body: int
    max_tags: int


def _addresses(name: str) -> str:
    return escape(reverse(name, kwargs={"comment_id": _PLACEHOLDER}))


def _errors(kind: str, cid: str, errors: Sequence[str]) -> str:
    items = "".join(f"<p>{escape(e)}</p>" for e in errors)
    return f'<div class="field-errors" role="alert" id="{kind}-error-{cid}">{items}</div>'


def _invalid(kind: str, cid: str, errors: Sequence[str]) -> str:
    return f' aria-invalid="true" aria-describedby="{kind}-error-{cid}"' if errors else ""


def _own_forms(item: CommentView, page: _Page, cid: str, *, is_root: bool) -> str:
    """The author's edit form and delete form (or why deleting is not offered)."""
    comment = item.comment
    body = item.edit_body if item.edit_body is not None else comment.body
    tags = ""
    if is_root:
        tags_value = item.edit_tags if item.edit_tags is not None else item.tags_text
        tags = (
            f'<div class="field"><label for="edit-tags-{cid}">Tags <span class="muted">'
            f"(optional, up to {page.max_tags}, separated by commas)</span></label>\n"
            f'<input type="text" id="edit-tags-{cid}" name="tags" maxlength="400" '
            f'autocomplete="off" value="{escape(tags_value)}"></div>\n'
        )
    edit = (
        f'<details class="comment-edit"{" open" if item.edit_errors else ""}>'
        f"<summary>Edit</summary>\n"
        f'<form method="post" action="{page.edit_url.replace(_PLACEHOLDER, cid)}" '
        f"data-comments-form novalidate>{page.hidden}"
        f'{_errors("edit", cid, item.edit_errors) if item.edit_errors else ""}'
        f'<div class="field"><label for="edit-{cid}">Text</label>\n'
        f'<textarea id="edit-{cid}" name="body" rows="3" maxlength="{page.max_body}" required'
        f'{_invalid("edit", cid, item.edit_errors)}>{escape(body)}</textarea></div>\n'
        f"{tags}"
        f'<button type="submit" class="secondary">Save changes</button>\n'
        f'<span class="help">Who can see it stays as it is.</span></form></details>\n'
    )
    if item.can_delete:
        what = "comment (with any replies of yours under it)" if is_root else "reply"
        delete = (
            f'<details class="comment-delete"><summary>Delete</summary>\n'
            f'<form method="post" action="{page.delete_url.replace(_PLACEHOLDER, cid)}" '
            f"data-comments-form>{page.hidden}"
            f"<p>Delete this {what} for good?</p>\n"
            f'<button type="submit" class="danger">Yes, delete it</button></form></details>'
        )
    else:
        delete = (
            f'<p class="help"><button type="button" class="secondary" disabled '
            f'aria-describedby="why-{cid}">Delete</button>\n'
            f'<span id="why-{cid}">{escape(item.why_not_delete)}</span></p>'
        )
    return f'<div class="comment-own">{edit}{delete}</div>\n'


def _item(item: CommentView, page: _Page, *, is_root: bool) -> str:
    """One comment or reply."""
    comment = item.comment
    cid = str(comment.public_id)
    author = escape(item.author)
    meta = []
    if is_root:
        start = f"{comment.start:.2f}"
        at = escape(item.at)
        meta.append(f'<a class="comment-time" href="{page.play_url}?t={start}" '
                    f'data-seek="{start}" aria-label="Play from {at}">{at}</a>\n')
    meta.append(f'<strong class="comment-author">{author}</strong>\n')
    if is_root:
        meta.append(f'<span class="scope-badge scope-{escape(comment.scope)}">'
                    f"{escape(item.badge)}</span>\n")
    written = timezone.localtime(comment.created_at)
    meta.append(f'<time class="muted" datetime="{written.isoformat()}">{_when(written)}</time>')
    if comment.edited_at:
        meta.append(' <span class="muted">(edited)</span>')
    tags = ""
    if is_root and comment.tags:
        listed = "".join(f"<li>{escape(tag)}</li>" for tag in comment.tags)
        tags = f'<ul class="comment-tags" aria-label="Tags">{listed}</ul>\n'
    own = _own_forms(item, page, cid, is_root=is_root) if item.mine else ""
    kind = "Comment" if is_root else "Reply"
    return (
        f'<article class="comment{" mine" if item.mine else ""}" '
        f'aria-label="{kind} by {author}">\n'
        f'<p class="comment-meta">{"".join(meta)}</p>\n'
        f'<p class="comment-body">{_lines(comment.body)}</p>\n'
        f"{tags}{own}</article>\n"
    )


def _reply_form(root: CommentView, page: _Page, cid: str) -> str:
    errors = _errors("reply", cid, root.reply_errors) if root.reply_errors else ""
    return (
        f'<details class="comment-reply"{" open" if root.reply_errors else ""}>'
        f"<summary>Reply</summary>\n"
        f'<form method="post" action="{page.reply_url.replace(_PLACEHOLDER, cid)}" '
        f"data-comments-form novalidate>{page.hidden}{errors}"
        f'<label for="reply-{cid}" class="sr-only">Your reply to the comment at '
        f"{escape(root.at)}</label>\n"
        f'<textarea id="reply-{cid}" name="body" rows="2" maxlength="{page.max_body}" required'
        f'{_invalid("reply", cid, root.reply_errors)}>{escape(root.reply_body)}</textarea>\n'
        f'<button type="submit" class="secondary">Send reply</button>\n'
        f'<span class="help">Seen by the same people as the comment '
        f"({escape(root.badge.lower())}).</span></form></details>\n"
    )


def _thread(thread: Thread, page: _Page) -> str:
    root = thread.root
    comment = root.comment
    cid = str(comment.public_id)
    end = f' data-end="{comment.end:.2f}"' if comment.end is not None else ""
    replies = ""
    if thread.replies:
        items = "".join(
            f'<li id="comment-{reply.comment.public_id}">{_item(reply, page, is_root=False)}'
            f"</li>" for reply in thread.replies)
        replies = f'<ol class="comment-replies" aria-label="Replies">{items}</ol>\n'
    return (
        f'<li class="comment-thread" id="comment-{cid}" data-comment '
        f'data-start="{comment.start:.2f}"{end} data-label="{escape(thread.marker_label)}">\n'
        f"{_item(root, page, is_root=True)}{replies}{_reply_form(root, page, cid)}</li>\n"
    )


def _token(csrf_token: str) -> str:
    """The CSRF input, as `{% csrf_token %}` writes it (nothing when rendered without one)."""
    if not csrf_token or csrf_token == "NOTPROVIDED":
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf_token)}">\n'


def threads_html(threads: Sequence[Thread], *, recording_id: uuid.UUID, next_url: str,
                 csrf_token: str, max_body: int, max_tags: int) -> SafeString:
    """The `<li>`s of the panel's thread list, in the order given."""
    page = _Page(
        play_url=escape(reverse("transcripts:page", kwargs={"recording_id": recording_id})),
        reply_url=_addresses("review:comment_reply"),
        edit_url=_addresses("review:comment_edit"),
        delete_url=_addresses("review:comment_delete"),
        hidden=_token(csrf_token)
        + f'<input type="hidden" name="next" value="{escape(next_url)}">\n',
        max_body=max_body, max_tags=max_tags,
    )
    return mark_safe("".join(_thread(thread, page) for thread in threads))  # noqa: S308 - escaped
