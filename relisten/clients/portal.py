"""The client's own area: their records, consents and who accessed them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from relisten import access
from relisten.accounts.models import User
from relisten.audit.labels import event_label, target_label
from relisten.clients.views import access_events


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    records = list(access.own_client_records(_user(request)))
    if len(records) == 1:
        return redirect("portal:record", record_id=records[0].public_id)
    return render(request, "portal/home.html", {"records": records})


@login_required
def portal_record(request: HttpRequest, record_id: str) -> HttpResponse:
    client = access.get_own_client_record(_user(request), record_id)
    return render(request, "portal/record.html", {"client": client})


@login_required
def portal_access_log(request: HttpRequest, record_id: str) -> HttpResponse:
    client = access.get_own_client_record(_user(request), record_id)
    users = {u.public_id: u for u in User.objects.filter(
        public_id__in=[e.actor_id for e in access_events(client) if e.actor_id])}
    rows = [
        {"event": event,
         "who": users[event.actor_id].label() if event.actor_id in users else "System",
         "action": event_label(event.event_type), "what": target_label(event.target_type)}
        for event in access_events(client)
    ]
    return render(request, "portal/access_log.html", {"client": client, "rows": rows})
