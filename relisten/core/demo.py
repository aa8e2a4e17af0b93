"""A recorded, transcribed session for the demo clinic, so a newcomer sees the workspace at once.

The recording goes through the same path as a real one (tus upload actions → encrypted vault →
finalize → transcription pipeline), only run inline instead of by the worker, so what the demo
shows is what the product does. The audio is an AMI meeting excerpt (CC BY 4.0, see
demo_media/NOTICE.md): real conversational speech that is not anyone's therapy.
"""

from __future__ import annotations

from pathlib import Path

from relisten.clients.models import TherapySession
from relisten.core.personas import Cast
from relisten.recordings import actions as recording_actions
from relisten.recordings.models import Kind, Recording, State
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


def add_demo_recording(cast: Cast) -> Recording:
    recording = upload_demo_audio(demo_session(cast), cast)
    transcribe_now(recording)
    return recording
