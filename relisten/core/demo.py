"""A recorded, transcribed session for the demo clinic, so a newcomer sees the workspace at once.

The recording goes through the same path as a real one (tus upload actions → encrypted vault →
finalize → transcription pipeline), only run inline instead of by the worker, so what the demo
shows is what the product does. The audio is an AMI meeting excerpt (CC BY 4.0, see
demo_media/NOTICE.md): real conversational speech that is not anyone's therapy.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from django.utils import timezone

from relisten.accounts.models import User
from relisten.clients.actions import schedule_session, share_for_supervision, share_with_client
from relisten.clients.models import Modality, TherapySession
from relisten.consent.models import Purpose
from relisten.core.personas import Cast, grant_consents
from relisten.fidelity import actions as fidelity_actions
from relisten.fidelity.models import RaterRole, Rating, Scale
from relisten.lib.fidelity.scale import scale_from_definition
from relisten.recordings import actions as recording_actions
from relisten.recordings.models import Kind, Recording, State
from relisten.review.actions import create_comment, reply_to
from relisten.review.models import Scope
from relisten.transcripts import pipeline
from relisten.transcripts.models import TranscriptRun

DEMO_AUDIO = Path(__file__).resolve().parent / "demo_media" / "ami-trn09.webm"


def demo_session(cast: Cast) -> TherapySession:
    """Cora's first session with Tess: the client whose consents cover every purpose."""
    episode = cast.client_a.episodes.get()
    return episode.sessions.order_by("number").first() or episode.sessions.get()


def upload_demo_audio(session: TherapySession, therapist: User) -> Recording:
    """Upload the demo audio as the therapist would, and finalize it (READY, encrypted)."""
    data = DEMO_AUDIO.read_bytes()
    upload = recording_actions.create_upload(
        actor=therapist, session=session, kind=Kind.AUDIO, length=len(data))
    recording_id = upload.recording.public_id
    recording_actions.append_upload(
        actor=therapist, upload=upload, offset=0, body=iter([data]),
        body_length=len(data), checksum=None, new_length=None)
    recording = recording_actions.finalize_upload(recording_id)
    if recording is None or recording.state != State.READY:
        raise RuntimeError("The demo recording could not be stored; see the log above.")
    return recording


def transcribe_now(recording: Recording) -> str:
    """Run the queued transcription here rather than waiting for the worker (which will find
    the run finished and skip it)."""
    run = TranscriptRun.objects.filter(recording=recording).order_by("-created_at").first()
    if run is None:
        raise RuntimeError("The demo client's transcription consent is missing.")
    return pipeline.execute(run.public_id)


def add_demo_comments(recording: Recording, cast: Cast) -> None:
    """One thread in each scope, so every persona finds something they may (and may not) see."""
    tess, sam, cora = cast.therapist_a, cast.supervisor, cast.client_user_a
    create_comment(actor=tess, recording=recording, start=4.5, end=None, scope=Scope.PRIVATE,
                   body="Note to self: come back to the worry about losing things.",
                   tags=["follow-up"])
    question = create_comment(
        actor=tess, recording=recording, start=17.5, end=26.0, scope=Scope.CARE_TEAM,
        body="I wasn't sure whether to stay with this or move on. Thoughts?",
        tags=["supervision", "pacing"])
    reply_to(actor=sam, comment=question,
             body="Staying with it was right; try reflecting the feeling before the content.")
    create_comment(actor=tess, recording=recording, start=9.0, end=13.0, scope=Scope.CLIENT,
                   body="This is the moment we agreed to listen to again before next week.",
                   tags=["homework"])
    create_comment(actor=cora, recording=recording, start=19.0, end=None, scope=Scope.PRIVATE,
                   body="Bookmark: what I want to remember.", tags=[])
    create_comment(actor=cora, recording=recording, start=24.0, end=None, scope=Scope.CLIENT,
                   body="Hearing this again helped. Can we talk about it next time?", tags=[])


def add_demo_recording(cast: Cast) -> Recording:
    session = demo_session(cast)
    recording = upload_demo_audio(session, cast.therapist_a)
    transcribe_now(recording)
    # Tess shares the session with Cora (her consents allow it) and with her supervisor.
    share_with_client(actor=cast.therapist_a, session=session, shared=True)
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    add_demo_comments(recording, cast)
    add_demo_ratings(cast, recording)
    return recording


# ---- fidelity (issue 6): rated sessions for the comparison, calibration and trend pages -------

def _rate(rater: User, recording: Recording, scale: Scale, role: str,
          answers: dict[str, int], evidence: tuple[tuple[str, float, float | None], ...] = (),
          ) -> Rating:
    definition = scale_from_definition(scale.definition)
    rating = fidelity_actions.start_rating(actor=rater, recording=recording, scale=scale,
                                           role=role)
    fidelity_actions.save_answers(actor=rater, rating=rating, definition=definition,
                                  values={key: float(value) for key, value in answers.items()})
    for item_id, start, end in evidence:
        fidelity_actions.add_evidence(actor=rater, rating=rating, definition=definition,
                                      item_id=item_id, start=start, end=end)
    return fidelity_actions.complete_rating(actor=rater, rating=rating, definition=definition)


def _likert_answers(scale: Scale, level: float, rng: random.Random) -> dict[str, int]:
    """Every Likert/yes-no item near `level` (0-1 of its range), with a little rater noise."""
    answers = {}
    for item in scale_from_definition(scale.definition).items:
        if item.kind == "count" or item.max is None:
            continue
        span = item.max - item.min
        value = round(item.min + span * level + rng.choice((-1, 0, 0, 1)))
        answers[item.id] = int(min(item.max, max(item.min, value)))
    return answers


def add_demo_ratings(cast: Cast, cora_recording: Recording) -> None:
    """Tara (trainee) and Dr Reyes rate five of Tara's sessions with Tomas on the CTRS, Tara
    improving week by week and rating herself a little higher; Tess and Dr Reyes rate Cora's
    recorded session on the psychodynamic template, with evidence at two moments."""
    rng = random.Random(2026)  # noqa: S311 - not secret: the same demo every time
    ctrs = Scale.objects.get(clinic=None, slug="ctrs", retired=False)
    dynamic = Scale.objects.get(clinic=None, slug="psychodynamic-adherence-competence",
                                retired=False)
    tara, sam = cast.trainee, cast.supervisor
    grant_consents(tara, cast.trainee_client, Purpose.AUDIO_RECORDING,
                   Purpose.SUPERVISION_REVIEW)
    episode = cast.trainee_client.episodes.get()
    for week in range(5):
        session = schedule_session(
            actor=tara, episode=episode, modality=Modality.IN_PERSON,
            scheduled_at=timezone.now() - dt.timedelta(days=42 - 7 * week))
        recording = upload_demo_audio(session, tara)
        share_for_supervision(actor=tara, session=session, shared=True)
        level = 0.40 + 0.07 * week
        _rate(tara, recording, ctrs, RaterRole.SELF, _likert_answers(ctrs, level + 0.08, rng))
        _rate(sam, recording, ctrs, RaterRole.SUPERVISOR, _likert_answers(ctrs, level, rng),
              evidence=(("agenda", 1.0, 6.0), ("homework", 24.0, 29.5)))
    _rate(cast.therapist_a, cora_recording, dynamic, RaterRole.SELF,
          _likert_answers(dynamic, 0.75, rng))
    _rate(sam, cora_recording, dynamic, RaterRole.SUPERVISOR, _likert_answers(dynamic, 0.55, rng),
          evidence=(("affect_adh", 4.5, 9.0), ("patterns_comp", 17.5, 26.0)))
