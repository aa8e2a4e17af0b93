"""Small request helpers the view modules share (one copy each, not one per module)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from relisten.accounts.models import User


def signed_in_user(request: HttpRequest) -> User:
    """The signed-in person, typed; every view that asks sits behind login_required."""
    assert isinstance(request.user, User)
    return request.user


def wants_fragment(request: HttpRequest) -> bool:
    """htmx, and our own panel scripts, send HX-Request and take the panel alone."""
    return request.headers.get("HX-Request") == "true"


def same_site_next(request: HttpRequest, fallback: str) -> str:
    """The page the person came from (`next`, a path on this site only, without its #part),
    else `fallback`: an open redirect would let a link in a phishing mail land on our sign-in
    and then bounce elsewhere."""
    wanted = request.POST.get("next", "") or request.GET.get("next", "")
    if wanted.startswith("/") and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted.split("#")[0]
    return fallback
