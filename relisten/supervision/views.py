"""Supervision pages: the clinic admin's assignments page, and the supervisor's sign-off.

The sign-off panel on the session page is `supervision/_signoff.html`, filled by
signoff_context() (clients.views.session_detail adds it under the key `signoff`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from relisten import access
from relisten.accounts.models import TREATING_ROLES, Clinic, Role, User
from relisten.clients.forms import PublicIdChoiceField
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose
from relisten.supervision import actions
from relisten.supervision.models import SessionSignOff
from relisten.web import signed_in_user as _user

NOTE_MAX = 4000



def _people_with(clinic: Clinic, roles: Iterable[str]) -> Any:
    return User.objects.filter(
        memberships__clinic=clinic, memberships__role__in=roles, memberships__active=True
    ).distinct().order_by("display_name", "username")


class AssignmentForm(forms.Form):
    supervisor = PublicIdChoiceField(
        queryset=User.objects.none(), empty_label="Choose a supervisor",
        error_messages={"required": "Choose the supervisor.",
                        "invalid_choice": "That person is not a supervisor here. Reload the "
                                          "page and choose again."},
    )
    supervisee = PublicIdChoiceField(
        queryset=User.objects.none(), empty_label="Choose a therapist or trainee",
        label="Therapist or trainee",
        error_messages={"required": "Choose the therapist or trainee to supervise.",
                        "invalid_choice": "That person is not a therapist or trainee here. "
                                          "Reload the page and choose again."},
    )

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        for name, roles in (("supervisor", {Role.SUPERVISOR}), ("supervisee", TREATING_ROLES)):
            field = self.fields[name]
            field.queryset = _people_with(clinic, roles)  # type: ignore[attr-defined]
            field.label_from_instance = User.label  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        supervisor, supervisee = data.get("supervisor"), data.get("supervisee")
        if supervisor and supervisee:
            problem = actions.assignment_problem(self.clinic, supervisor, supervisee)
            if problem:
                raise forms.ValidationError(problem)
        return data


@login_required
@require_http_methods(["GET", "POST"])
def assignments(request: HttpRequest, clinic_id: str) -> HttpResponse:
    user = _user(request)
    clinic = access.get_clinic_for_admin(user, clinic_id)
    form = AssignmentForm(request.POST or None, clinic=clinic)
    if request.method == "POST" and form.is_valid():
        supervisor, supervisee = form.cleaned_data["supervisor"], form.cleaned_data["supervisee"]
        actions.assign_supervisor(actor=user, clinic=clinic, supervisor=supervisor,
                                  supervisee=supervisee)
        messages.success(request, f"{supervisor.label()} now supervises {supervisee.label()}. "
                                  "They can see the episodes that name them as supervisor.")
        return redirect("supervision:assignments", clinic_id=clinic.public_id)
    active = access.active_assignments(clinic).select_related("supervisor", "supervisee")
    ended = (
        clinic.supervision_assignments.filter(ended_at__isnull=False)
        .select_related("supervisor", "supervisee").order_by("-ended_at")[:20]
    )
    return render(request, "supervision/assignments.html", {
        "clinic": clinic, "form": form,
        "active": active.order_by("supervisor__display_name", "supervisee__display_name"),
        "ended": ended,
    })


@login_required
@require_POST
def assignment_end(request: HttpRequest, assignment_id: str) -> HttpResponse:
    user = _user(request)
    assignment = access.get_assignment_for_admin(user, assignment_id)
    if assignment.ended_at is None:
        actions.end_assignment(actor=user, assignment=assignment)
        messages.success(
            request, f"{assignment.supervisor.label()} no longer supervises "
                     f"{assignment.supervisee.label()}. They cannot open those episodes any more.")
    else:
        messages.info(request, "This supervision had already ended.")
    return redirect("supervision:assignments", clinic_id=assignment.clinic.public_id)


class SignOffForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 3}),
        label="Note for the therapist (optional)",
        error_messages={"max_length": f"Keep the note under {NOTE_MAX} characters; longer "
                                      "feedback fits better as comments on the recording."},
    )


def _back(session: TherapySession) -> HttpResponse:
    return redirect(f"{reverse('clients:session', kwargs={'session_id': session.public_id})}"
                    "#signoff")


@login_required
@require_POST
def sign_off(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _user(request)
    session = access.get_session_for_signoff(user, session_id)
    form = SignOffForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors.get("note", [])))
        return _back(session)
    try:
        actions.sign_off_session(actor=user, session=session, note=form.cleaned_data["note"])
    except actions.SupervisionError as error:
        messages.error(request, str(error))
        return _back(session)
    messages.success(request, f"Session {session.number} is signed off. The therapist sees "
                              "this on the session page.")
    return _back(session)


@login_required
@require_POST
def reopen(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _user(request)
    session = access.get_session_for_signoff(user, session_id)
    try:
        actions.reopen_session(actor=user, session=session)
    except actions.SupervisionError as error:
        messages.error(request, str(error))
        return _back(session)
    messages.success(request, f"Session {session.number} is reopened and back in your review "
                              "queue.")
    return _back(session)


# ---- the panel on the session page ---------------------------------------------------------

def signoff_context(user: User, session: TherapySession) -> dict[str, Any] | None:
    """What `supervision/_signoff.html` shows; None when the episode has no supervisor or there
    is nothing to say. At most three queries.

    `session` should come from access.get_session_for_user (episode, client, clinic loaded)."""
    episode = session.episode
    if episode.supervisor_id is None:
        return None
    standing: SessionSignOff | None = actions.standing_signoff(session)  # query 1
    is_supervisor = episode.supervisor_id == user.pk
    if not is_supervisor and standing is None and not session.shared_for_supervision:
        return None
    context: dict[str, Any] = {
        "signoff": standing,
        "is_supervisor": is_supervisor,
        "sign_off_url": reverse("supervision:sign_off", kwargs={"session_id": session.public_id}),
        "reopen_url": reverse("supervision:reopen", kwargs={"session_id": session.public_id}),
        "note_max": NOTE_MAX,
    }
    if is_supervisor:
        # They see this page, so their assignment is active: only the consent is left to ask.
        consent = access.consents_in_force(  # query 2
            episode.client, Purpose.SUPERVISION_REVIEW
        )[Purpose.SUPERVISION_REVIEW]
        context["why_not"] = actions.signoff_refusal(
            shared=session.shared_for_supervision, consent=consent,
            signed_off=standing is not None,
        )
        context["supervisor_name"] = user.label()
    else:
        supervisor = episode.supervisor  # query 2, unless the sharing panel loaded it already
        assert supervisor is not None
        context["supervisor_name"] = supervisor.label()
        context["assignment_ended"] = not access.is_assigned_supervisor(  # query 3
            supervisor.pk, episode.therapist_id, episode.client.clinic_id
        )
    return context
