from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from relisten.accounts.models import Membership


def roles(request: HttpRequest) -> dict[str, Any]:
    """The signed-in person's active roles, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"my_roles": set()}
    found = set(
        Membership.objects.filter(user=user, active=True).values_list("role", flat=True)
    )
    return {"my_roles": found}
