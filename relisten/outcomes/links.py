"""Answer links: single-use, expiring links that open one questionnaire without an account.

Only the token's SHA-256 is stored, so a copy of the database cannot be used to answer (or to
read a client's drafts). The raw token exists only in the message sent to the client.

`redeem()` checks a token when the page opens and does not use it up: a client who closes the
page half-way must be able to come back to their saved answers. `consume()` uses it up, inside
the transaction that stores the response. Every way a link can fail gives the same plain
message, so a visitor learns nothing about which tokens exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from relisten.outcomes.models import AnswerLink, Due, DueState, MeasurementPlan
from relisten.outcomes.schedule import plan_for

LINK_PROBLEM = (
    "This questionnaire link can no longer be used. Links work once and for a limited time. "
    "If you still want to answer, please ask your therapist for a new link or sign in to your "
    "portal."
)
DEFAULT_VALID_DAYS = 14


class LinkError(Exception):
    """The link is unknown, expired, used, or its questionnaire is no longer asked for."""

    def __init__(self) -> None:
        super().__init__(LINK_PROBLEM)
        self.message = LINK_PROBLEM


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def plan_for_episode(due: Due) -> MeasurementPlan | None:
    """The plan that governs this due: the episode's own, else its clinic's default."""
    return plan_for(due.episode)


def issue_link(due: Due, now: dt.datetime | None = None) -> str:
    """A fresh link for this due; returns the raw token (put it in the message, nowhere else).

    Earlier links stay valid until they expire: the client may open any email they received.
    """
    now = now or timezone.now()
    plan = plan_for_episode(due)
    valid_days = plan.link_valid_days if plan is not None else DEFAULT_VALID_DAYS
    token = secrets.token_urlsafe(32)
    AnswerLink.objects.create(
        due=due, token_sha256=token_hash(token), expires_at=now + dt.timedelta(days=valid_days)
    )
    return token


def _usable_link(token: str, now: dt.datetime, *, lock: bool) -> AnswerLink:
    if not token or len(token) > 200:
        raise LinkError
    links = AnswerLink.objects.select_related("due__episode__client__clinic", "due__instrument")
    if lock:
        links = links.select_for_update()
    link = links.filter(token_sha256=token_hash(token)).first()
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise LinkError
    if link.due.state != DueState.DUE:
        raise LinkError
    return link


def redeem(token: str, now: dt.datetime | None = None) -> Due:
    """The due this token opens, or LinkError (one message for every reason)."""
    return _usable_link(token, now or timezone.now(), lock=False).due


def consume(token: str, now: dt.datetime | None = None) -> Due:
    """Use the link up; call inside the transaction that stores the answers."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("consume must be called inside transaction.atomic()")
    now = now or timezone.now()
    link = _usable_link(token, now, lock=True)
    link.used_at = now
    link.save(update_fields=["used_at"])
    return link.due
