"""Shared fixtures: the demo cast as personas, and signing in with a verified second factor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client as HttpClient
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from relisten.accounts.models import User
from relisten.core.personas import Cast, build_cast

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def cast(db: None) -> Cast:
    return build_cast(PASSWORD)


def sign_in(http: HttpClient, user: User) -> HttpClient:
    """Session sign-in plus a confirmed TOTP device, as if the person had passed both steps."""
    http.force_login(user)
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="test", defaults={"confirmed": True}
    )
    session = http.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return http


@pytest.fixture
def signed_in() -> Callable[[User], HttpClient]:
    def make(user: User) -> HttpClient:
        return sign_in(HttpClient(), user)

    return make
