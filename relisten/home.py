"""The landing page after sign-in: what each of the person's roles needs first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from relisten import access
from relisten.access import Act
from relisten.accounts.models import Membership, Role, User


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    roles = set(Membership.objects.filter(user=user, active=True).values_list("role", flat=True))
    return render(request, "home.html", {
        "roles": roles,
        "treating": access.clients_for_user(user, Act.TREAT).select_related("clinic")[:50],
        "supervising": access.clients_for_user(user, Act.VIEW)
        .exclude(pk__in=access.clients_for_user(user, Act.TREAT)).select_related("clinic")[:50],
        "own_records": access.own_client_records(user),
        "admin_clinics": access.admin_clinics(user),
        "is_researcher": Role.RESEARCHER in roles,
        "can_create": access.clinics_where_user_treats(user).exists(),
    })
