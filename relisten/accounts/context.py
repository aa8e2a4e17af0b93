from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from relisten.accounts.middleware import is_verified, needs_second_factor
from relisten.accounts.models import Membership


def roles(request: HttpRequest) -> dict[str, Any]:
    """The signed-in person's active roles, and whether they still owe the second step."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"my_roles": set(), "mfa_pending": False}
    found = set(
        Membership.objects.filter(user=user, active=True).values_list("role", flat=True)
    )
    # While the second step is owed, every menu link would bounce back to it: hide the menu.
    pending = not is_verified(request) and needs_second_factor(user)
    return {"my_roles": found, "mfa_pending": pending}
