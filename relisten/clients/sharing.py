"""Sharing a therapy session with the client, and for supervision.

STUB (owned by the portal helper): sharing_context() returns what the `clients/_sharing.html`
partial needs.
"""

from __future__ import annotations

from typing import Any

from relisten.accounts.models import User
from relisten.clients.models import TherapySession


def sharing_context(user: User, session: TherapySession) -> dict[str, Any]:
    return {}
