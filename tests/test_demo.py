"""The demo clinic that `make run` loads: a newcomer must find a recorded, transcribed session."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from relisten.accounts.models import User
from relisten.lib.vault.stream import StreamReader
from relisten.recordings import vault
from relisten.recordings.models import Recording, State
from relisten.transcripts.models import RunState, Transcript
from tests.conftest import sign_in
from tests.test_media_playback import VaultEnv, vault_env_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(vault_env: VaultEnv, settings: Any) -> Recording:
    settings.DEMO_MODE = True
    call_command("load_demo")
    return Recording.objects.get(session__episode__client__given_name="Cora")


def test_demo_session_is_recorded_encrypted_and_transcribed(demo: Recording) -> None:
    assert demo.state == State.READY
    assert demo.duration_s is not None and 29 < demo.duration_s < 31
    # At rest it is ciphertext: the WebM magic number is not in the stored object.
    stored = vault.store().read_range(demo.object_name, 0, 4096)
    assert b"\x1a\x45\xdf\xa3" not in stored
    reader: StreamReader = vault.open_reader(demo)
    assert reader.read(0, 4) == b"\x1a\x45\xdf\xa3"
    run = demo.runs.get()
    assert run.state == RunState.DONE
    transcript = Transcript.objects.get(recording=demo)
    words = " ".join(transcript.segments.values_list("text", flat=True)).lower()
    assert transcript.segments.count() >= 5
    assert "back up their data" in words  # what the AMI speaker says at ~0:05


def test_demo_loads_once(demo: Recording) -> None:
    before = Recording.objects.count()
    call_command("load_demo")
    assert Recording.objects.count() == before == 6  # Cora's session, five of Tara's


def test_demo_therapist_and_client_see_the_session(demo: Recording) -> None:
    tess = User.objects.get(username="tess.therapist")
    page = sign_in(HttpClient(), tess).get(
        reverse("clients:session", kwargs={"session_id": demo.session.public_id}))
    assert page.status_code == 200
    # The workspace puts each timed word in its own <span>: read the page's text.
    assert "back up their data" in re.sub(r"<[^>]+>", "", page.content.decode())


def test_demo_has_a_comment_thread_in_each_scope(demo: Recording) -> None:
    from relisten.review.models import Comment, Scope

    top_level = Comment.objects.filter(recording=demo, parent=None)
    scopes = set(top_level.values_list("scope", flat=True))
    assert scopes == {Scope.PRIVATE, Scope.CARE_TEAM, Scope.CLIENT}
    assert Comment.objects.filter(recording=demo).exclude(parent=None).exists()  # a reply


def test_demo_client_sees_shared_session_but_not_private_notes(demo: Recording) -> None:
    cora = User.objects.get(username="cora.client")
    page = sign_in(HttpClient(), cora).get(
        reverse("transcripts:page", kwargs={"recording_id": demo.public_id}))
    assert page.status_code == 200
    html = page.content.decode()
    assert "agreed to listen to again" in html  # Tess's comment shared with Cora
    assert "Bookmark: what I want to remember" in html  # Cora's own
    assert "Note to self" not in html and "Thoughts?" not in html  # private, care team


def test_demo_has_rated_sessions_for_comparison_calibration_and_trends(demo: Recording) -> None:
    from relisten.fidelity.models import RaterRole, Rating, RatingState

    complete = Rating.objects.filter(state=RatingState.COMPLETE)
    assert complete.count() == 12  # five CTRS pairs for Tara, one pair for Tess
    # Self-rating beside the supervisor's on the same session: Cora's recorded one included.
    on_cora = complete.filter(session=demo.session)
    assert {r.role for r in on_cora} == {RaterRole.SELF, RaterRole.SUPERVISOR}
    supervisor = on_cora.get(role=RaterRole.SUPERVISOR)
    assert supervisor.evidence.count() == 2 and supervisor.total is not None
    # Tara's supervisor-rated totals rise over the five weeks (the trend page has a shape).
    tara = [r.total for r in complete.filter(rater__username="sam.supervisor",
                                             scale__slug="ctrs").order_by("session__scheduled_at")]
    assert len(tara) == 5 and tara[-1] > tara[0]


def test_demo_has_questionnaire_histories_through_follow_up(demo: Recording) -> None:
    from relisten.outcomes.models import Alert, AlertKind, Response, TimePoint

    def totals(given_name: str) -> list[int]:
        return list(Response.objects.filter(
            episode__client__given_name=given_name, instrument__code="phq-9",
        ).order_by("answered_at").values_list("total", flat=True))

    maya, owen, priya = totals("Maya"), totals("Owen"), totals("Priya")
    assert maya[0] >= 10 and maya[-1] < 10 and maya[0] - maya[-1] >= 6  # recovered, reliably
    assert abs(owen[0] - owen[-1]) < 6  # unchanged
    assert priya[-1] - priya[0] >= 6  # reliable deterioration
    follow_ups = set(Response.objects.filter(episode__client__given_name="Maya")
                     .values_list("time_point", flat=True))
    assert {TimePoint.FOLLOW_UP_1, TimePoint.FOLLOW_UP_3, TimePoint.FOLLOW_UP_6,
            TimePoint.FOLLOW_UP_12} <= follow_ups
    risk = Alert.objects.get(kind=AlertKind.RISK_ITEM)
    assert risk.episode.client.given_name == "Priya" and risk.acknowledged_at is None
    # Per item, not only totals.
    assert all(r.items.count() in (7, 9) for r in Response.objects.all())
