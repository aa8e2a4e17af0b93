"""Staff must pass a second factor before anything but the sign-in pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

from relisten.accounts.models import STAFF_ROLES, Membership

# Only what a person needs to *reach* the second step. Everything else under /accounts/
# (security settings, new recovery codes) is guarded: a stolen password alone must not be
# enough to mint fresh recovery codes.
_EXEMPT_VIEWS = frozenset({
    "accounts:login", "accounts:logout", "accounts:mfa_setup", "accounts:mfa_verify", "healthz",
})


def needs_second_factor(user: Any) -> bool:
    """Anyone who enrolled a device; and every staff member when MFA is required."""
    if user_has_device(user):
        return True
    if not settings.REQUIRE_MFA:
        return False
    # A superuser from `createsuperuser` may hold no membership yet but can see everything.
    if user.is_superuser or user.is_staff:
        return True
    return Membership.objects.filter(user=user, role__in=STAFF_ROLES, active=True).exists()


def is_verified(request: HttpRequest) -> bool:
    """Whether this session passed the second step (django-otp's OTPMiddleware adds the check)."""
    check = getattr(request.user, "is_verified", None)
    return bool(check()) if callable(check) else False


class RequireMfaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...], view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        # process_view (not __call__) so the decision uses the resolved view name, not a path
        # prefix that a new URL could silently fall under.
        user = request.user
        match = request.resolver_match
        if (
            not user.is_authenticated
            or is_verified(request)
            or (match is not None and match.view_name in _EXEMPT_VIEWS)
            or not needs_second_factor(user)
        ):
            return None
        if request.path.startswith(("/api/", "/uploads/")):
            # Programmatic clients (the API, tus uploads) cannot follow a redirect to a form.
            return JsonResponse(
                {"detail": "Two-factor sign-in required. Sign in on the web page first."},
                status=401,
            )
        target = reverse("accounts:mfa_verify" if user_has_device(user) else "accounts:mfa_setup")
        if request.method == "GET":
            # Come back to the page the person asked for once the second step is done.
            target = f"{target}?{urlencode({'next': request.get_full_path()})}"
        return redirect(target)
