"""Questionnaire definitions: the list a clinic can use, one instrument's items and scoring
rules, and the import of a clinic's own (a FHIR R4 Questionnaire plus optional scoring rules).

A definition holds no clinical content, so nothing here is a record read. Every object comes
through relisten.access (a clinic's own instrument is 404 outside that clinic); the import goes
through relisten.outcomes.actions.import_instrument, which validates with the one loader and
writes the audit row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from relisten import access
from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event_now
from relisten.lib.outcomes.instruments import (
    CODE,
    InstrumentDef,
    InstrumentError,
    load_questionnaire,
)
from relisten.outcomes import actions
from relisten.outcomes.models import Instrument, MeasurementPlan
from relisten.web import signed_in_user as _user

MAX_UPLOAD_BYTES = 1_000_000



def _require_reader(user: User) -> None:
    if not access.instrument_clinics(user).exists():
        raise Http404("Not found")


def _import_clinic(user: User) -> Clinic | None:
    """The clinic an import goes to: the one whose schedule page this admin edits."""
    return access.instrument_import_clinics(user).order_by("name").first()


def definition_of(instrument: Instrument) -> InstrumentDef:
    return load_questionnaire(instrument.questionnaire, instrument.scoring or None)


# ---- list and detail -------------------------------------------------------------------------

@dataclass(frozen=True)
class InstrumentRow:
    instrument: Instrument
    item_count: int


@login_required
def instrument_list(request: HttpRequest) -> HttpResponse:
    """The latest version of each questionnaire the user's clinics can ask for."""
    user = _user(request)
    _require_reader(user)
    rows = [InstrumentRow(instrument, len(definition_of(instrument).items))
            for instrument in access.instruments_for_user(user).filter(active=True)
            .select_related("clinic").order_by("clinic__name", "name", "code", "-version")]
    return render(request, "outcomes/instruments.html", {
        "built_in": [row for row in rows if row.instrument.clinic_id is None],
        "own": [row for row in rows if row.instrument.clinic_id is not None],
        "can_import": _import_clinic(user) is not None,
    })


@login_required
def instrument_detail(request: HttpRequest, instrument_id: str) -> HttpResponse:
    user = _user(request)
    instrument = access.get_instrument_for_user(user, instrument_id)
    definition = definition_of(instrument)
    versions = list(access.instruments_for_user(user)
                    .filter(clinic=instrument.clinic_id, code=instrument.code)
                    .order_by("-version"))
    in_plans = MeasurementPlan.objects.filter(
        Q(clinic__in=access.instrument_clinics(user)), episode=None,
        instruments=instrument).exists()
    return render(request, "outcomes/instruments_detail.html", {
        "instrument": instrument, "d": definition, "rules": definition.scoring,
        "versions": versions, "in_clinic_plan": in_plans,
    })


# ---- import ----------------------------------------------------------------------------------

class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="Questionnaire file (FHIR R4 JSON)")
    text = forms.CharField(
        required=False, label="…or paste the Questionnaire JSON here",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}))
    scoring_file = forms.FileField(
        required=False, label="Scoring rules file (JSON, optional)",
        help_text="Bands, caseness, reliable change and risk items, in the same format as the "
                  "built-in PHQ-9 and GAD-7 rules. Without them the total is the sum of the "
                  "answers, with no bands or alerts.")
    scoring_text = forms.CharField(
        required=False, label="…or paste the scoring rules JSON here",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}))
    code = forms.CharField(
        required=False, max_length=40, label="Code (optional)",
        help_text="A short code such as “gad-7-clinic”: lower-case letters, digits, dots and "
                  "hyphens. Needed when the document has no id; it replaces the document's "
                  "id otherwise. Importing the same code again makes a new version.")

    def clean_code(self) -> str:
        code: str = (self.cleaned_data.get("code") or "").strip().lower()
        if code and not CODE.match(code):
            raise forms.ValidationError(
                "Use lower-case letters, digits, dots and hyphens only, starting with a letter "
                "or digit, at most 40 characters.")
        return code

    def documents(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The Questionnaire and the scoring rules (None if not given); ValueError in plain
        words if either cannot be read as a JSON object."""
        questionnaire = _json_object(
            "questionnaire", self.cleaned_data.get("file"), self.cleaned_data.get("text") or "")
        if questionnaire is None:
            raise ValueError("Choose a Questionnaire file or paste its JSON.")
        scoring = _json_object("scoring rules", self.cleaned_data.get("scoring_file"),
                               self.cleaned_data.get("scoring_text") or "")
        code = self.cleaned_data.get("code") or ""
        if code:
            questionnaire["id"] = code
        return questionnaire, scoring


def _json_object(what: str, upload: UploadedFile[bytes] | None,
                 pasted: str) -> dict[str, Any] | None:
    text = pasted
    if upload is not None:
        if (upload.size or 0) > MAX_UPLOAD_BYTES:
            raise ValueError(f"The {what} file is larger than 1 MB; a questionnaire is much "
                             "smaller. Is it the right file?")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError(f"The {what} file is not UTF-8 text. Save it as UTF-8 and try "
                             "again.") from None
    if not text.strip():
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        verb = "are" if what.endswith("rules") else "is"
        raise ValueError(f"The {what} {verb} not valid JSON: line {error.lineno}, column "
                         f"{error.colno}: {error.msg}.") from None
    if not isinstance(document, dict):
        raise ValueError(f"The {what} must be one JSON object ({{ … }}), not a list or a "
                         "single value.")
    return document


def _imported_message(result: actions.InstrumentImport) -> str:
    instrument = result.instrument
    if not result.created:
        return (f"This document is the same as version {instrument.version} of "
                f"“{instrument.name}”, so nothing new was saved.")
    if instrument.version == 1:
        return (f"“{instrument.name}” was imported as version 1. Add it to the clinic's "
                "questionnaire schedule to start asking for it.")
    plans = (f" The {result.plans_updated} questionnaire schedule"
             f"{'s' if result.plans_updated != 1 else ''} that asked for the previous version "
             "now ask for this one." if result.plans_updated else "")
    return (f"“{instrument.name}” was saved as version {instrument.version}; answers given to "
            f"earlier versions keep theirs.{plans}")


@login_required
@require_http_methods(["GET", "POST"])
def instrument_import(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    _require_reader(user)
    clinic = _import_clinic(user)
    if clinic is None:
        record_event_now(actor=user, event_type="authz.forbidden",
                         changes={"object_type": "instrument_import", "object_id": "-"})
        raise PermissionDenied("Only the clinic's admins can import questionnaires.")
    form = ImportForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            questionnaire, scoring = form.documents()
            result = actions.import_instrument(actor=user, clinic=clinic,
                                               questionnaire=questionnaire, scoring=scoring)
        except InstrumentError as invalid:
            problems = list(invalid.problems)
        except ValueError as refused:  # unreadable JSON, InstrumentRefused
            error = str(refused)
        else:
            messages.success(request, _imported_message(result))
            return redirect("outcomes:instrument", instrument_id=result.instrument.public_id)
    status = 400 if problems or error or form.errors else 200
    return render(request, "outcomes/instruments_import.html", {
        "form": form, "problems": problems, "error": error, "clinic": clinic,
    }, status=status)
