"""Staff must pass a second factor before anything but the sign-in pages."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django_otp import user_has_device

from relisten.accounts.models import STAFF_ROLES, Membership

_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz")


def needs_second_factor(user: object) -> bool:
    """Anyone who enrolled a device; and every staff member when MFA is required."""
    if user_has_device(user):
        return True
    return bool(settings.REQUIRE_MFA) and Membership.objects.filter(
        user=user, role__in=STAFF_ROLES, active=True
    ).exists()


class RequireMfaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not user.is_verified()  # type: ignore[union-attr]
            and not request.path.startswith(_EXEMPT_PREFIXES)
            and needs_second_factor(user)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "Two-factor sign-in required"}, status=401)
            target = "accounts:mfa_verify" if user_has_device(user) else "accounts:mfa_setup"
            return redirect(target)
        return self.get_response(request)
