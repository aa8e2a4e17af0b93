"""FHIR interop for questionnaire answers: download a response or an episode's history as a FHIR
R4 Bundle, and import a QuestionnaireResponse made elsewhere into an episode.

The mapping itself is framework-free (relisten/lib/outcomes/fhir.py). Files carry no names: the
client is `Patient/<public id>` and the file name holds only short ids and the date, because
downloads travel further than the record. Every download is audited (how many responses,
never the answers).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from relisten import access
from relisten.access import Act
from relisten.audit.log import record_event_now
from relisten.clients.models import Client, Episode
from relisten.lib.outcomes.fhir import (
    FhirError,
    ResponseRecord,
    history_bundle,
    import_questionnaire_response,
)
from relisten.lib.outcomes.instruments import InstrumentDef
from relisten.outcomes import actions
from relisten.outcomes.builtin import definition_of
from relisten.outcomes.models import Instrument, Response, TimePoint
from relisten.outcomes.questionnaire import Incomplete
from relisten.web import signed_in_user as _user

FHIR_JSON = "application/fhir+json"
MAX_IMPORT_BYTES = 1_000_000  # a QuestionnaireResponse is a few kilobytes
HISTORY_LIMIT = 2000  # responses per download: years of weekly measures, still one request



# ---- export ----------------------------------------------------------------------------------

def _record(response: Response, client: Client) -> ResponseRecord:
    return ResponseRecord(
        response_id=str(response.public_id), patient_id=str(client.public_id),
        authored=response.answered_at,
        answers={item.link_id: item.value for item in response.items.all()},
        total=response.total, band=response.band,
    )


def _entries(responses: Iterable[Response],
             client: Client) -> list[tuple[InstrumentDef, ResponseRecord]]:
    definitions: dict[int, InstrumentDef] = {}
    entries = []
    for response in responses:
        if response.instrument_id not in definitions:
            definitions[response.instrument_id] = definition_of(response.instrument)
        entries.append((definitions[response.instrument_id], _record(response, client)))
    return entries


def _download(request: HttpRequest, *, client: Client, target: Any, scope: str,
              responses: QuerySet[Response], filename: str) -> HttpResponse:
    user = _user(request)
    rows = list(responses.select_related("instrument").prefetch_related("items")
                .order_by("answered_at")[:HISTORY_LIMIT])
    now = timezone.now()
    bundle = history_bundle(str(client.public_id), _entries(rows, client),
                            bundle_id=f"{scope}-{target.public_id}",
                            timestamp=now, base_url=request.build_absolute_uri("/fhir/"))
    record_event_now(
        actor=user, event_type="outcomes.exported", target=target, client=client,
        clinic=client.clinic, actor_role=access.relationship_to(user, client),
        changes={"format": "fhir+json", "scope": scope, "responses": len(rows)},
    )
    return HttpResponse(json.dumps(bundle, indent=2), content_type=FHIR_JSON, headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
    })


def _short(public_id: object) -> str:
    return str(public_id)[:8]


@login_required
@require_GET
def response_fhir(request: HttpRequest, response_id: str) -> HttpResponse:
    """One response: its QuestionnaireResponse and the total-score Observation."""
    response: Response = access.get_outcome_response_for_user(_user(request), response_id)
    client = response.episode.client
    day = timezone.localtime(response.answered_at).date().isoformat()
    name = f"{response.instrument.code}-{day}-{_short(response.public_id)}.fhir.json"
    return _download(request, client=client, target=response, scope="response",
                     responses=Response.objects.filter(pk=response.pk), filename=name)


@login_required
@require_GET
def episode_fhir(request: HttpRequest, episode_id: str) -> HttpResponse:
    """Every response of the episode, oldest first, each with its total."""
    episode = access.get_episode_for_user(_user(request), episode_id)
    name = (f"questionnaires-episode-{_short(episode.public_id)}-"
            f"{timezone.localdate().isoformat()}.fhir.json")
    return _download(request, client=episode.client, target=episode, scope="episode",
                     responses=Response.objects.filter(episode=episode), filename=name)


# ---- import ----------------------------------------------------------------------------------

class ImportProblem(Exception):
    """A plain-words reason the file cannot be imported; nothing has been saved."""

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        # Shown as a list under the message, unless the message already says them all.
        self.details = tuple(d for d in details if d not in message)[:10]


class FhirImportForm(forms.Form):
    file = forms.FileField(required=False, label="FHIR file",
                           help_text="A QuestionnaireResponse as JSON (.json), at most 1 MB.")
    text = forms.CharField(required=False, label="Or paste the JSON here",
                           widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}))
    time_point = forms.ChoiceField(
        choices=TimePoint.choices, initial=TimePoint.SESSION,
        label="When in the episode was it answered?",
        help_text="Used for the charts and the end-of-treatment and follow-up measures.")

    def raw_json(self) -> str:
        upload = self.cleaned_data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise ImportProblem("The file is larger than 1 MB, which is far more than one "
                                    "questionnaire response needs. Please check it is the "
                                    "right file.")
            try:
                return str(upload.read().decode("utf-8"))
            except UnicodeDecodeError as error:
                raise ImportProblem("The file is not text (UTF-8 JSON). Please choose the "
                                    ".json file the other system exported.") from error
        text = str(self.cleaned_data.get("text") or "").strip()
        if not text:
            raise ImportProblem("Please choose a file or paste the JSON of a "
                                "QuestionnaireResponse.")
        if len(text.encode("utf-8")) > MAX_IMPORT_BYTES:
            raise ImportProblem("The pasted text is larger than 1 MB, which is far more than "
                                "one questionnaire response needs.")
        return text


def _parse(raw: str) -> Mapping[str, Any]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ImportProblem(f"This is not valid JSON (line {error.lineno}, column "
                            f"{error.colno}: {error.msg}).") from error
    if not isinstance(parsed, dict):
        raise ImportProblem("This JSON is not a FHIR resource (it should start with {).")
    if parsed.get("resourceType") == "Bundle":
        return _only_response_in(parsed)
    if parsed.get("resourceType") != "QuestionnaireResponse":
        kind = parsed.get("resourceType") or "no resourceType"
        raise ImportProblem(f"This is a FHIR {kind}, not a QuestionnaireResponse.")
    return parsed


def _only_response_in(bundle: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Bundle (e.g. Relisten's own download) is accepted when it holds exactly one."""
    found = [entry["resource"] for entry in bundle.get("entry") or []
             if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping)
             and entry["resource"].get("resourceType") == "QuestionnaireResponse"]
    if len(found) != 1:
        raise ImportProblem(f"This Bundle holds {len(found)} questionnaire responses; please "
                            "import a file with exactly one.")
    resource: Mapping[str, Any] = found[0]
    return resource


