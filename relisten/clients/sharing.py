"""Sharing a therapy session with the client, and for supervision.

The therapist decides per session; the clinic sets what a new session starts with. A share is
a wish, not a key: relisten.access still asks for the client's consent on every request, so the
panel says plainly when a share is waiting for consent (or for a sign-in) to take effect.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from relisten import access
from relisten.access import Act
from relisten.accounts.models import User
from relisten.clients import actions
from relisten.clients.models import TherapySession
from relisten.consent.models import Purpose

CLIENT = "client"
SUPERVISION = "supervision"


def _client_status(name: str, shared: bool, consent: bool, has_sign_in: bool) -> str:
    if not shared:
        return f"Not shared. {name} cannot play this session or read its transcript."
    if not consent:
        return (f"Shared, but {name} cannot see it until {name} agrees to "
                f"“{Purpose.CLIENT_ACCESS.label}”.")
    if not has_sign_in:
        return (f"Shared, but {name} has no sign-in yet. Give {name} portal access from the "
                f"client record.")
    return f"Shared: {name} can play it and read its transcript in the portal."


def _supervision_status(
    client_name: str, supervisor: str | None, shared: bool, consent: bool
) -> str:
    if supervisor is None:
        return "This episode of care has no supervisor, so there is no one to share it with."
    if not shared:
        return f"Not shared for supervision. It is not in {supervisor}’s review queue."
    if not consent:
        return (f"Shared, but {supervisor} cannot review it until {client_name} agrees to "
                f"“{Purpose.SUPERVISION_REVIEW.label}”.")
    return f"Shared for supervision: it is in {supervisor}’s review queue."


def sharing_context(user: User, session: TherapySession) -> dict[str, Any]:
    """What the `clients/_sharing.html` partial shows; at most three queries.

    `session` should come from access.get_session_for_user (episode, client and clinic
    loaded with it)."""
    episode = session.episode
    client = episode.client
    name = client.given_name
    can_change = access.sessions_for_user(user, Act.TREAT).filter(pk=session.pk).exists()
    consent = access.consents_in_force(client, Purpose.CLIENT_ACCESS, Purpose.SUPERVISION_REVIEW)
    supervisor = episode.supervisor.label() if episode.supervisor is not None else None
    return {
        "session": session,
        "can_change": can_change,
        "url": reverse("clients:session_sharing", kwargs={"session_id": session.public_id}),
        "consent_url": reverse("clients:consent", kwargs={"client_id": client.public_id}),
        "client_name": name,
        "with_client": {
            "shared": session.shared_with_client,
            "in_effect": session.shared_with_client and consent[Purpose.CLIENT_ACCESS]
            and client.user_id is not None,
            "status": _client_status(name, session.shared_with_client,
                                     consent[Purpose.CLIENT_ACCESS], client.user_id is not None),
        },
        "supervision": {
            "shared": session.shared_for_supervision,
            "possible": supervisor is not None,
            "in_effect": session.shared_for_supervision and consent[Purpose.SUPERVISION_REVIEW],
            "status": _supervision_status(name, supervisor, session.shared_for_supervision,
                                          consent[Purpose.SUPERVISION_REVIEW]),
            "since": session.shared_for_supervision_at,
        },
        "clinic_default": client.clinic.share_sessions_with_clients_by_default,
    }


class SharingForm(forms.Form):
    target = forms.ChoiceField(choices=[(CLIENT, "the client"), (SUPERVISION, "supervision")])
    shared = forms.TypedChoiceField(choices=[("1", "share"), ("0", "stop sharing")],
                                    coerce=lambda value: value == "1")


def _confirmation(session: TherapySession, target: str, shared: bool) -> str:
    name = session.episode.client.given_name
    if target == CLIENT:
        return (f"Session {session.number} is now shared with {name}." if shared
                else f"Session {session.number} is no longer shared with {name}.")
    return (f"Session {session.number} is now in the supervisor’s review queue." if shared
            else f"Session {session.number} is no longer in the supervisor’s review queue.")


@login_required
@require_POST
def update_sharing(request: HttpRequest, session_id: str) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    session = access.get_session_for_user(user, session_id, Act.TREAT)
    back = redirect("clients:session", session_id=session.public_id)
    form = SharingForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That sharing choice was not understood. Please try again.")
        return back
    target, shared = form.cleaned_data["target"], form.cleaned_data["shared"]
    if target == CLIENT:
        actions.share_with_client(actor=user, session=session, shared=shared)
    elif session.episode.supervisor_id is None:
        messages.error(request, "This episode of care has no supervisor, so there is no one "
                                "to share the session with. Add one by opening a new episode.")
        return back
    else:
        actions.share_for_supervision(actor=user, session=session, shared=shared)
    messages.success(request, _confirmation(session, target, shared))
    return back
