"""Default consent wording, plain language, used as version 1 for every new clinic.

Clinics edit these (each edit is a new version); decisions keep pointing at the version shown.
"""

from __future__ import annotations

from relisten.consent.models import Purpose

DEFAULT_TEXTS: dict[str, str] = {
    Purpose.AUDIO_RECORDING: (
        "I agree that my therapy sessions may be audio-recorded. Recordings are kept securely by "
        "the clinic, and only for as long as its policy says. I can say no, or change my mind at "
        "any time, and my care will not be affected."
    ),
    Purpose.VIDEO_RECORDING: (
        "I agree that my therapy sessions may be video-recorded (picture and sound). Recordings "
        "are kept securely, and only for as long as the clinic's policy says. I can say no, or "
        "change my mind at any time, and my care will not be affected."
    ),
    Purpose.TRANSCRIPTION: (
        "I agree that recordings of my sessions may be turned into written transcripts by "
        "software that runs on the clinic's own computers. Nothing is sent to outside services."
    ),
    Purpose.SUPERVISION_REVIEW: (
        "I agree that my therapist's clinical supervisor may listen to or read parts of my "
        "sessions to help my therapist give me good care. Supervisors keep the same "
        "confidentiality as my therapist."
    ),
    Purpose.CLIENT_ACCESS: (
        "I would like to be able to listen to recordings of my own sessions through my account. "
        "Anyone who can sign in as me could hear them, so I will keep my password private."
    ),
    Purpose.AUTOMATED_ANALYSIS: (
        "I agree that software may analyse my session recordings or transcripts (for example to "
        "count kinds of therapist responses) to support my therapist's training and the quality "
        "of care. The results are seen only by my care team."
    ),
    Purpose.TEACHING: (
        "I agree that excerpts of my sessions may be used to teach other therapists within the "
        "clinic. I can ask for any excerpt not to be used, and can withdraw at any time."
    ),
    Purpose.RESEARCH: (
        "I agree that information from my sessions and questionnaires may be used, without my "
        "name, in research approved by an ethics committee. I can withdraw at any time."
    ),
}
