"""Time-stamped comments: the panel beside the player, and its endpoints.

STUB (owned by the comments helper): comments_context() returns what the
`review/_comments.html` partial needs, in a fixed number of queries.
"""

from __future__ import annotations

from typing import Any

from relisten.accounts.models import User
from relisten.recordings.models import Recording


def comments_context(user: User, recording: Recording) -> dict[str, Any]:
    return {}
