"""Plain words for audit rows, as a client or clinician reads them."""

from __future__ import annotations

EVENT_LABELS = {
    "record.viewed": "Viewed",
    "record.exported": "Downloaded",
    "client.created": "Created the record",
    "client.updated": "Updated details",
    "client.portal_access_given": "Set up your sign-in",
    "episode.opened": "Opened an episode of care",
    "episode.discharged": "Recorded a discharge",
    "session.scheduled": "Scheduled a session",
    "session.updated": "Updated a session",
    "consent.granted": "Recorded consent given",
    "consent.refused": "Recorded consent refused",
    "consent.revoked": "Recorded consent withdrawn",
}

TARGET_LABELS = {
    "client": "client record",
    "episode": "episode of care",
    "therapysession": "therapy session",
    "consentdecision": "consent",
}


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type.replace(".", " ").replace("_", " ").capitalize())


def target_label(target_type: str) -> str:
    return TARGET_LABELS.get(target_type, target_type or "—")
