"""Consent pages: the therapist's record of paper forms and the client's own online choices."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from relisten import access
from relisten.access import Act
from relisten.audit.log import record_read
from relisten.clients.models import Client
from relisten.consent import actions
from relisten.consent.forms import AttestForm, ClientDecisionForm, encode_versions
from relisten.consent.models import ConsentDecision, ConsentText, Method, Purpose
from relisten.consent.policy import current_status, current_text
from relisten.web import signed_in_user as _user

STALE_MESSAGE = ("The wording of this consent has just changed. Please read it again before "
                 "deciding; nothing was saved.")



def _texts(client: Client) -> dict[str, ConsentText]:
    return {purpose: current_text(client.clinic_id, purpose) for purpose in Purpose.values}


def _rows(client: Client) -> list[dict[str, object]]:
    status, texts = current_status(client), _texts(client)
    return [
        {"purpose": purpose, "label": Purpose(purpose).label, "decision": status[purpose],
         "text": texts[purpose]}
        for purpose in Purpose.values
    ]


def _history(client: Client) -> list[ConsentDecision]:
    return list(client.consent_decisions.select_related("text", "recorded_by"))


@login_required
@require_http_methods(["GET", "POST"])
def client_consent(request: HttpRequest, client_id: str) -> HttpResponse:
    user = _user(request)
    client = access.get_client_for_user(user, client_id)
    can_treat = access.clients_for_user(user, Act.TREAT).filter(pk=client.pk).exists()
    shown_now = encode_versions({p: t.version for p, t in _texts(client).items()})
    form = AttestForm(request.POST or None, initial={"shown_versions": shown_now})
    if request.method == "POST":
        if not can_treat:
            client = access.get_client_for_user(user, client_id, Act.TREAT)  # raises
        if form.is_valid():
            purpose = form.cleaned_data["purpose"]
            text = current_text(client.clinic_id, purpose)
            shown = form.version_shown(purpose)
            if shown and shown != text.version:
                form.add_error(None, "The consent wording changed while you were on this page. "
                                     "Check the new wording with the client and submit again.")
                # The page now shows the new wording, so the next submission refers to it.
                fresh = request.POST.copy()
                fresh["shown_versions"], fresh["text_version"] = shown_now, ""
                form.data = fresh
            else:
                try:
                    actions.record_decision(
                        actor=user, client=client, purpose=purpose,
                        granted=form.cleaned_data["decision"] == "grant",
                        method=Method.PAPER_ATTESTED, text=text,
                    )
                except actions.StaleConsentText:
                    # New wording was published between our check and the save.
                    messages.error(request, STALE_MESSAGE)
                    return redirect("clients:consent", client_id=client.public_id)
                messages.success(request, f"Recorded: {Purpose(purpose).label}.")
                return redirect("clients:consent", client_id=client.public_id)
    else:
        record_read(actor=user, client=client, target=client,
                    role=access.relationship_to(user, client))
    return render(request, "consent/client_consent.html", {
        "client": client, "rows": _rows(client), "history": _history(client), "form": form,
        "can_treat": can_treat,
    })


@login_required
def my_consent(request: HttpRequest, record_id: str) -> HttpResponse:
    client = access.get_own_client_record(_user(request), record_id)
    return render(request, "consent/my_consent.html", {
        "client": client, "rows": _rows(client), "history": _history(client),
    })


@login_required
@require_POST
def my_consent_decide(request: HttpRequest, record_id: str, purpose: str) -> HttpResponse:
    user = _user(request)
    client = access.get_own_client_record(user, record_id)
    if purpose not in Purpose.values:
        messages.error(request, "That is not a consent choice we know.")
        return redirect("portal:consent", record_id=client.public_id)
    form = ClientDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose to agree or to withdraw, then try again.")
        return redirect("portal:consent", record_id=client.public_id)
    text = current_text(client.clinic_id, purpose)
    if form.cleaned_data["text_version"] != text.version:
        messages.error(request, "The wording of this consent has just changed. Please read it "
                                "again before deciding.")
        return redirect("portal:consent", record_id=client.public_id)
    granted = form.cleaned_data["decision"] == "grant"
    try:
        actions.record_decision(actor=user, client=client, purpose=purpose, granted=granted,
                                method=Method.CLIENT_ONLINE, text=text)
    except actions.StaleConsentText:
        messages.error(request, STALE_MESSAGE)
        return redirect("portal:consent", record_id=client.public_id)
    label = Purpose(purpose).label
    messages.success(request, f"You agreed to: {label}." if granted
                     else f"Withdrawn: {label}. This applies from now on.")
    return redirect("portal:consent", record_id=client.public_id)
