from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.audit.log import record_read
from relisten.audit.models import AuditEvent
from relisten.clients import actions
from relisten.clients.forms import (
    ClientForm,
    DischargeForm,
    EpisodeForm,
    NewClientForm,
    PortalAccessForm,
    SessionEditForm,
    SessionForm,
)
from relisten.clients.models import Client
from relisten.clients.sharing import sharing_context
from relisten.consent.policy import current_status
from relisten.recordings.capture import capture_context
from relisten.recordings.models import Recording
from relisten.review.workspace import session_page_address, workspace_context
from relisten.supervision.views import signoff_context
from relisten.web import signed_in_user as _user


def _opened_form(request: HttpRequest, user: User, client: Client, target: Model) -> None:
    """A form filled from the record shows the record, so opening it is a read on record.

    Only on GET: a re-rendered POST shows what the person just typed, and a saved POST is
    already audited by its action.
    """
    if request.method == "GET":
        record_read(actor=user, client=client, target=target,
                    role=access.relationship_to(user, client))


@login_required
def client_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    clients = access.clients_for_user(user).select_related("clinic")
    return render(request, "clients/list.html", {
        "clients": clients, "can_create": access.clinics_where_user_treats(user).exists(),
    })


@login_required
@require_http_methods(["GET", "POST"])
def client_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    clinics = access.clinics_where_user_treats(user)
    if not clinics.exists():
        return render(request, "clients/no_clinic.html", status=403)
    supervisors = access.supervisors_assigned_to(user, clinics)
    form = NewClientForm(request.POST or None, clinics=clinics, supervisors=supervisors,
                         therapist=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        client = actions.create_client(
            actor=user, clinic=data["clinic"], given_name=data["given_name"],
            family_name=data["family_name"], date_of_birth=data["date_of_birth"],
            reference=data["reference"], supervisor=data["supervisor"],
            start_date=data["start_date"],
        )
        messages.success(request, "Client record created. Record their consent next.")
        return redirect("clients:consent", client_id=client.public_id)
    return render(request, "clients/new.html", {"form": form})


@login_required
def client_detail(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id)
    record_read(actor=user, client=client, target=client, role=access.relationship_to(user, client))
    episodes = (
        client.episodes.select_related("therapist", "supervisor").prefetch_related("sessions")
    )
    can_treat = access.clients_for_user(user, Act.TREAT).filter(pk=client.pk).exists()
    return render(request, "clients/detail.html", {
        "client": client, "episodes": episodes, "consent": current_status(client),
        "can_treat": can_treat,
    })


@login_required
@require_http_methods(["GET", "POST"])
def client_edit(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id, Act.TREAT)
    _opened_form(request, user, client, client)
    initial = {name: getattr(client, name) for name in actions.CLIENT_FIELDS}
    form = ClientForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        actions.update_client(actor=user, client=client, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("clients:detail", client_id=client.public_id)
    return render(request, "clients/edit.html", {"client": client, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def portal_access(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id, Act.TREAT)
    if client.user_id is not None:
        messages.info(request, "This client can already sign in.")
        return redirect("clients:detail", client_id=client.public_id)
    _opened_form(request, user, client, client)
    form = PortalAccessForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        actions.give_portal_access(actor=user, client=client, **form.cleaned_data)
        messages.success(request, "The client can now sign in and see their consents.")
        return redirect("clients:detail", client_id=client.public_id)
    return render(request, "clients/portal_access.html", {"client": client, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def episode_new(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id, Act.TREAT)
    _opened_form(request, user, client, client)
    form = EpisodeForm(request.POST or None,
                       supervisors=access.supervisors_assigned_to(user, [client.clinic]))
    if request.method == "POST" and form.is_valid():
        actions.open_episode(actor=user, client=client, therapist=user,
                             supervisor=form.cleaned_data["supervisor"],
                             start_date=form.cleaned_data["start_date"])
        messages.success(request, "New episode of care opened.")
        return redirect("clients:detail", client_id=client.public_id)
    return render(request, "clients/episode_new.html", {"client": client, "form": form})


@login_required
def episode_detail(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id)
    client = episode.client
    record_read(actor=user, client=client, target=episode,
                role=access.relationship_to(user, client))
    can_treat = access.episodes_for_user(user, Act.TREAT).filter(pk=episode.pk).exists()
    return render(request, "clients/episode_detail.html", {
        "episode": episode, "client": client, "sessions": episode.sessions.all(),
        "can_treat": can_treat,
    })


@login_required
@require_http_methods(["GET", "POST"])
def episode_discharge(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id, Act.TREAT)
    _opened_form(request, user, episode.client, episode)
    form = DischargeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        end_date = form.cleaned_data["end_date"]
        if end_date < episode.start_date:
            form.add_error("end_date", "The discharge date cannot be before the episode started.")
        else:
            actions.discharge_episode(actor=user, episode=episode, end_date=end_date)
            messages.success(request, "Episode closed.")
            return redirect("clients:episode", episode_id=episode.public_id)
    return render(request, "clients/discharge.html", {"episode": episode, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def session_new(request: HttpRequest, episode_id: str) -> HttpResponse:
    user = _user(request)
    episode = access.get_episode_for_user(user, episode_id, Act.TREAT)
    _opened_form(request, user, episode.client, episode)
    form = SessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        session = actions.schedule_session(actor=user, episode=episode, **form.cleaned_data)
        messages.success(request, f"Session {session.number} scheduled.")
        return redirect("clients:episode", episode_id=episode.public_id)
    return render(request, "clients/session_new.html", {"episode": episode, "form": form})


@login_required
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _user(request)
    session = access.get_session_for_user(user, session_id)
    client = session.episode.client
    relationship = access.relationship_to(user, client)
    record_read(actor=user, client=client, target=session, role=relationship)
    can_treat = access.sessions_for_user(user, Act.TREAT).filter(pk=session.pk).exists()
    # Newest first; each with its latest transcription run (one query for all of them).
    recordings = list(
        access.recordings_for_user(user).filter(session=session)
        .select_related("session__episode__client__clinic", "transcript")
        .prefetch_related("runs")
    )
    chosen = _chosen_recording(recordings, request.GET.get("r", ""))
    context: dict[str, Any] = {
        "session": session, "client": client, "can_treat": can_treat,
        "recordings": recordings, "chosen": chosen,
        "sharing": sharing_context(user, session),
        "signoff": signoff_context(user, session),  # supervision sign-off panel
    }
    if can_treat:
        context["capture"] = capture_context(user, session)
    if chosen is not None:
        context.update(workspace_context(
            request, user, chosen, here=session_page_address(session, chosen),
            relationship=relationship))
    return render(request, "clients/session_detail.html", context)


def _chosen_recording(recordings: list[Recording], wanted: str) -> Recording | None:
    """The recording `?r=` names among those shown, else the newest (all shown are READY)."""
    for recording in recordings:
        if str(recording.public_id) == wanted:
            return recording
    return recordings[0] if recordings else None


@login_required
@require_http_methods(["GET", "POST"])
def session_edit(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _user(request)
    session = access.get_session_for_user(user, session_id, Act.TREAT)
    _opened_form(request, user, session.episode.client, session)
    form = SessionEditForm(request.POST or None, initial={
        "scheduled_at": session.scheduled_at, "modality": session.modality,
        "attendance": session.attendance,
    })
    if request.method == "POST" and form.is_valid():
        actions.update_session(actor=user, session=session, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("clients:session", session_id=session.public_id)
    return render(request, "clients/session_edit.html", {"session": session, "form": form})


def access_events(client: Client) -> list[AuditEvent]:
    """Who looked at or changed this client's record, newest first."""
    return list(AuditEvent.objects.filter(client_id=client.public_id).order_by("-seq")[:500])


@login_required
def client_access_log(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id)
    record_read(actor=user, client=client, target=client, role=access.relationship_to(user, client))
    return render(request, "clients/access_log.html",
                  {"client": client, "events": access_events(client)})
