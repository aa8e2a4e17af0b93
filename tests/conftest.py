"""Shared fixtures: the demo cast as personas, and signing in with a verified second factor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
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


@pytest.fixture
def audit_rows_removable_at_teardown(transactional_db: None) -> Iterator[None]:
    """Let the end-of-test flush empty the audit table on SQLite.

    A live server needs committed data, so browser tests are transactional and end with a flush.
    On SQLite that flush is DELETE FROM, which the append-only trigger (audit migration 0002)
    rightly refuses; PostgreSQL's flush is TRUNCATE, which row triggers do not see. Here, and only
    in a throwaway test database, the trigger is lifted for one DELETE and put straight back.
    """
    yield
    if connection.vendor != "sqlite":
        return
    triggers = import_module("relisten.audit.migrations.0002_append_only_triggers")
    with connection.cursor() as cursor:
        for statement in triggers.SQLITE_REVERSE:
            cursor.execute(statement)
        cursor.execute(f'DELETE FROM "{AuditEvent._meta.db_table}"')
        for statement in triggers.SQLITE:
            cursor.execute(statement)
