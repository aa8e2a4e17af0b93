"""Consent: per client and purpose, versioned wording, enforced through is_allowed()."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client as HttpClient
from django.utils import timezone

from relisten.accounts.actions import create_clinic
from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.consent.actions import (
    StaleConsentText,
    publish_consent_text,
    record_decision,
    revoke,
)
from relisten.consent.defaults import DEFAULT_TEXTS
from relisten.consent.models import ConsentDecision, ConsentText, Method, Purpose
from relisten.consent.policy import current_status, current_text, is_allowed, latest_decision
from relisten.core.personas import Cast

PURPOSES = {"audio_recording", "video_recording", "transcription", "supervision_review",
            "client_access", "automated_analysis", "teaching", "research"}


def grant(cast: Cast, purpose: str, *, granted: bool = True) -> ConsentDecision:
    return record_decision(actor=cast.therapist_a, client=cast.client_a, purpose=purpose,
                           granted=granted, method=Method.PAPER_ATTESTED,
                           text=current_text(cast.clinic.pk, purpose))


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def portal_url(cast: Cast, purpose: str) -> str:
    return f"/me/{cast.client_a.public_id}/consent/{purpose}/"


def messages_of(response: object) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


# ---- the purposes and their default wording --------------------------------------------------

def test_the_eight_purposes_exist_with_default_wording() -> None:
    assert set(Purpose.values) == PURPOSES
    assert set(DEFAULT_TEXTS) == PURPOSES
    assert all(len(text) > 40 for text in DEFAULT_TEXTS.values())


def test_a_new_clinic_gets_version_1_of_every_text(db: None) -> None:
    clinic = create_clinic(actor=None, name="Fresh clinic")
    texts = ConsentText.objects.filter(clinic=clinic)
    assert {(t.purpose, t.version) for t in texts} == {(p, 1) for p in PURPOSES}
    assert current_text(clinic.pk, Purpose.RESEARCH).body == DEFAULT_TEXTS[Purpose.RESEARCH]


# ---- is_allowed -----------------------------------------------------------------------------

def test_no_decision_means_not_allowed(cast: Cast) -> None:
    assert latest_decision(cast.client_a, Purpose.VIDEO_RECORDING) is None
    assert is_allowed(cast.client_a, Purpose.VIDEO_RECORDING) is False
    assert is_allowed(cast.client_b, Purpose.TRANSCRIPTION) is False


def test_grant_allows_and_revoke_disallows_at_once(cast: Cast) -> None:
    grant(cast, Purpose.VIDEO_RECORDING)
    assert is_allowed(cast.client_a, Purpose.VIDEO_RECORDING) is True
    assert last_event().event_type == "consent.granted"
    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.VIDEO_RECORDING,
           method=Method.PAPER_ATTESTED)
    # Same objects, no reload: nothing is cached between the question and the answer.
    assert is_allowed(cast.client_a, Purpose.VIDEO_RECORDING) is False
    assert last_event().event_type == "consent.revoked"
    # Other purposes and other clients are untouched.
    assert is_allowed(cast.client_a, Purpose.AUDIO_RECORDING) is True
    assert is_allowed(cast.client_b, Purpose.VIDEO_RECORDING) is False


def test_refusal_without_earlier_grant_is_a_refusal_not_a_revocation(cast: Cast) -> None:
    grant(cast, Purpose.TEACHING, granted=False)
    assert last_event().event_type == "consent.refused"
    assert is_allowed(cast.client_a, Purpose.TEACHING) is False


def test_latest_decision_wins_even_if_the_clock_went_backwards(cast: Cast) -> None:
    decision = grant(cast, Purpose.RESEARCH)
    revoke(actor=cast.therapist_a, client=cast.client_a, purpose=Purpose.RESEARCH,
           method=Method.PAPER_ATTESTED)
    # The earlier grant carries a *later* timestamp, as after an NTP step backwards.
    ConsentDecision.objects.filter(pk=decision.pk).update(
        recorded_at=timezone.now() + dt.timedelta(hours=1))
    assert is_allowed(cast.client_a, Purpose.RESEARCH) is False
    latest = current_status(cast.client_a)[Purpose.RESEARCH]
    assert latest is not None and not latest.granted


def test_decision_records_version_recorder_time_and_method(cast: Cast) -> None:
    before = timezone.now()
    decision = grant(cast, Purpose.AUTOMATED_ANALYSIS)
    decision.refresh_from_db()
    assert decision.text.version == 1
    assert decision.text.clinic_id == cast.clinic.pk
    assert decision.recorded_by == cast.therapist_a
    assert before <= decision.recorded_at <= timezone.now()
    assert decision.method == Method.PAPER_ATTESTED
    event = last_event()
    assert event.changes == {"purpose": "automated_analysis", "granted": True,
                             "method": "paper_attested", "text_version": 1}
    assert (event.actor_id, event.client_id) == (cast.therapist_a.public_id,
                                                 cast.client_a.public_id)


def test_republished_text_is_version_2_and_old_decisions_keep_version_1(cast: Cast) -> None:
    old = latest_decision(cast.client_a, Purpose.AUDIO_RECORDING)
    assert old is not None and old.text.version == 1
    new_text = publish_consent_text(actor=cast.admin, clinic=cast.clinic,
                                    purpose=Purpose.AUDIO_RECORDING, body="  Clearer wording.  ")
    assert (new_text.version, new_text.body) == (2, "Clearer wording.")
    assert current_text(cast.clinic.pk, Purpose.AUDIO_RECORDING) == new_text
    old.refresh_from_db()
    assert old.text.version == 1
    assert ConsentText.objects.get(pk=old.text.pk).body == DEFAULT_TEXTS[Purpose.AUDIO_RECORDING]
    newer = grant(cast, Purpose.AUDIO_RECORDING)
    assert newer.text == new_text
    # The other clinic's wording is its own.
    assert current_text(cast.other_clinic.pk, Purpose.AUDIO_RECORDING).version == 1
    event = AuditEvent.objects.get(event_type="consent_text.published")
    assert event.changes == {"purpose": "audio_recording", "old_version": 1, "new_version": 2}


# ---- refusals -------------------------------------------------------------------------------

def test_unknown_purpose_raises_value_error(cast: Cast) -> None:
    with pytest.raises(ValueError, match="unknown consent purpose"):
        is_allowed(cast.client_a, "mind_reading")
    with pytest.raises(ValueError, match="unknown consent purpose"):
        revoke(actor=cast.therapist_a, client=cast.client_a, purpose="mind_reading",
               method=Method.PAPER_ATTESTED)
    with pytest.raises(ValueError, match="unknown consent purpose"):
        record_decision(actor=cast.therapist_a, client=cast.client_a, purpose="mind_reading",
                        granted=True, method=Method.PAPER_ATTESTED,
                        text=current_text(cast.clinic.pk, Purpose.RESEARCH))
    with pytest.raises(ValueError, match="unknown consent purpose"):
        publish_consent_text(actor=cast.admin, clinic=cast.clinic, purpose="mind_reading",
                             body="x")


def _refused(cast: Cast, **overrides: object) -> ValueError:
    arguments: dict[str, object] = {
        "actor": cast.therapist_a, "client": cast.client_a, "purpose": Purpose.TEACHING,
        "granted": True, "method": Method.PAPER_ATTESTED,
        "text": current_text(cast.clinic.pk, Purpose.TEACHING),
    }
    arguments.update(overrides)
    before = (ConsentDecision.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValueError) as failure:
        record_decision(**arguments)  # type: ignore[arg-type]
    assert (ConsentDecision.objects.count(), AuditEvent.objects.count()) == before
    assert is_allowed(cast.client_a, Purpose.TEACHING) is False
    return failure.value


def test_text_of_another_clinic_is_refused(cast: Cast) -> None:
    error = _refused(cast, text=current_text(cast.other_clinic.pk, Purpose.TEACHING))
    assert "does not belong" in str(error)


def test_text_of_another_purpose_is_refused(cast: Cast) -> None:
    error = _refused(cast, text=current_text(cast.clinic.pk, Purpose.RESEARCH))
    assert "does not belong" in str(error)


def test_outdated_text_is_refused(cast: Cast) -> None:
    old = current_text(cast.clinic.pk, Purpose.TEACHING)
    publish_consent_text(actor=cast.admin, clinic=cast.clinic, purpose=Purpose.TEACHING,
                         body="Version two.")
    error = _refused(cast, text=old)
    assert isinstance(error, StaleConsentText)


def test_method_must_match_who_records(cast: Cast) -> None:
    assert "Only the client" in str(_refused(cast, method=Method.CLIENT_ONLINE))
    assert "staff" in str(_refused(cast, actor=cast.client_user_a))
    assert "unknown consent method" in str(_refused(cast, method="carrier_pigeon"))


def test_empty_wording_cannot_be_published(cast: Cast) -> None:
    with pytest.raises(ValueError, match="empty"):
        publish_consent_text(actor=cast.admin, clinic=cast.clinic, purpose=Purpose.TEACHING,
                             body="   ")
    assert current_text(cast.clinic.pk, Purpose.TEACHING).version == 1


# ---- the client's own portal ----------------------------------------------------------------

def test_client_revokes_online_and_it_applies_at_once(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    assert is_allowed(cast.client_a, Purpose.SUPERVISION_REVIEW) is True
    http = signed_in(cast.client_user_a)
    response = http.post(portal_url(cast, Purpose.SUPERVISION_REVIEW),
                         {"decision": "refuse", "text_version": 1})
    assert response.status_code == 302
    assert is_allowed(cast.client_a, Purpose.SUPERVISION_REVIEW) is False
    decision = latest_decision(cast.client_a, Purpose.SUPERVISION_REVIEW)
    assert decision is not None
    assert (decision.method, decision.recorded_by, decision.text.version) == (
        Method.CLIENT_ONLINE, cast.client_user_a, 1)
    event = last_event()
    assert (event.event_type, event.actor_id, event.client_id) == (
        "consent.revoked", cast.client_user_a.public_id, cast.client_a.public_id)
    assert any("Withdrawn" in m for m in messages_of(response))


def test_client_grants_online(cast: Cast, signed_in: Callable[[User], HttpClient]) -> None:
    http = signed_in(cast.client_user_a)
    http.post(portal_url(cast, Purpose.RESEARCH), {"decision": "grant", "text_version": 1})
    assert is_allowed(cast.client_a, Purpose.RESEARCH) is True
    assert last_event().event_type == "consent.granted"


def test_client_refusing_something_never_granted_is_a_refusal(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.client_user_a)
    http.post(portal_url(cast, Purpose.TEACHING), {"decision": "refuse", "text_version": 1})
    assert last_event().event_type == "consent.refused"


def test_stale_text_version_is_refused_with_a_clear_message(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    publish_consent_text(actor=cast.admin, clinic=cast.clinic,
                         purpose=Purpose.SUPERVISION_REVIEW, body="Reworded.")
    decisions = ConsentDecision.objects.count()
    http = signed_in(cast.client_user_a)
    response = http.post(portal_url(cast, Purpose.SUPERVISION_REVIEW),
                         {"decision": "refuse", "text_version": 1})
    assert response.status_code == 302
    assert any("has just changed" in m and "read it again" in m for m in messages_of(response))
    assert ConsentDecision.objects.count() == decisions
    assert is_allowed(cast.client_a, Purpose.SUPERVISION_REVIEW) is True


def test_client_cannot_decide_for_someone_else(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.client_user_b)
    response = http.post(portal_url(cast, Purpose.AUDIO_RECORDING),
                         {"decision": "refuse", "text_version": 1})
    assert response.status_code == 404
    assert is_allowed(cast.client_a, Purpose.AUDIO_RECORDING) is True
    assert last_event().event_type == "authz.denied"


def test_client_sees_their_consent_history(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.client_user_a)
    http.post(portal_url(cast, Purpose.CLIENT_ACCESS), {"decision": "refuse", "text_version": 1})
    page = http.get(f"/me/{cast.client_a.public_id}/consent/").content.decode()
    assert Purpose.CLIENT_ACCESS.label in page
    assert "Not agreed / withdrawn" in page and "Agreed" in page
    assert cast.therapist_a.label() in page  # who recorded the paper consent
    assert "Client, in their own account" in page
    assert DEFAULT_TEXTS[Purpose.RESEARCH].split(".")[0] in page  # the wording is shown


def test_therapist_attests_a_paper_form(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(cast.therapist_b)
    response = http.post(f"/clients/{cast.client_b.public_id}/consent/", {
        "purpose": Purpose.TRANSCRIPTION, "decision": "grant", "text_version": 1,
        "paper_form_signed": "on",
    })
    assert response.status_code == 302
    decision = latest_decision(cast.client_b, Purpose.TRANSCRIPTION)
    assert decision is not None
    assert (decision.granted, decision.method, decision.recorded_by) == (
        True, Method.PAPER_ATTESTED, cast.therapist_b)
    assert is_allowed(cast.client_b, Purpose.TRANSCRIPTION) is True
