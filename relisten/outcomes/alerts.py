"""Alerts raised by an answered questionnaire, and the flags on the therapist's home page.

A risk item answered above 0 (PHQ-9 item 9, thoughts of self-harm) raises an alert at once: it
shows on the therapist's home page until acknowledged, and the therapist gets an email that
says only that a questionnaire needs attention, with a link (never the answers, which the
email's path through mail servers must not carry). Reliable deterioration and off-track
progress raise flags, shown on the home page, from the client's scores so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from relisten.audit.log import record_event
from relisten.lib.outcomes.change import classify
from relisten.lib.outcomes.instruments import ScoringRules, load_questionnaire
from relisten.outcomes.models import Alert, AlertKind, Response

logger = logging.getLogger(__name__)

AlertUrl = Callable[[Alert], str]  # the absolute link to the alert page, for the email

# Off track: by the fourth measure the score has not come down at all from the first one
# (a simple stand-in for expected-treatment-response curves, which need clinic norms).
OFF_TRACK_AFTER = 4

EMAIL_SUBJECT = "A questionnaire needs your attention"
EMAIL_BODY = (
    "A questionnaire answered by one of your clients needs your attention today.\n\n"
    "Please sign in to Relisten to see it and to acknowledge it:\n{link}\n\n"
    "This email does not contain any answers, for the client's privacy."
)


def _raise(response: Response, kind: AlertKind) -> Alert | None:
    alert, created = Alert.objects.get_or_create(
        response=response, kind=kind, defaults={"episode": response.episode}
    )
    if not created:
        return None
    client = response.episode.client
    record_event(actor=None, event_type="outcome_alert.raised", target=alert, client=client,
                 clinic=client.clinic, changes={"kind": str(kind)})
    return alert


def reliable_deterioration(rules: ScoringRules, response: Response,
                           first: Response | None) -> bool:
    """NHS Talking Therapies reliable deterioration (the instrument's reliable-change points)
    from the episode's first score to this one."""
    if first is None or first.pk == response.pk:
        return False
    try:
        return classify(rules, first.total, response.total).reliable_deterioration
    except ValueError:  # a total outside the instrument's range: nothing to compare
        return False


def off_track(response: Response, earlier: list[Response]) -> bool:
    """`earlier`: this episode's earlier responses to the same instrument, oldest first."""
    if len(earlier) + 1 < OFF_TRACK_AFTER or not earlier:
        return False
    return response.total >= earlier[0].total


def raise_alerts(
    response: Response, risk_items: tuple[str, ...], *, alert_url: AlertUrl | None = None
) -> list[Alert]:
    """Called inside the transaction that stored `response`; the email goes once it commits."""
    raised: list[Alert] = []
    if risk_items:
        alert = _raise(response, AlertKind.RISK_ITEM)
        if alert is not None:
            raised.append(alert)
            link = alert_url(alert) if alert_url else ""
            therapist_email = response.episode.therapist.email
            if therapist_email:
                transaction.on_commit(lambda: _send_risk_email(therapist_email, link))
    earlier = list(
        Response.objects.filter(episode=response.episode, instrument=response.instrument,
                                answered_at__lt=response.answered_at).order_by("answered_at")
    )
    first = earlier[0] if earlier else None
    rules = load_questionnaire(response.instrument.questionnaire,
                               response.instrument.scoring or None).scoring
    if reliable_deterioration(rules, response, first):
        alert = _raise(response, AlertKind.DETERIORATION)
        raised += [alert] if alert else []
    elif off_track(response, earlier):
        alert = _raise(response, AlertKind.OFF_TRACK)
        raised += [alert] if alert else []
    return raised


def _send_risk_email(address: str, link: str) -> None:
    """A mail server being down must not lose the client's answers (already stored): the alert
    still shows on the therapist's home page, and the failure is logged for the operator."""
    try:
        send_mail(EMAIL_SUBJECT, EMAIL_BODY.format(link=link or "(open Relisten's home page)"),
                  settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except OSError as error:
        # The error's type only, as for reminders: an SMTP refusal's text names the address.
        logger.error("could not send a risk alert email: %s", type(error).__name__)
