"""The capture panel (record in the browser, upload a file) on the session page, server side.

What the panel offers follows the client's consent as it stands at the request; only people
who treat the session get the panel; the status endpoint lets the page follow its upload to
READY. The browser half is tests/browser/test_record.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.accounts.models import User
from relisten.clients.actions import schedule_session
from relisten.clients.models import Client, Modality, TherapySession
from relisten.consent.actions import record_decision
from relisten.consent.models import Method, Purpose
from relisten.consent.policy import current_text
from relisten.core.personas import Cast
from relisten.recordings import actions
from relisten.recordings.capture import capture_context, size_label
from relisten.recordings.models import Recording, State
from relisten.recordings.tus import RECORDING_HEADER
from tests.conftest import sign_in
from tests.test_tus import (
    TUS,
    create,
    location,
    patch,
    vault,  # noqa: F401 - registers the `vault` fixture here
    wav_bytes,
)


def decide(actor: User, client: Client, purpose: str, granted: bool) -> None:
    record_decision(actor=actor, client=client, purpose=purpose, granted=granted,
                    method=Method.PAPER_ATTESTED, text=current_text(client.clinic_id, purpose))


def session_of(client: Client) -> TherapySession:
    return (TherapySession.objects.select_related("episode__client__clinic")
            .filter(episode__client=client).order_by("number")[0])


def trainee_session(cast: Cast) -> TherapySession:
    episode = cast.trainee_client.episodes.get()
    schedule_session(actor=cast.trainee, episode=episode, modality=Modality.IN_PERSON,
                     scheduled_at=timezone.now() - dt.timedelta(days=1))
    return session_of(cast.trainee_client)


def page(http: HttpClient, session: TherapySession) -> str:
    response = http.get(f"/sessions/{session.public_id}/")
    assert response.status_code == 200
    return response.content.decode()


def config_of(html: str) -> dict[str, Any]:
    start = html.index('<script id="capture-config" type="application/json">')
    body = html[html.index(">", start) + 1:html.index("</script>", start)]
    found: dict[str, Any] = json.loads(body)
    return found


# ---- what the panel offers ------------------------------------------------------------------

def test_audio_consent_offers_audio_only_and_says_why_video_is_off(cast: Cast) -> None:
    context = capture_context(cast.therapist_a, session_of(cast.client_a))
    by_kind = {option.kind: option for option in context["options"]}
    assert by_kind["audio"].allowed and not by_kind["audio"].reason
    assert not by_kind["video"].allowed
    assert "not agreed to video recording" in by_kind["video"].reason
    assert context["can_record"] and context["some_refused"]
    assert context["config"]["allowedKinds"] == ["audio"]
    assert context["config"]["session"] == str(session_of(cast.client_a).public_id)
    assert context["consent_url"] == f"/clients/{cast.client_a.public_id}/consent/"


def test_video_consent_offers_both_kinds(cast: Cast) -> None:
    decide(cast.therapist_a, cast.client_a, Purpose.VIDEO_RECORDING, True)
    context = capture_context(cast.therapist_a, session_of(cast.client_a))
    assert context["config"]["allowedKinds"] == ["audio", "video"]
    assert not context["some_refused"]


def test_withdrawn_consent_disables_recording_on_the_very_next_request(
    cast: Cast, signed_in: Any,
) -> None:
    http = signed_in(cast.therapist_b)
    session = session_of(cast.client_b)
    before = page(http, session)
    assert config_of(before)["allowedKinds"] == ["audio"]
    assert 'id="capture-agreed"' in before

    decide(cast.therapist_b, cast.client_b, Purpose.AUDIO_RECORDING, False)
    after = page(http, session)
    assert config_of(after)["allowedKinds"] == []
    assert 'id="capture-agreed"' not in after  # nothing to reconfirm
    assert "the client has not agreed to audio or video recording" in after
    assert f'href="/clients/{cast.client_b.public_id}/consent/"' in after
    assert '<button type="button" id="capture-start" disabled' in after
    # ... and the server refuses anyway, whatever a page may still show.
    refused = create(http, session, length=None)
    assert refused.status_code == 403
    assert "not agreed to audio recording" in refused.content.decode()


def test_panel_markup_is_labelled_and_loads_its_scripts(cast: Cast, signed_in: Any) -> None:
    html = page(signed_in(cast.therapist_a), session_of(cast.client_a))
    assert '<label for="capture-agreed">The client has agreed today to this recording.</label>' \
        in html
    assert '<label for="capture-level">Input level</label>' in html
    assert '<label for="capture-file">' in html
    assert 'role="status" aria-live="polite"' in html
    assert '<script src="/static/vendor/tus-js-client-4.3.1.min.js"></script>' in html
    assert '<script type="module" src="/static/relisten/capture.js"></script>' in html
    # The start button is disabled until the reconfirmation box is ticked (by the module).
    assert '<button type="button" id="capture-start" disabled' in html


def test_trainee_gets_the_panel_for_their_own_client(cast: Cast, signed_in: Any) -> None:
    decide(cast.trainee, cast.trainee_client, Purpose.AUDIO_RECORDING, True)
    session = trainee_session(cast)
    context = capture_context(cast.trainee, session)
    assert context["config"]["allowedKinds"] == ["audio"]
    assert 'id="capture"' in page(signed_in(cast.trainee), session)


def test_trainee_without_consent_sees_why(cast: Cast) -> None:
    context = capture_context(cast.trainee, trainee_session(cast))
    assert not context["can_record"]
    assert all("has not agreed" in option.reason for option in context["options"])


def test_supervisor_gets_no_capture_panel(cast: Cast, signed_in: Any) -> None:
    session = session_of(cast.client_a)
    assert capture_context(cast.supervisor, session) == {}
    html = page(signed_in(cast.supervisor), session)
    assert 'id="capture"' not in html
    assert "capture.js" not in html


def test_other_therapist_gets_no_capture_context(cast: Cast) -> None:
    assert capture_context(cast.therapist_b, session_of(cast.client_a)) == {}


def test_capture_context_uses_a_fixed_number_of_queries(
    cast: Cast, django_assert_max_num_queries: Any,
) -> None:
    session = session_of(cast.client_a)
    for _ in range(6):
        Recording.objects.create(session=session, kind="audio", created_by=cast.therapist_a,
                                 state=State.FAILED, failure="The file was damaged.")
    with django_assert_max_num_queries(5):
        context = capture_context(cast.therapist_a, session)
        assert len(context["pending"]) == 5


def test_failed_uploads_are_listed_with_their_reason(cast: Cast, signed_in: Any) -> None:
    session = session_of(cast.client_a)
    Recording.objects.create(session=session, kind="audio", created_by=cast.therapist_a,
                             state=State.FAILED,
                             failure="The file has no sound track that can be played.")
    html = page(signed_in(cast.therapist_a), session)
    assert "Could not be used" in html
    assert "The file has no sound track that can be played." in html


def test_size_label_speaks_plainly() -> None:
    assert size_label(8 * 1024**3) == "8 GB"
    assert size_label(1536 * 1024**2) == "1.5 GB"
    assert size_label(200 * 1024**2) == "200 MB"
    assert size_label(12) == "12 bytes"


# ---- following an upload to READY -----------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_status_follows_a_deferred_upload_to_ready(
    cast: Cast, vault: dict[str, Path],  # noqa: F811
) -> None:
    http = sign_in(HttpClient(), cast.therapist_a)
    session = session_of(cast.client_a)
    status_url = f"/sessions/{session.public_id}/capture-status/"
    created = create(http, session, length=None)
    url = location(created)
    recording_id = created[RECORDING_HEADER]
    assert Recording.objects.get(public_id=recording_id).state == State.UPLOADING
    assert http.head(url, headers=TUS)[RECORDING_HEADER] == recording_id

    rows = http.get(status_url).json()["recordings"]
    assert [(row["id"], row["state"]) for row in rows] == [(recording_id, "uploading")]

    data = wav_bytes(2)
    assert patch(http, url, 0, data[:10_000])[RECORDING_HEADER] == recording_id
    done = patch(http, url, 10_000, data[10_000:], {"Upload-Length": str(len(data))})
    assert done.status_code == 204
    # The test settings run finalize inline (immediate backend): READY by now.
    row = http.get(status_url).json()["recordings"][0]
    assert row["state"] == "ready"
    assert row["url"] == f"/sessions/{session.public_id}/?r={recording_id}"
    assert abs(row["duration_s"] - 2.0) < 0.1


@pytest.mark.django_db(transaction=True)
def test_status_reports_a_failed_upload_in_plain_words(
    cast: Cast, vault: dict[str, Path],  # noqa: F811
) -> None:
    http = sign_in(HttpClient(), cast.therapist_a)
    session = session_of(cast.client_a)
    created = create(http, session, length=None)
    url = location(created)
    junk = b"this is not a recording at all " * 100
    assert patch(http, url, 0, junk, {"Upload-Length": str(len(junk))}).status_code == 204
    row = http.get(f"/sessions/{session.public_id}/capture-status/").json()["recordings"][0]
    assert row["id"] == created[RECORDING_HEADER]
    assert row["state"] == "failed"
    assert row["failure"]  # the media check's own words
    assert not row["url"]


def test_status_is_only_for_those_who_treat(cast: Cast, signed_in: Any) -> None:
    session = session_of(cast.client_a)
    url = f"/sessions/{session.public_id}/capture-status/"
    assert signed_in(cast.therapist_a).get(url).status_code == 200
    assert signed_in(cast.supervisor).get(url).status_code == 403
    assert signed_in(cast.therapist_b).get(url).status_code == 404


def test_status_lists_only_ones_own_recordings(
    cast: Cast, signed_in: Any, vault: dict[str, Path],  # noqa: F811
) -> None:
    session = session_of(cast.client_a)
    actions.create_upload(actor=cast.therapist_a, session=session, kind="audio", length=None)
    url = f"/sessions/{session.public_id}/capture-status/"
    assert len(signed_in(cast.therapist_a).get(url).json()["recordings"]) == 1
    # Someone else who comes to treat this session sees their own uploads, not the first's.
    episode = session.episode
    episode.therapist = cast.therapist_b
    episode.save()
    assert signed_in(cast.therapist_b).get(url).json()["recordings"] == []


def test_status_polling_is_one_look_in_the_clients_access_log(
    cast: Cast, signed_in: Any,
) -> None:
    from relisten.audit.models import AuditEvent

    session = session_of(cast.client_a)
    url = f"/sessions/{session.public_id}/capture-status/"
    http = signed_in(cast.therapist_a)

    def looks() -> int:
        return AuditEvent.objects.filter(
            event_type="record.viewed", actor_id=cast.therapist_a.public_id,
            target_id=str(session.public_id), client_id=cast.client_a.public_id).count()

    for _ in range(5):
        assert http.get(url).status_code == 200
    assert looks() == 1
    page(http, session)  # opening the page itself is a look of its own
    assert looks() == 2
