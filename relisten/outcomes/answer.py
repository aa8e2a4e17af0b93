"""The client's questionnaire form (by emailed link or in the portal) and the alert page.

The form is one page with every question, which works without JavaScript; with
questionnaire.js each answer is saved as it is chosen (Due.draft_answers), so a client who
closes the page finds their answers again, and the progress line counts what is answered.
Answering by link needs no account: the token (answer-link rules in links.py) is the
credential, checked on every request and used up only when the answers are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_read
from relisten.clients.models import Episode
from relisten.lib.outcomes.change import classify
from relisten.lib.outcomes.instruments import ScoringRules
from relisten.outcomes import actions
from relisten.outcomes.chart import TrajectoryChart, trajectory_for_episode
from relisten.outcomes.links import LinkError, plan_for_episode, redeem
from relisten.outcomes.models import Alert, Due, Instrument, Response, Source
from relisten.outcomes.questionnaire import (
    AlreadyAnswered,
    Incomplete,
    Questionnaire,
    questionnaire_of,
)

ANSWERED_KEY = "outcomes_answered"  # the response just stored, for the thank-you page
ALREADY_ANSWERED = ("This questionnaire has already been answered, or is no longer needed. "
                    "Thank you. There is nothing more to do here.")
DRAFT_FAILED = "Your answers could not be saved. Please try again."


def _posted_answers(request: HttpRequest, form: Questionnaire) -> dict[str, str]:
    return {item.link_id: request.POST.get(item.link_id, "") for item in form.items}


def _render_form(
    request: HttpRequest, due: Due, form: Questionnaire, answers: Mapping[str, Any],
    *, draft_url: str, error: Incomplete | None = None, status: int = 200,
) -> HttpResponse:
    # Every questionnaire page says how to stop being asked (the client's choice, any time).
    if due.links.exists() and not request.user.is_authenticated:
        stop_url = request.path.rstrip("/") + "/stop/"  # /q/<token>/ → /q/<token>/stop/
    else:
        stop_url = reverse("outcomes:opt_out_portal",
                           kwargs={"record_id": due.episode.client.public_id})
    chosen = {key: str(value) for key, value in answers.items() if value not in (None, "")}
    return render(request, "outcomes/answer.html", {
        "due": due, "form": form, "draft_url": draft_url, "error": error,
        "rows": [{"item": item, "chosen": chosen.get(item.link_id, "")} for item in form.items],
        "answered": sum(1 for item in form.items if item.link_id in chosen),
        "clinic": due.episode.client.clinic, "stop_url": stop_url,
    }, status=status)


def _submit(
    request: HttpRequest, due: Due, form: Questionnaire, *, source: Source, token: str = "",
    draft_url: str,
) -> HttpResponse:
    answers = _posted_answers(request, form)
    user = request.user if isinstance(request.user, User) else None
    try:
        response = actions.submit_answers(
            due=due, answers=answers, source=source, actor=user, token=token,
            alert_url=lambda alert: request.build_absolute_uri(
                reverse("outcomes:alert", kwargs={"alert_id": alert.public_id})),
        )
    except Incomplete as error:
        # Keep what was chosen, so the client only adds what is missing.
        actions.save_draft(due=due, answers=answers, actor=user)
        return _render_form(request, due, form, answers, draft_url=draft_url, error=error,
                            status=400)
    except (AlreadyAnswered, LinkError):
        return render(request, "outcomes/link_problem.html", {"message": ALREADY_ANSWERED},
                      status=410)
    request.session[ANSWERED_KEY] = str(response.public_id)
    return redirect("outcomes:thanks")


def _draft(request: HttpRequest, due: Due) -> JsonResponse:
    form = questionnaire_of(due.instrument)
    user = request.user if isinstance(request.user, User) else None
    try:
        saved = actions.save_draft(due=due, answers=_posted_answers(request, form), actor=user)
    except AlreadyAnswered:
        return JsonResponse({"saved": False, "message": ALREADY_ANSWERED}, status=410)
    return JsonResponse({"saved": True, "answered": len(saved.draft_answers),
                         "items": len(form.items)})


# ---- by emailed link (no account) ------------------------------------------------------------

def _due_for_token(token: str) -> Due:
    return redeem(token)


@never_cache
@require_http_methods(["GET", "POST"])
def link_answer(request: HttpRequest, token: str) -> HttpResponse:
    try:
        due = _due_for_token(token)
    except LinkError as error:
        return render(request, "outcomes/link_problem.html", {"message": error.message},
                      status=410)
    form = questionnaire_of(due.instrument)
    draft_url = reverse("outcomes:link_draft", kwargs={"token": token})
    if request.method == "POST":
        return _submit(request, due, form, source=Source.LINK, token=token, draft_url=draft_url)
    return _render_form(request, due, form, due.draft_answers, draft_url=draft_url)


@never_cache
@require_POST
def link_draft(request: HttpRequest, token: str) -> JsonResponse:
    try:
        due = _due_for_token(token)
    except LinkError as error:
        return JsonResponse({"saved": False, "message": error.message}, status=410)
    return _draft(request, due)


@never_cache
def thanks(request: HttpRequest) -> HttpResponse:
    """After answering: thanks, and the client's own chart where their clinic shows it.
    Only the browser that answered sees it (the response id is in its session)."""
    raw = request.session.get(ANSWERED_KEY)
    response = Response.objects.filter(public_id=raw).select_related(
        "episode__client__clinic", "instrument").first() if raw else None
    chart: TrajectoryChart | None = None
    if response is not None:
        plan = plan_for_episode(response.due) if response.due else None
        if plan is not None and plan.show_client_chart:
            chart = trajectory_for_episode(response.episode, response.instrument,
                                           for_client=True)
    return render(request, "outcomes/thanks.html", {"response": response, "chart": chart})


# ---- in the client's portal ------------------------------------------------------------------

def _own_due(request: HttpRequest, record_id: str, due_id: str) -> Due:
    user = request.user
    assert isinstance(user, User)
    client = access.get_own_client_record(user, record_id)
    due: Due = access.get_own_due(user, client, due_id)
    return due


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def portal_answer(request: HttpRequest, record_id: str, due_id: str) -> HttpResponse:
    due = _own_due(request, record_id, due_id)
    form = questionnaire_of(due.instrument)
    draft_url = reverse("outcomes:portal_draft",
                        kwargs={"record_id": record_id, "due_id": due.public_id})
    if request.method == "POST":
        return _submit(request, due, form, source=Source.PORTAL, draft_url=draft_url)
    return _render_form(request, due, form, due.draft_answers, draft_url=draft_url)


@never_cache
@login_required
@require_POST
def portal_draft(request: HttpRequest, record_id: str, due_id: str) -> JsonResponse:
    return _draft(request, _own_due(request, record_id, due_id))


# ---- alerts (the treating therapist acknowledges; the supervisor sees) -----------------------

def _alert_items(alert: Alert) -> list[dict[str, Any]]:
    form = questionnaire_of(alert.response.instrument)
    given = {answer.link_id: answer.value for answer in alert.response.items.all()}
    rows = []
    for item in form.items:
        value = given.get(item.link_id)
        display = next((o.display for o in item.options if o.score == value), "")
        rows.append({"item": item, "value": value, "display": display,
                     "flagged": alert.kind == "risk_item" and item.link_id in
                     _risk_link_ids(form, given)})
    return rows


def _risk_link_ids(form: Questionnaire, given: dict[str, int]) -> set[str]:
    try:
        return set(form.score(given).risk_items)
    except (Incomplete, ValidationError, ValueError):
        return set()


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def alert_page(request: HttpRequest, alert_id: str) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    act = Act.TREAT if request.method == "POST" else Act.VIEW
    alert: Alert = access.get_outcome_alert_for_user(user, alert_id, act)
    client = alert.episode.client
    if request.method == "POST":
        actions.acknowledge_alert(actor=user, alert=alert)
        messages.success(request, "Alert acknowledged. It is on record that you have seen it.")
        return redirect("outcomes:alert", alert_id=alert.public_id)
    record_read(actor=user, client=client, target=alert.response,
                role=access.relationship_to(user, client))
    can_treat = access.outcome_alerts_for_user(user, Act.TREAT).filter(pk=alert.pk).exists()
    return render(request, "outcomes/alert.html", {
        "alert": alert, "client": client, "rows": _alert_items(alert), "can_treat": can_treat,
        "form_name": alert.response.instrument.name,
    })


# ---- the therapist's caseload summary --------------------------------------------------------

CASELOAD_LIMIT = 200


@dataclass(frozen=True)
class CaseloadRow:
    episode: Episode
    instrument: Instrument
    first: Response
    latest: Response
    count: int
    status: str  # NHS Talking Therapies status, first score against the latest


def caseload_rows(user: User) -> list[CaseloadRow]:
    """One row per episode the user treats and instrument answered in it: first and latest
    score and the change between them. Two queries, whatever the caseload."""
    episodes = (access.episodes_for_user(user, Act.TREAT).select_related("client")
                .order_by("client__family_name", "client__given_name")[:CASELOAD_LIMIT])
    by_id = {episode.pk: episode for episode in episodes}
    found = (Response.objects.filter(episode_id__in=list(by_id)).select_related("instrument")
             .order_by("answered_at"))
    grouped: dict[tuple[int, int], list[Response]] = {}
    for response in found:
        grouped.setdefault((response.episode_id, response.instrument_id), []).append(response)
    rules: dict[int, ScoringRules] = {}
    rows = []
    for (episode_id, instrument_id), responses in grouped.items():
        instrument = responses[0].instrument
        if instrument_id not in rules:
            rules[instrument_id] = questionnaire_of(instrument).definition.scoring
        first, latest = responses[0], responses[-1]
        try:
            status = (classify(rules[instrument_id], first.total, latest.total).status
                      if len(responses) > 1 else "One score so far")
        except ValueError:
            status = ""
        rows.append(CaseloadRow(by_id[episode_id], instrument, first, latest, len(responses),
                                status))
    order = {pk: index for index, pk in enumerate(by_id)}
    return sorted(rows, key=lambda row: (order[row.episode.pk], row.instrument.code))


@never_cache
@login_required
def caseload(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    rows = caseload_rows(user)
    # One look at many clients' scores: on record in each client's own access log.
    for client in {row.episode.client for row in rows}:
        record_read(actor=user, client=client, target=client, role="therapist")
    return render(request, "outcomes/caseload.html", {"rows": rows})
