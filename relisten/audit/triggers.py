"""The append-only triggers of migrations 0002/0003, as SQL a test or maintenance step can use.

Kept in one place so the tests that simulate an attacker (who drops them) and the test-database
flush (which must empty the table) use exactly what the migrations created.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

_M0002: Any = importlib.import_module("relisten.audit.migrations.0002_append_only_triggers")
_M0003: Any = importlib.import_module("relisten.audit.migrations.0003_block_truncate")


def create_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [*_M0002.POSTGRES, *_M0003.POSTGRES]
    return list(_M0002.SQLITE)


def drop_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [*_M0003.POSTGRES_REVERSE, *_M0002.POSTGRES_REVERSE]
    return list(_M0002.SQLITE_REVERSE)


@contextmanager
def triggers_lifted(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor with the append-only triggers dropped; they are recreated on the way out."""
    with connection.cursor() as cursor:
        for statement in drop_statements(connection.vendor):
            cursor.execute(statement)
        try:
            yield cursor
        finally:
            for statement in create_statements(connection.vendor):
                cursor.execute(statement)
