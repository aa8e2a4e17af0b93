"""Queue background work only after the transaction that asked for it commits.

A job must never see data that was rolled back, and never receive clinical content: task
arguments are ids (UUIDs, integers or short id strings) and the worker loads the rest itself.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from django.db import transaction

_ID_TYPES = (int, str, uuid.UUID)


def _check_ids(args: tuple[Any, ...]) -> tuple[Any, ...]:
    for arg in args:
        if not isinstance(arg, _ID_TYPES) or (isinstance(arg, str) and len(arg) > 64):
            raise TypeError("task arguments must be ids (int, UUID or a short id string)")
    return tuple(str(arg) if isinstance(arg, uuid.UUID) else arg for arg in args)


def enqueue_on_commit(task: Any, *ids: Any) -> None:
    """Enqueue `task(*ids)` when the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(task.enqueue, *_check_ids(ids)))
