"""Recording in the browser and uploading a file, from a therapy session's page.

STUB (owned by the capture helper): capture_context() returns what the
`recordings/_capture.html` partial needs.
"""

from __future__ import annotations

from typing import Any

from relisten.accounts.models import User
from relisten.clients.models import TherapySession


def capture_context(user: User, session: TherapySession) -> dict[str, Any]:
    return {}
