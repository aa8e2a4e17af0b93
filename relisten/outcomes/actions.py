"""Writes to outcome monitoring. Each saves and writes its audit row in one transaction.

Owners add functions only in their own section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event
from relisten.clients.models import Client, Episode
from relisten.outcomes.alerts import AlertUrl, raise_alerts
from relisten.outcomes.links import consume
from relisten.outcomes.models import (
    Alert,
    Due,
    DueState,
    Instrument,
    ItemAnswer,
    MeasurementPlan,
    QuestionnaireContact,
    Response,
    Source,
)
from relisten.outcomes.questionnaire import AlreadyAnswered, clean_answers, questionnaire_of

# ---- SCHEDULE (measurement plans, questionnaire email, opt-out) ------------------------------

FOLLOW_UP_CHOICES = (1, 3, 6, 12)


@dataclass(frozen=True)
class PlanValues:
    """What a plan form sets; validated by the form, checked again here."""

    at_intake: bool = True
    every_n_sessions: int = 1
    at_end: bool = True
    follow_up_months: tuple[int, ...] = FOLLOW_UP_CHOICES
    reminder_days: tuple[int, ...] = (0, 3, 7)
    link_valid_days: int = 14
    show_client_chart: bool = False

    def check(self) -> None:
        if not 0 <= self.every_n_sessions <= 52:
            raise ValueError("every_n_sessions must be 0 to 52")
        if set(self.follow_up_months) - set(FOLLOW_UP_CHOICES):
            raise ValueError("follow-ups are at 1, 3, 6 or 12 months")
        if not self.reminder_days or any(not 0 <= d <= 60 for d in self.reminder_days):
            raise ValueError("reminder days must be 0 to 60, at least one")
        if not 1 <= self.link_valid_days <= 90:
            raise ValueError("links are valid 1 to 90 days")


def _apply(plan: MeasurementPlan, values: PlanValues) -> list[str]:
    new = {
        "at_intake": values.at_intake, "every_n_sessions": values.every_n_sessions,
        "at_end": values.at_end, "follow_up_months": sorted(set(values.follow_up_months)),
        "reminder_days": sorted(set(values.reminder_days)),
        "link_valid_days": values.link_valid_days, "show_client_chart": values.show_client_chart,
    }
    changed = [name for name, value in new.items() if getattr(plan, name) != value]
    for name, value in new.items():
        setattr(plan, name, value)
    return changed


def _save_plan(plan: MeasurementPlan, values: PlanValues,
               instruments: Iterable[Instrument]) -> list[str]:
    values.check()
    changed = _apply(plan, values)
    plan.save()
    wanted = sorted(i.pk for i in instruments)
    if sorted(plan.instruments.values_list("pk", flat=True)) != wanted:
        plan.instruments.set(wanted)
        changed.append("instruments")
    return changed


def save_clinic_plan(*, actor: User, clinic: Clinic, values: PlanValues,
                     instruments: Iterable[Instrument]) -> MeasurementPlan:
    """The clinic's default plan, for every episode without its own."""
    with transaction.atomic():
        plan, _ = MeasurementPlan.objects.get_or_create(clinic=clinic, episode=None)
        changed = _save_plan(plan, values, instruments)
        record_event(actor=actor, event_type="outcomes.clinic_plan_saved", target=plan,
                     clinic=clinic, changes={"changed_fields": changed})
    _replan_soon()
    return plan


def save_episode_plan(*, actor: User, episode: Episode, values: PlanValues,
                      instruments: Iterable[Instrument]) -> MeasurementPlan:
    """This episode's own plan, overriding the clinic's default."""
    client = episode.client
    with transaction.atomic():
        plan, _ = MeasurementPlan.objects.get_or_create(clinic=client.clinic, episode=episode)
        changed = _save_plan(plan, values, instruments)
        record_event(actor=actor, event_type="outcomes.episode_plan_saved", target=episode,
                     client=client, clinic=client.clinic, changes={"changed_fields": changed})
    _replan_soon(episode)
    return plan


def use_clinic_plan(*, actor: User, episode: Episode) -> None:
    """Drop the episode's own plan; the clinic's default applies again."""
    client = episode.client
    with transaction.atomic():
        deleted, _ = MeasurementPlan.objects.filter(episode=episode).delete()
        if deleted:
            record_event(actor=actor, event_type="outcomes.episode_plan_removed",
                         target=episode, client=client, clinic=client.clinic)
    _replan_soon(episode)


def set_questionnaire_email(*, actor: User, client: Client, email: str) -> QuestionnaireContact:
    with transaction.atomic():
        contact, _ = QuestionnaireContact.objects.select_for_update().get_or_create(
            client=client)
        if contact.email != email:
            contact.email = email
            contact.save(update_fields=["email", "updated_at"])
            # The address itself identifies the client: the audit row names the field only.
            record_event(actor=actor, event_type="outcomes.contact_changed", target=client,
                         client=client, clinic=client.clinic,
                         changes={"changed_fields": ["email"]})
    return contact


