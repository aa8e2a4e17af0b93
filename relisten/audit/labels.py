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
    # Supervision (supervision helper)
    "supervision.assigned": "Assigned a supervisor",
    "supervision.ended": "Ended a supervision assignment",
    "session.signed_off": "Signed off a session after supervision review",
    "session.signoff_reopened": "Reopened a signed-off session for supervision review",
    # Fidelity scales (scales helper)
    "scale.imported": "Imported a rating scale version",
    "scale.built": "Saved a rating scale version made in the builder",
    "scale.retired": "Retired a rating scale version",
    "scale.restored": "Offered a retired rating scale version again",
    # Rating sessions on fidelity scales (rating helper)
    "rating.started": "Started rating a session",
    "rating.completed": "Completed a rating of a session",
    "rating.reopened": "Reopened a rating of a session",
    "rating.evidence_added": "Added evidence to a rating",
    "rating.evidence_removed": "Removed evidence from a rating",
    # Calibration and fidelity over time (stats helper)
    "fidelity.calibration_viewed": "Viewed a rater calibration report",
    "fidelity.trend_viewed": "Viewed fidelity scores over time",
    "fidelity.exported": "Downloaded fidelity scores",
    # Questionnaire schedules, reminders and opt-out (outcomes, SCHEDULE)
    "outcomes.clinic_plan_saved": "Changed the clinic's questionnaire schedule",
    "outcomes.episode_plan_saved": "Changed the questionnaire schedule for an episode",
    "outcomes.episode_plan_removed": "Set an episode back to the clinic's questionnaire schedule",
    "outcomes.contact_changed": "Changed the email address for questionnaires",
    "outcomes.response_rates_viewed": "Viewed questionnaire response rates",
    "questionnaire.reminder_sent": "Sent a questionnaire reminder by email",
    "questionnaire.missed": "Marked a questionnaire as not answered in time",
    "questionnaire.opted_out_due": "Closed a questionnaire after the client opted out",
    "questionnaire.opted_out": "Asked for no more questionnaires",
    "questionnaire.opted_in": "Started questionnaires again",
    # Answering questionnaires and alerts (outcomes, ANSWER)
    "questionnaire.draft_saved": "Saved answers to a questionnaire so far",
    "questionnaire.answered": "Answered a questionnaire",
    "outcome_alert.raised": "Raised a questionnaire alert for the therapist",
    "outcome_alert.acknowledged": "Acknowledged a questionnaire alert",
    # A clinic's own questionnaires (outcomes, INSTRUMENTS)
    "instrument.imported": "Imported a questionnaire for the clinic",
    # FHIR export and import of questionnaire answers (outcomes, FHIRWEB)
    "outcomes.exported": "Downloaded questionnaire answers (FHIR)",
    "questionnaire.imported": "Imported questionnaire answers (FHIR)",
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
    "supervisionassignment": "supervision assignment",  # supervision
    "scale": "rating scale",  # fidelity scales
    "rating": "fidelity rating",  # rating sessions
    "due": "questionnaire",  # outcomes (SCHEDULE)
    "measurementplan": "questionnaire schedule",  # outcomes (SCHEDULE)
    "response": "questionnaire answers",  # outcomes (ANSWER)
    "alert": "questionnaire alert",  # outcomes (ANSWER)
    "instrument": "questionnaire definition",  # outcomes (INSTRUMENTS)
}


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type.replace(".", " ").replace("_", " ").capitalize())


def target_label(target_type: str) -> str:
    return TARGET_LABELS.get(target_type, target_type or "—")
