"""Reminder emails for due questionnaires, and when to stop asking.

Each due gets an email on each of the plan's reminder days (e.g. 0, 3 and 7 days after it
became due), every one with a fresh single-use link. Asking stops when the questionnaire is
answered, cancelled, or the client opts out; once the last reminder's link has expired the due
is marked missed.

The email says only that the clinic asks for "a short questionnaire": no instrument name, no
answers, not even the client's name, since an inbox may be shared or read over a shoulder.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from relisten.audit.log import record_event
from relisten.outcomes.links import DEFAULT_VALID_DAYS, issue_link
from relisten.outcomes.models import Due, DueState, MeasurementPlan, QuestionnaireContact
from relisten.outcomes.schedule import plan_for

logger = logging.getLogger(__name__)
DEFAULT_REMINDER_DAYS = (0, 3, 7)
CHUNK = 200


@dataclass(frozen=True)
class ReminderRun:
    sent: int = 0
    missed: int = 0
    opted_out: int = 0
    no_address: int = 0


def reminder_days(plan: MeasurementPlan | None) -> tuple[int, ...]:
    raw = plan.reminder_days if plan is not None else None
    days = sorted({int(d) for d in raw if isinstance(d, int) and d >= 0}) if raw else []
    return tuple(days) or DEFAULT_REMINDER_DAYS


def client_email(due: Due) -> str:
    """The questionnaire address the therapist entered, else the portal sign-in's address."""
    contact = QuestionnaireContact.objects.filter(client_id=due.episode.client_id).first()
    if contact is not None and contact.email:
        return contact.email
    user = due.episode.client.user
    return user.email if user is not None and user.email else ""


def answer_url(token: str) -> str:
    return f"{settings.SITE_URL}/q/{token}/"


def _message(clinic_name: str, token: str, expires: dt.date) -> tuple[str, str]:
    stop = settings.SITE_URL + reverse("outcomes:opt_out_link", args=[token])
    subject = f"A short questionnaire from {clinic_name}"
    body = (
        f"Hello,\n\n"
        f"{clinic_name} would like you to answer a short questionnaire. It takes a few "
        f"minutes, and your answers help you and your therapist see how things are going.\n\n"
        f"Open the questionnaire:\n{answer_url(token)}\n\n"
        f"You can answer once with this link, until {expires:%d %B %Y}. You can also answer "
        f"when you sign in to your portal, if you have one.\n\n"
        f"If you would rather not get these emails, you can stop them here:\n{stop}\n\n"
        f"This message was sent automatically; please do not reply to it.\n"
    )
    return subject, body


def _send_one(due: Due, address: str, now: dt.datetime, passed: int) -> bool:
    """Claim this reminder, then send it; False if another worker claimed it first."""
    before = due.reminders_sent
    with transaction.atomic():
        # The conditional update is the claim: of two overlapping runs only one matches.
        claimed = Due.objects.filter(pk=due.pk, state=DueState.DUE,
                                     reminders_sent=before).update(
            reminders_sent=passed, last_reminded_at=now)
        if not claimed:
            return False
        token = issue_link(due, now)
    expires = timezone.localtime(now + dt.timedelta(days=_valid_days(due))).date()
    subject, body = _message(due.episode.client.clinic.name, token, expires)
    try:
        send_mail(subject, body, None, [address])
    except Exception:
        # Not sent: give the reminder back so the next run tries again.
        Due.objects.filter(pk=due.pk, reminders_sent=passed).update(
            reminders_sent=before, last_reminded_at=due.last_reminded_at)
        raise
    with transaction.atomic():
        record_event(actor=None, event_type="questionnaire.reminder_sent", target=due,
                     client=due.episode.client, clinic=due.episode.client.clinic,
                     changes={"reminder": passed, "time_point": due.time_point})
    due.reminders_sent, due.last_reminded_at = passed, now
    return True


def _valid_days(due: Due) -> int:
    plan = plan_for(due.episode)
    return plan.link_valid_days if plan is not None else DEFAULT_VALID_DAYS


def _set_state(due: Due, state: DueState, event_type: str) -> None:
    with transaction.atomic():
        due.state = state
        due.save(update_fields=["state"])
        record_event(actor=None, event_type=event_type, target=due, client=due.episode.client,
                     clinic=due.episode.client.clinic, changes={"time_point": due.time_point})


def remind_one(due: Due, now: dt.datetime) -> str:
    """Send this due's next reminder if its day has come; returns what happened."""
    plan = plan_for(due.episode)
    days = reminder_days(plan)
    valid_days = plan.link_valid_days if plan is not None else DEFAULT_VALID_DAYS
    if QuestionnaireContact.objects.filter(client_id=due.episode.client_id,
                                           opted_out_at__isnull=False).exists():
        _set_state(due, DueState.OPTED_OUT, "questionnaire.opted_out_due")
        return "opted_out"
    # How many reminder days have passed; after a pause (a stopped worker) only the latest
    # reminder is sent, not a burst of the ones missed.
    passed = sum(1 for day in days if now >= due.due_at + dt.timedelta(days=day))
    address = client_email(due) if passed > due.reminders_sent else ""
    if address:
        return "sent" if _send_one(due, address, now, passed) else "waiting"
    last_link_ends = due.due_at + dt.timedelta(days=days[-1] + valid_days)
    if now >= last_link_ends:
        _set_state(due, DueState.MISSED, "questionnaire.missed")
        return "missed"
    # Without an address the client can still answer in their portal until then.
    return "no_address" if passed > due.reminders_sent else "waiting"


def send_reminders(now: dt.datetime | None = None) -> ReminderRun:
    """Remind every open due whose reminder day has come; mark the ones past their last link.

    Takes the ids first and loads each chunk fresh, so no due waits behind others and none is
    handled from a stale copy while this loop changes their states.
    """
    now = now or timezone.now()
    counts = {"sent": 0, "missed": 0, "opted_out": 0, "no_address": 0}
    ids = list(Due.objects.filter(state=DueState.DUE, due_at__lte=now)
               .order_by("due_at").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        chunk = (Due.objects.filter(pk__in=ids[start:start + CHUNK], state=DueState.DUE)
                 .select_related("episode__client__clinic", "episode__client__user")
                 .order_by("due_at"))
        counts = _remind_chunk(list(chunk), now, counts)
    return ReminderRun(**counts)


def _remind_chunk(dues: list[Due], now: dt.datetime, counts: dict[str, int]) -> dict[str, int]:
    for due in dues:
        try:
            outcome = remind_one(due, now)
        except Exception as error:  # one bad address must not stop the others
            # The error's type only: an SMTP refusal's text names the client's address.
            logger.error("questionnaire reminder failed for due %s: %s", due.public_id,
                         type(error).__name__)
            continue
        if outcome in counts:
            counts[outcome] += 1
    return counts