def _candidates(client: Client) -> list[Instrument]:
    """Instruments this clinic may use: built in and its own, newest version first."""
    own_or_builtin = Q(clinic=client.clinic_id) | Q(clinic=None)
    return list(Instrument.objects.filter(own_or_builtin).order_by("code", "-version"))


def _instrument_for(qr: Mapping[str, Any], client: Client) -> Instrument:
    """By the `questionnaire` canonical: our own URL (with `|version`), else a LOINC panel
    code at its end (e.g. http://loinc.org/q/69737-5 or Questionnaire/69737-5)."""
    canonical = str(qr.get("questionnaire") or "").strip()
    if not canonical:
        raise ImportProblem("The response does not say which questionnaire it answers (its "
                            "'questionnaire' is empty), so it cannot be matched to PHQ-9, "
                            "GAD-7 or the clinic's own questionnaires.")
    url, _, version = canonical.partition("|")
    instruments = _candidates(client)
    same_url = [i for i in instruments if str(i.questionnaire.get("url") or "") == url]
    for instrument in same_url:
        if str(instrument.questionnaire.get("version") or "") == version:
            return instrument
    # Another version of the same questionnaire: its items are checked one by one on import.
    if same_url:
        return min(same_url, key=lambda i: not i.active)  # the newest offered one, if any
    panel = url.rstrip("/").rsplit("/", 1)[-1]
    for instrument in instruments:
        if instrument.loinc_panel and instrument.loinc_panel == panel and instrument.active:
            return instrument
    raise ImportProblem("Relisten does not know the questionnaire this response answers "
                        f"({canonical[:120]}). Known here: "
                        + ", ".join(sorted({i.name for i in instruments if i.active})) + ".")


def _authored(qr: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    raw = str(qr.get("authored") or "")
    if not raw:
        raise ImportProblem("The response has no 'authored' date, so Relisten cannot tell "
                            "when it was answered.")
    try:
        moment = (dt.datetime.fromisoformat(raw) if "T" in raw
                  else dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(12)))
    except ValueError as error:
        raise ImportProblem(f"The 'authored' date ({raw[:40]}) is not a full date.") from error
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    if moment > now + dt.timedelta(minutes=5):
        raise ImportProblem("The 'authored' date is in the future; please check the file.")
    return moment


def _missing(error: Incomplete) -> str:
    numbers = [str(n) for n in error.missing]
    listed = numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return (f"The response has no answer to question{'s' if len(numbers) > 1 else ''} "
            f"{listed}. Relisten imports only complete questionnaires, so the total is right.")


def _import(request: HttpRequest, episode: Episode, form: FhirImportForm) -> Response:
    qr = _parse(form.raw_json())
    client = episode.client
    instrument = _instrument_for(qr, client)
    try:
        values = import_questionnaire_response(definition_of(instrument), qr)
    except FhirError as error:
        raise ImportProblem(error.message, error.problems) from error
    try:
        return actions.import_response(
            actor=_user(request), episode=episode, instrument=instrument, answers=values,
            answered_at=_authored(qr, timezone.now()),
            time_point=str(form.cleaned_data["time_point"]),
            alert_url=lambda alert: request.build_absolute_uri(
                reverse("outcomes:alert", kwargs={"alert_id": alert.public_id})),
        )
    except Incomplete as error:
        raise ImportProblem(_missing(error)) from error
    except actions.DuplicateImport as error:
        raise ImportProblem(f"This episode already has a {instrument.name} answered at that "
                            "moment; it looks imported already, so nothing was added.") from error


@login_required
@require_http_methods(["GET", "POST"])
def fhir_import(request: HttpRequest, episode_id: str) -> HttpResponse:
    """The treating therapist adds answers given in another system (supervisor: 403)."""
    episode = access.get_episode_for_user(_user(request), episode_id, Act.TREAT)
    form = FhirImportForm(request.POST or None, request.FILES or None)
    problem: ImportProblem | None = None
    if request.method == "POST" and form.is_valid():
        try:
            response = _import(request, episode, form)
        except ImportProblem as error:
            problem = error
        else:
            messages.success(request, f"Imported the {response.instrument.name} answered on "
                             f"{timezone.localtime(response.answered_at):%d %B %Y}: total "
                             f"{response.total} ({response.band or 'no band'}).")
            return redirect("clients:episode", episode_id=episode.public_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "outcomes/fhir_import.html",
                  {"episode": episode, "form": form, "problem": problem}, status=status)
