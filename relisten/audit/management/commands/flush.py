"""Django's `flush`, able to empty the audit table of a *test* database.

The append-only triggers make `flush` fail, which is what a production database should do:
wiping the audit trail must never be one command away. Test runs, though, flush after every
transactional test, so there (and only there) the triggers are lifted for the flush.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.flush import Command as DjangoFlush
from django.db import connections
from django.test.utils import _TestState

from relisten.audit.triggers import triggers_lifted


def _in_test_run() -> bool:
    # setup_test_environment() (Django's runner, pytest-django) sets this; nothing else does.
    return hasattr(_TestState, "saved_data")


class Command(DjangoFlush):
    def handle(self, **options: Any) -> None:
        if not _in_test_run():
            super().handle(**options)
            return
        with triggers_lifted(connections[options["database"]]):
            super().handle(**options)