def opt_out(*, client: Client, actor: User | None, via: str,
            now: dt.datetime | None = None) -> int:
    """The client asks for no more questionnaires: stop reminders, close what is due.

    `actor` is None when the client used an emailed link (no sign-in). Returns how many open
    questionnaires were closed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        contact, _ = QuestionnaireContact.objects.select_for_update().get_or_create(
            client=client)
        if contact.opted_out_at is None:
            contact.opted_out_at = now
            contact.save(update_fields=["opted_out_at", "updated_at"])
        closed = Due.objects.filter(episode__client=client, state=DueState.DUE).update(
            state=DueState.OPTED_OUT)
        record_event(actor=actor, event_type="questionnaire.opted_out", target=client,
                     client=client, clinic=client.clinic,
                     changes={"via": via, "open_questionnaires_closed": closed},
                     actor_role="client")
    return closed


def opt_in(*, client: Client, actor: User) -> None:
    """The client (or their therapist, at the client's request) starts questionnaires again."""
    with transaction.atomic():
        updated = QuestionnaireContact.objects.filter(
            client=client, opted_out_at__isnull=False).update(opted_out_at=None)
        if updated:
            record_event(actor=actor, event_type="questionnaire.opted_in", target=client,
                         client=client, clinic=client.clinic)
    for episode_id in client.episodes.values_list("pk", flat=True):
        _replan_soon_id(episode_id)


def _replan_soon(episode: Episode | None = None) -> None:
    """Plan dues after commit: one episode, or (clinic plan changed) on the next periodic run."""
    if episode is not None:
        _replan_soon_id(episode.pk)


def _replan_soon_id(episode_id: int) -> None:
    from relisten.core.jobs import enqueue_on_commit
    from relisten.outcomes.tasks import plan_episode_dues

    enqueue_on_commit(plan_episode_dues, episode_id)

# ---- end SCHEDULE ----


# ---- ANSWER (submit answers, drafts, alert acknowledgement) ----

def save_draft(*, due: Due, answers: Mapping[str, Any], actor: User | None) -> Due:
    """Keep the answers given so far, so a client who closes the page finds them again.
    Unknown items and values are dropped; the audit row says only how many are answered."""
    form = questionnaire_of(due.instrument)
    kept = clean_answers(form, answers)
    with transaction.atomic():
        locked = Due.objects.select_for_update().get(pk=due.pk)
        if locked.state != DueState.DUE:
            raise AlreadyAnswered
        locked.draft_answers = kept
        locked.save(update_fields=["draft_answers"])
        client = due.episode.client
        record_event(actor=actor, event_type="questionnaire.draft_saved", target=locked,
                     client=client, clinic=client.clinic,
                     changes={"items_answered": len(kept), "items": len(form.items)})
    due.draft_answers = kept
    return due


def submit_answers(
    *, due: Due, answers: Mapping[str, Any], source: Source, actor: User | None,
    token: str = "", alert_url: AlertUrl | None = None,
) -> Response:
    """Store a complete questionnaire: the response, one row per item, the due answered, the
    link used up (`token`, answers by link), and any alert raised. Missing items raise
    Incomplete with their numbers; a due answered meanwhile raises AlreadyAnswered, a link
    used or expired meanwhile LinkError."""
    form = questionnaire_of(due.instrument)
    scored = form.score(answers)  # raises Incomplete before anything is written
    now = timezone.now()
    with transaction.atomic():
        if token:
            consume(token, now)
        locked = Due.objects.select_for_update().select_related(
            "episode__client__clinic", "instrument").get(pk=due.pk)
        if locked.state != DueState.DUE:
            raise AlreadyAnswered
        response = Response.objects.create(
            episode=locked.episode, instrument=locked.instrument, due=locked,
            time_point=locked.time_point, session=locked.session, answered_at=now,
            source=source, total=scored.total, band=scored.band,
            entered_by=actor if source in (Source.STAFF, Source.IMPORT) else None,
        )
        ItemAnswer.objects.bulk_create([
            ItemAnswer(response=response, link_id=item.link_id, code=item.code,
                       answer_code=item.answer_code(scored.values[item.link_id]),
                       value=scored.values[item.link_id])
            for item in form.items
        ])
        locked.state = DueState.ANSWERED
        locked.draft_answers = {}
        locked.save(update_fields=["state", "draft_answers"])
        client = locked.episode.client
        record_event(actor=actor, event_type="questionnaire.answered", target=response,
                     client=client, clinic=client.clinic,
                     changes={"instrument": locked.instrument.code,
                              "time_point": locked.time_point, "source": str(source)})
        raise_alerts(response, scored.risk_items, alert_url=alert_url)
    return response


def acknowledge_alert(*, actor: User, alert: Alert) -> Alert:
    """The therapist has seen the alert and is acting on it: on record, once."""
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.acknowledged_at is None:
            locked.acknowledged_by = actor
            locked.acknowledged_at = timezone.now()
            locked.save(update_fields=["acknowledged_by", "acknowledged_at"])
            client = alert.episode.client
            record_event(actor=actor, event_type="outcome_alert.acknowledged", target=locked,
                         client=client, clinic=client.clinic, changes={"kind": locked.kind})
    return locked

# ---- end ANSWER ----


# ---- FHIRWEB (importing a FHIR QuestionnaireResponse) ----

class DuplicateImport(Exception):
    """The episode already holds this instrument's answers from that very moment."""


def import_response(
    *, actor: User, episode: Episode, instrument: Instrument, answers: Mapping[str, int],
    answered_at: dt.datetime, time_point: str, alert_url: AlertUrl | None = None,
) -> Response:
    """Store answers given elsewhere (a FHIR QuestionnaireResponse) as a response of this
    episode, answered when the other system says, with the same scoring and alerts as any
    answer. Missing items raise Incomplete before anything is written."""
    form = questionnaire_of(instrument)
    scored = form.score(answers)
    with transaction.atomic():
        if Response.objects.filter(episode=episode, instrument=instrument,
                                   answered_at=answered_at).exists():
            raise DuplicateImport
        response = Response.objects.create(
            episode=episode, instrument=instrument, due=None, time_point=time_point,
            answered_at=answered_at, source=Source.IMPORT, total=scored.total,
            band=scored.band, entered_by=actor,
        )
        ItemAnswer.objects.bulk_create([
            ItemAnswer(response=response, link_id=item.link_id, code=item.code,
                       answer_code=item.answer_code(scored.values[item.link_id]),
                       value=scored.values[item.link_id])
            for item in form.items
        ])
        client = episode.client
        record_event(actor=actor, event_type="questionnaire.imported", target=response,
                     client=client, clinic=client.clinic,
                     changes={"instrument": instrument.code, "time_point": time_point,
                              "source": str(Source.IMPORT)})
        raise_alerts(response, scored.risk_items, alert_url=alert_url)
    return response

# ---- end FHIRWEB ----


# ---- INSTRUMENTS (a clinic's own questionnaires, imported as FHIR) ----

class InstrumentRefused(ValueError):
    """A valid questionnaire that cannot be saved for this clinic; the message says why."""


@dataclass(frozen=True)
class InstrumentImport:
    instrument: Instrument
    created: bool  # False: the same document as the latest version, nothing saved
    plans_updated: int = 0  # schedules that asked for the previous version


def import_instrument(*, actor: User, clinic: Clinic, questionnaire: Mapping[str, Any],
                      scoring: Mapping[str, Any] | None) -> InstrumentImport:
    """Save a FHIR Questionnaire (and its scoring rules) as the clinic's own instrument.

    Validated with the one loader first (InstrumentError lists every problem; nothing is
    saved). A new code becomes version 1; the code of one of the clinic's instruments becomes
    its next version, which replaces the previous one in the clinic's schedules (earlier
    answers keep the version they were given); the same document again saves nothing.
    """
    from relisten.lib.outcomes.instruments import load_questionnaire

    defn = load_questionnaire(questionnaire, scoring)
    if Instrument.objects.filter(clinic=None, code=defn.code).exists():
        raise InstrumentRefused(
            f"“{defn.code}” is the code of a questionnaire built into Relisten. Give yours "
            f"another id in the document (or in the code box), for example “{defn.code}-own”.")
    stored_scoring = dict(scoring) if scoring is not None else {}
    with transaction.atomic():
        versions = list(Instrument.objects.select_for_update()
                        .filter(clinic=clinic, code=defn.code).order_by("-version"))
        latest = versions[0] if versions else None
        if (latest is not None and latest.questionnaire == questionnaire
                and latest.scoring == stored_scoring):
            return InstrumentImport(latest, created=False)
        instrument = Instrument.objects.create(
            clinic=clinic, code=defn.code, version=latest.version + 1 if latest else 1,
            name=defn.name[:200], loinc_panel=defn.loinc_panel[:20],
            loinc_total=defn.loinc_total[:20], questionnaire=dict(questionnaire),
            scoring=stored_scoring, copyright=defn.copyright, active=True)
        plans_updated = 0
        if versions:
            Instrument.objects.filter(pk__in=[v.pk for v in versions]).update(active=False)
            plans = MeasurementPlan.objects.filter(
                clinic=clinic, instruments__in=versions).distinct()
            for plan in plans:
                plan.instruments.remove(*versions)
                plan.instruments.add(instrument)
                plans_updated += 1
        record_event(actor=actor, event_type="instrument.imported", target=instrument,
                     clinic=clinic,
                     changes={"code": defn.code, "version": instrument.version,
                              "items": len(defn.items), "plans_updated": plans_updated})
    return InstrumentImport(instrument, created=True, plans_updated=plans_updated)

# ---- end INSTRUMENTS ----
