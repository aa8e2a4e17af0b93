"""The scale library: list, detail, import, export, builder, retire.

Scales hold no clinical content, so nothing here is a record read. Every object comes through
relisten.access (a clinic's own scale is 404 outside that clinic); every change goes through
relisten.fidelity.actions, which validates with the one loader and writes the audit row.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from relisten import access
from relisten.accounts.models import Clinic, User
from relisten.audit.log import record_event_now
from relisten.fidelity import actions
from relisten.fidelity.builder import (
    CHOICES,
    ROW_FIELDS,
    BuilderState,
    document_from_state,
    state_from_post,
    state_from_scale,
)
from relisten.fidelity.models import Scale
from relisten.lib.fidelity.scale import (
    Format,
    Problem,
    ScaleDef,
    ScaleError,
    dump_scale,
    scale_from_definition,
)
from relisten.web import signed_in_user as _user

MAX_UPLOAD_BYTES = 1_000_000
CONTENT_TYPES = {"yaml": "application/yaml; charset=utf-8",
                 "json": "application/json; charset=utf-8"}



def _require_scale_reader(user: User) -> None:
    if not access.scale_clinics(user).exists():
        raise Http404("Not found")


def _clinic_choices(user: User) -> list[Clinic]:
    return list(access.scale_manage_clinics(user).order_by("name"))


def _chosen_clinic(user: User, raw: str | None) -> Clinic:
    """The clinic a new scale goes to: the only one the user manages, or the one chosen."""
    clinics = _clinic_choices(user)
    if not clinics:
        raise PermissionDenied(
            "Only clinic admins and supervisors can add rating scales to a clinic.")
    if len(clinics) == 1:
        return clinics[0]
    chosen = next((c for c in clinics if str(c.public_id) == (raw or "")), None)
    if chosen is None:
        raise ValueError("Choose the clinic the scale is for.")
    return chosen


# ---- list and detail -------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaleRow:
    scale: Scale
    item_count: int
    latest: bool


@login_required
def scale_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    _require_scale_reader(user)
    scales = list(access.scales_for_user(user).select_related("clinic")
                  .order_by("clinic__name", "name", "slug", "-version"))
    rows, seen = [], set()
    for scale in scales:
        key = (scale.clinic_id, scale.slug)
        rows.append(ScaleRow(scale, len(scale.definition.get("items", [])), key not in seen))
        seen.add(key)
    return render(request, "fidelity/scales/list.html", {
        "rows": rows, "can_manage": bool(_clinic_choices(user)),
    })


def _versions(scale: Scale, user: User) -> list[Scale]:
    return list(access.scales_for_user(user).filter(clinic=scale.clinic_id, slug=scale.slug)
                .order_by("-version"))


@login_required
def scale_detail(request: HttpRequest, scale_id: str) -> HttpResponse:
    user = _user(request)
    scale = access.get_scale_for_user(user, scale_id)
    definition = scale_from_definition(scale.definition)
    can_manage = scale.clinic_id is not None and access.scale_manage_clinics(user).filter(
        pk=scale.clinic_id).exists()
    return render(request, "fidelity/scales/detail.html", {
        "scale": scale, "d": definition, "versions": _versions(scale, user),
        "can_manage": can_manage, "can_copy": bool(_clinic_choices(user)),
        "thresholds": [(t, t.describe(definition.score_name(t.score)))
                       for t in definition.thresholds],
        "main_score_name": definition.score_name(definition.main_score),
    })


# ---- import and export -----------------------------------------------------------------------

class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="Scale file (.yaml, .yml or .json)")
    text = forms.CharField(required=False, label="…or paste the document here",
                           widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false",
                                                        "class": "code"}))
    format = forms.ChoiceField(choices=[("auto", "Work it out from the file name or text"),
                                        ("yaml", "YAML"), ("json", "JSON")], initial="auto")

    def document(self) -> tuple[str, Format]:
        upload = self.cleaned_data.get("file")
        text: str = self.cleaned_data.get("text") or ""
        name = ""
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise ValueError("The file is larger than 1 MB; a scale document is much "
                                 "smaller. Is it the right file?")
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValueError("The file is not UTF-8 text. Save it as UTF-8 and try "
                                 "again.") from None
            name = upload.name or ""
        if not text.strip():
            raise ValueError("Choose a file or paste the scale document.")
        chosen = self.cleaned_data.get("format") or "auto"
        if chosen == "yaml":
            return text, "yaml"
        if chosen == "json":
            return text, "json"
        if name.lower().endswith(".json") or (not name and text.lstrip().startswith("{")):
            return text, "json"
        return text, "yaml"


def _imported_message(scale: Scale, created: bool) -> str:
    if not created:
        return (f"This document is the same as version {scale.version} of “{scale.name}”, so "
                "nothing new was saved.")
    if scale.version == 1:
        return f"“{scale.name}” was imported as version 1."
    return (f"“{scale.name}” was saved as version {scale.version}; ratings made with earlier "
            "versions keep theirs.")


@login_required
@require_http_methods(["GET", "POST"])
def scale_import(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    _require_scale_reader(user)
    clinics = _clinic_choices(user)
    if not clinics:
        record_event_now(actor=user, event_type="authz.forbidden",
                                changes={"object_type": "scale_import", "object_id": "-"})
        raise PermissionDenied(
            "Only clinic admins and supervisors can import rating scales.")
    form = ImportForm(request.POST or None, request.FILES or None)
    problems: list[Problem] = []
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            clinic = _chosen_clinic(user, request.POST.get("clinic"))
            text, fmt = form.document()
            scale, created = actions.save_scale_document(actor=user, clinic=clinic, text=text,
                                                         fmt=fmt, origin="import")
        except ScaleError as invalid:
            problems = list(invalid.problems)
        except ValueError as refused:  # ScaleSaveRefused and the form's own checks
            error = str(refused)
        else:
            messages.success(request, _imported_message(scale, created))
            return redirect("fidelity:scale", scale_id=scale.public_id)
    status = 400 if problems or error else 200
    return render(request, "fidelity/scales/import.html", {
        "form": form, "problems": problems, "error": error, "clinics": clinics,
        "chosen_clinic": request.POST.get("clinic", ""),
    }, status=status)


@login_required
def scale_export(request: HttpRequest, scale_id: str, fmt: str) -> HttpResponse:
    user = _user(request)
    scale = access.get_scale_for_user(user, scale_id)
    if fmt not in ("yaml", "json"):
        raise Http404("Not found")
    text = dump_scale(scale_from_definition(scale.definition), "json" if fmt == "json" else "yaml")
    response = HttpResponse(text, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = (
        f'attachment; filename="{scale.slug}-v{scale.version}.{fmt}"')
    return response


# ---- builder ---------------------------------------------------------------------------------

def _builder_page(request: HttpRequest, *, state: BuilderState, scale: Scale | None,
                  clinics: list[Clinic], problems: list[Problem] | None = None,
                  builder_problems: list[str] | None = None, generated: str = "",
                  status: int = 200) -> HttpResponse:
    rows = {part: [{**row, "prefix": f"{part}-{index}-"} for index, row in enumerate(entries)]
            for part, entries in state.rows.items()}
    return render(request, "fidelity/scales/builder.html", {
        "state": state, "rows": rows, "scale": scale, "clinics": clinics,
        "problems": problems or [],
        "builder_problems": builder_problems or [], "generated": generated,
        "generated_lines": generated.splitlines(), "choices": CHOICES,
        "counts": {part: len(state.rows.get(part, [])) for part in ROW_FIELDS},
        "chosen_clinic": request.POST.get("clinic", ""),
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def scale_builder(request: HttpRequest, scale_id: str | None = None) -> HttpResponse:
    """New clinic scale (no id; `?from=<id>` starts from a copy) or a new version of one."""
    user = _user(request)
    scale: Scale | None = None
    if scale_id is not None:
        scale = access.get_scale_for_user(user, scale_id, manage=True)
        clinics = [scale.clinic] if scale is not None and scale.clinic else []
    else:
        _require_scale_reader(user)
        clinics = _clinic_choices(user)
        if not clinics:
            record_event_now(actor=user, event_type="authz.forbidden",
                                    changes={"object_type": "scale_builder", "object_id": "-"})
            raise PermissionDenied(
                "Only clinic admins and supervisors can build rating scales.")
    if request.method == "GET":
        start: ScaleDef | None = None
        if scale is not None:
            start = scale_from_definition(scale.definition)
        elif request.GET.get("from"):
            source = access.get_scale_for_user(user, request.GET["from"])
            start = scale_from_definition(source.definition)
        state = state_from_scale(start)
        if scale is None and start is not None:
            state.top["slug"] = ""  # a copy needs its own slug
            state.top["name"] = f"{start.name} (our version)"
        return _builder_page(request, state=state, scale=scale, clinics=clinics)
    state = state_from_post(request.POST)
    if scale is not None:
        state.top["slug"] = scale.slug  # versions of one scale share its slug
    if request.POST.get("action") == "more":
        return _builder_page(request, state=state.pad(), scale=scale, clinics=clinics)
    return _save_built(request, user, state, scale, clinics)


def _save_built(request: HttpRequest, user: User, state: BuilderState, scale: Scale | None,
                clinics: list[Clinic]) -> HttpResponse:
    document, builder_problems = document_from_state(state)
    generated = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=96)
    if builder_problems:
        return _builder_page(request, state=state.pad({}), scale=scale, clinics=clinics,
                             builder_problems=builder_problems, generated=generated, status=400)
    try:
        clinic = scale.clinic if scale is not None and scale.clinic else _chosen_clinic(
            user, request.POST.get("clinic"))
        saved, created = actions.save_scale_document(actor=user, clinic=clinic, text=generated,
                                                     fmt="yaml", origin="builder")
    except ScaleError as invalid:
        return _builder_page(request, state=state, scale=scale, clinics=clinics,
                             problems=list(invalid.problems), generated=generated, status=400)
    except ValueError as refused:
        return _builder_page(request, state=state, scale=scale, clinics=clinics,
                             builder_problems=[str(refused)], generated=generated, status=400)
    messages.success(request, _imported_message(saved, created))
    return redirect("fidelity:scale", scale_id=saved.public_id)


# ---- retire ----------------------------------------------------------------------------------

@login_required
@require_POST
def scale_retire(request: HttpRequest, scale_id: str) -> HttpResponse:
    user = _user(request)
    scale = access.get_scale_for_user(user, scale_id, manage=True)
    retired = request.POST.get("retired", "1") != "0"
    actions.set_scale_retired(actor=user, scale=scale, retired=retired)
    messages.success(request, (
        f"Version {scale.version} is retired: it is no longer offered for new ratings, and "
        "ratings already made with it keep it." if retired else
        f"Version {scale.version} is offered for new ratings again."))
    return redirect("fidelity:scale", scale_id=scale.public_id)


