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
    "consent_text.published": "Published new consent wording",
    "clinic.created": "Created the clinic",
    "user.created": "Created an account",
    "user.password_set": "Set a password",
    "user.signed_in": "Signed in",
    "user.signed_out": "Signed out",
    "role.granted": "Gave a role",
    "role.revoked": "Removed a role",
    "mfa.enrolled": "Set up two-step sign-in",
    "mfa.verified": "Passed two-step sign-in",
    "mfa.failed": "Failed two-step sign-in",
    "mfa.recovery_codes_regenerated": "Made new recovery codes",
    "authz.denied": "Was refused access",
    "authz.forbidden": "Was refused a change",
    # time-stamped comments (review)
    "comment.created": "Added a comment",
    "comment.replied": "Replied to a comment",
    "comment.edited": "Edited a comment",
    "comment.deleted": "Deleted a comment",
    "comments.erased": "Erased the comments with the recording",
    # Sharing sessions (portal helper)
    "session.shared_with_client": "Shared a session with the client",
    "session.unshared_with_client": "Stopped sharing a session with the client",
    "session.shared_for_supervision": "Shared a session for supervision",
    "session.unshared_for_supervision": "Took a session out of supervision review",
    "clinic.sharing_default_changed": "Changed whether new sessions are shared with clients",
}

TARGET_LABELS = {
    "client": "client record",
    "episode": "episode of care",
    "therapysession": "therapy session",
    "consentdecision": "consent",
    "consenttext": "consent wording",
    "clinic": "clinic",
    "user": "account",
    "membership": "role",
    "comment": "comment",  # time-stamped comments (review)
}


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type.replace(".", " ").replace("_", " ").capitalize())


def target_label(target_type: str) -> str:
    return TARGET_LABELS.get(target_type, target_type or "—")
