"""`{% comment_threads c %}`: the comments panel's thread list (relisten.review.comments_html)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from relisten.review.comments_html import threads_html

register = template.Library()


@register.simple_tag(takes_context=True)
def comment_threads(context: template.Context, c: dict[str, Any]) -> SafeString:
    request = context.get("request")
    return threads_html(
        c["threads"], recording_id=c["recording"].public_id,
        next_url=c["back"] or (request.get_full_path() if request is not None else ""),
        # The same token `{% csrf_token %}` writes: one per page serves every form.
        csrf_token=str(context.get("csrf_token", "")),
        max_body=c["max_body"], max_tags=c["max_tags"],
    )
