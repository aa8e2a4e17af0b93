"""A recorded, transcribed session for the demo clinic, so a newcomer sees the workspace at once.

The recording goes through the same path as a real one (tus upload actions → encrypted vault →
finalize → transcription pipeline), only run inline instead of by the worker, so what the demo
shows is what the product does. The audio is an AMI meeting excerpt (CC BY 4.0, see
demo_media/NOTICE.md): real conversational speech that is not anyone's therapy.
"""

from __future__ import annotations

from pathlib import Path

from relisten.clients.actions import share_for_supervision, share_with_client
from relisten.clients.models import TherapySession
from relisten.core.personas import Cast
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


def upload_demo_audio(session: TherapySession, cast: Cast) -> Recording:
    """Upload the demo audio as Tess would, and finalize it (READY, encrypted at rest)."""
    data = DEMO_AUDIO.read_bytes()
    upload = recording_actions.create_upload(
        actor=cast.therapist_a, session=session, kind=Kind.AUDIO, length=len(data))
    recording_id = upload.recording.public_id
    recording_actions.append_upload(
        actor=cast.therapist_a, upload=upload, offset=0, body=iter([data]),
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
    recording = upload_demo_audio(session, cast)
    transcribe_now(recording)
    # Tess shares the session with Cora (her consents allow it) and with her supervisor.
    share_with_client(actor=cast.therapist_a, session=session, shared=True)
    share_for_supervision(actor=cast.therapist_a, session=session, shared=True)
    add_demo_comments(recording, cast)
    return recording
