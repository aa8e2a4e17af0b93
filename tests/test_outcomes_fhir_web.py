"""FHIR in the web app: a response or an episode's history downloaded as a FHIR Bundle (audited,
no names), and a QuestionnaireResponse imported into an episode (validated, scored, alerts)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.clients.models import Episode
from relisten.core.personas import Cast
from relisten.outcomes import actions
from relisten.outcomes.builtin import definition_of, load_builtin_instruments
from relisten.outcomes.models import Alert, AlertKind, Instrument, Response, Source, TimePoint

SignedIn = Callable[[User], HttpClient]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8"]
AUTHORED = "2026-03-02T09:30:00+00:00"


def instrument(code: str) -> Instrument:
    load_builtin_instruments()
    return Instrument.objects.get(code=code, clinic=None, active=True)


def episode_of(cast: Cast, which: str = "a") -> Episode:
    return (cast.client_a if which == "a" else cast.client_b).episodes.get()


def stored(cast: Cast, code: str, values: list[int], *, days_ago: int = 10,
           which: str = "a") -> Response:
    """A response answered in Relisten (by the client, through the ordinary action's rows)."""
    from relisten.outcomes.models import Due

    form = instrument(code)
    due = Due.objects.create(episode=episode_of(cast, which), instrument=form,
                             time_point=TimePoint.SESSION,
                             due_at=timezone.now() - dt.timedelta(days=days_ago))
    items = GAD7_ITEMS if code == "gad-7" else PHQ9_ITEMS
    response = actions.submit_answers(due=due, answers=dict(zip(items, values, strict=True)),
                                      source=Source.PORTAL, actor=None)
    Response.objects.filter(pk=response.pk).update(
        answered_at=timezone.now() - dt.timedelta(days=days_ago))
    response.refresh_from_db()
    return response


def gad7_qr(values: list[int], *, codes: dict[int, str] | None = None,
            questionnaire: str = "http://loinc.org/q/69737-5") -> dict[str, Any]:
    """A GAD-7 QuestionnaireResponse as another system (e.g. LHC-Forms) writes it: LOINC answer
    codes; `codes` overrides the code at an item position (1-based)."""
    defn = definition_of(instrument("gad-7"))
    items = []
    for number, (item, value) in enumerate(zip(defn.items, values, strict=True), start=1):
        option = item.option_for_score(value)
        assert option is not None
        code = (codes or {}).get(number, option.code)
        items.append({"linkId": f"/{item.link_id}", "text": item.text,
                      "answer": [{"valueCoding": {"system": "http://loinc.org", "code": code}}]})
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": questionnaire, "authored": AUTHORED,
            "subject": {"reference": "Patient/elsewhere-123"}, "item": items}


def import_url(episode: Episode) -> str:
    return reverse("outcomes:fhir_import", kwargs={"episode_id": episode.public_id})


def post_json(http: HttpClient, episode: Episode, resource: object,
              time_point: str = TimePoint.INTAKE) -> Any:
    return http.post(import_url(episode), {"text": json.dumps(resource),
                                           "time_point": time_point})


def bundle_of(download: Any) -> dict[str, Any]:
    assert download.status_code == 200
    assert download["Content-Type"] == "application/fhir+json"
    body: dict[str, Any] = json.loads(download.content)
    Bundle.model_validate(body)  # valid FHIR, or this raises
    return body


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == kind]


# ---- export ----------------------------------------------------------------------------------

def test_a_response_downloads_as_a_valid_bundle_with_its_loinc_total(
        cast: Cast, signed_in: SignedIn) -> None:
    response = stored(cast, "phq-9", [1, 2, 0, 3, 1, 0, 2, 1, 0])
    download = signed_in(cast.therapist_a).get(
        reverse("outcomes:response_fhir", kwargs={"response_id": response.public_id}))

    bundle = bundle_of(download)
    assert bundle["type"] == "collection"
    [qr] = resources(bundle, "QuestionnaireResponse")
    [total] = resources(bundle, "Observation")
    assert qr["id"] == str(response.public_id)
    assert qr["subject"]["reference"] == f"Patient/{cast.client_a.public_id}"
    assert [item["answer"][0]["valueCoding"]["code"] for item in qr["item"]][:2] == [
        "LA6569-3", "LA6570-1"]
    assert total["code"]["coding"][0] == {"system": "http://loinc.org", "code": "44261-6"}
    assert total["valueInteger"] == 10
    disposition = download["Content-Disposition"]
    assert disposition.startswith('attachment; filename="phq-9-')
    assert disposition.endswith('.fhir.json"')
    for name in (cast.client_a.given_name, cast.client_a.family_name):
        assert name.lower() not in disposition.lower()
        assert name not in download.content.decode()


def test_a_download_is_audited_without_the_answers(cast: Cast, signed_in: SignedIn) -> None:
    response = stored(cast, "phq-9", [3, 3, 3, 3, 3, 3, 3, 3, 0])
    signed_in(cast.supervisor).get(
        reverse("outcomes:response_fhir", kwargs={"response_id": response.public_id}))

    event = AuditEvent.objects.filter(event_type="outcomes.exported").get()
    assert event.actor_id == cast.supervisor.public_id
    assert event.client_id == cast.client_a.public_id
    assert event.target_id == str(response.public_id)
    assert event.changes == {"format": "fhir+json", "scope": "response", "responses": 1}


def test_the_episode_history_holds_every_response_oldest_first(
        cast: Cast, signed_in: SignedIn) -> None:
    later = stored(cast, "gad-7", [0, 1, 0, 1, 0, 1, 0], days_ago=2)
    first = stored(cast, "phq-9", [2, 2, 2, 2, 2, 2, 2, 2, 0], days_ago=30)
    stored(cast, "phq-9", [0] * 9, days_ago=5, which="b")  # someone else's: never included
    episode = episode_of(cast)

    download = signed_in(cast.therapist_a).get(
        reverse("outcomes:episode_fhir", kwargs={"episode_id": episode.public_id}))

    bundle = bundle_of(download)
    assert [qr["id"] for qr in resources(bundle, "QuestionnaireResponse")] == [
        str(first.public_id), str(later.public_id)]
    assert [obs["valueInteger"] for obs in resources(bundle, "Observation")] == [16, 3]
    assert [obs["code"]["coding"][0]["code"] for obs in resources(bundle, "Observation")] == [
        "44261-6", "70274-6"]
    assert "questionnaires-episode-" in download["Content-Disposition"]
    event = AuditEvent.objects.filter(event_type="outcomes.exported").get()
    assert event.changes["scope"] == "episode" and event.changes["responses"] == 2


# ---- import ----------------------------------------------------------------------------------

def test_a_gad7_with_more_days_than_not_imports_as_2(cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    qr = gad7_qr([1, 2, 0, 1, 3, 0, 1], codes={2: "LA18938-3"})  # "More days than not"

    page = post_json(signed_in(cast.therapist_a), episode, qr)

    assert page.status_code == 302
    assert page["Location"] == reverse("clients:episode", kwargs={"episode_id":
                                                                  episode.public_id})
    response = Response.objects.get(episode=episode)
    assert response.source == Source.IMPORT
    assert response.entered_by == cast.therapist_a
    assert response.due is None and response.time_point == TimePoint.INTAKE
    assert response.answered_at == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    values = dict(response.items.values_list("link_id", "value"))
    assert values["68509-9"] == 2
    assert response.items.get(link_id="68509-9").answer_code == "LA6570-1"
    assert response.total == 8 and response.band
    event = AuditEvent.objects.filter(event_type="questionnaire.imported").get()
    assert event.target_id == str(response.public_id)
    assert event.changes == {"instrument": "gad-7", "time_point": "intake", "source": "import"}


@pytest.mark.parametrize("canonical", [
    "http://loinc.org/q/69737-5", "Questionnaire/69737-5",
    "https://relisten.app/fhir/Questionnaire/gad-7|1",
    "https://relisten.app/fhir/Questionnaire/gad-7",
    "https://relisten.app/fhir/Questionnaire/gad-7|7",  # another version of ours
])
def test_the_questionnaire_is_recognised_by_our_url_or_its_loinc_panel(
        cast: Cast, signed_in: SignedIn, canonical: str) -> None:
    page = post_json(signed_in(cast.therapist_a), episode_of(cast),
                     gad7_qr([1] * 7, questionnaire=canonical))
    assert page.status_code == 302
    assert Response.objects.get().instrument.code == "gad-7"


def test_an_uploaded_file_imports_too(cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    upload = SimpleUploadedFile("gad7.json", json.dumps(gad7_qr([0] * 7)).encode(),
                                content_type="application/fhir+json")
    page = signed_in(cast.therapist_a).post(import_url(episode),
                                            {"file": upload, "time_point": "fu3"})
    assert page.status_code == 302
    assert Response.objects.get(episode=episode).time_point == "fu3"


def test_export_then_import_into_another_episode_gives_the_same_answers(
        cast: Cast, signed_in: SignedIn) -> None:
    original = stored(cast, "gad-7", [3, 2, 1, 0, 1, 2, 3])
    download = signed_in(cast.therapist_a).get(
        reverse("outcomes:response_fhir", kwargs={"response_id": original.public_id}))
    other = episode_of(cast, "b")

    page = signed_in(cast.therapist_b).post(import_url(other), {
        "file": SimpleUploadedFile("x.fhir.json", download.content), "time_point": "session"})

    assert page.status_code == 302
    copy = Response.objects.get(episode=other)
    assert copy.instrument == original.instrument  # matched by our canonical URL
    assert dict(copy.items.values_list("link_id", "value")) == dict(
        original.items.values_list("link_id", "value"))
    assert (copy.total, copy.band, copy.answered_at) == (original.total, original.band,
                                                         original.answered_at)


def test_an_imported_phq9_with_item_9_above_0_raises_a_risk_alert(
        cast: Cast, signed_in: SignedIn) -> None:
    defn = definition_of(instrument("phq-9"))
    values = [1, 1, 1, 1, 1, 1, 1, 1, 2]
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed",
          "questionnaire": "http://loinc.org/q/44249-1", "authored": "2026-03-01",
          "item": [{"linkId": item.link_id, "answer": [{"valueInteger": value}]}
                   for item, value in zip(defn.items, values, strict=True)]}
    episode = episode_of(cast)

    assert post_json(signed_in(cast.therapist_a), episode, qr).status_code == 302

    alert = Alert.objects.get(episode=episode)
    assert alert.kind == AlertKind.RISK_ITEM and alert.acknowledged_at is None


@pytest.mark.parametrize(("body", "message"), [
    ("{not json", "This is not valid JSON (line 1"),
    (json.dumps({"resourceType": "Patient"}), "This is a FHIR Patient, not a Questionnaire"),
    (json.dumps([1, 2]), "not a FHIR resource"),
    ("", "Please choose a file or paste the JSON"),
])
def test_unreadable_input_is_refused_plainly(cast: Cast, signed_in: SignedIn, body: str,
                                             message: str) -> None:
    episode = episode_of(cast)
    page = signed_in(cast.therapist_a).post(import_url(episode),
                                            {"text": body, "time_point": "intake"})
    assert page.status_code == 400
    assert "Nothing was imported." in page.content.decode()
    assert message in page.content.decode().replace("&#x27;", "'")
    assert not Response.objects.exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda qr: qr.update(status="in-progress"), "only completed responses can be imported"),
    (lambda qr: qr["item"][0].update(answer=[{"valueInteger": "x"}]), "is not valid FHIR"),
    (lambda qr: qr["item"][0].update(answer=[{"valueInteger": "x"}]),
     "item.0.answer.0.valueInteger: Input should be a valid integer"),
    (lambda qr: qr.update(questionnaire="http://example.org/q/unknown"),
     "does not know the questionnaire"),
    (lambda qr: qr.pop("questionnaire"), "does not say which questionnaire"),
    (lambda qr: qr.pop("authored"), "has no 'authored' date"),
    (lambda qr: qr.update(authored="2999-01-01T00:00:00Z"), "in the future"),
    (lambda qr: qr["item"].pop(3), "no answer to question 4"),
    (lambda qr: qr["item"][1]["answer"][0]["valueCoding"].update(code="LA9999-9"),
     "question 2: answer code 'LA9999-9' is not one of its choices"),
])
def test_a_response_that_does_not_fit_saves_nothing_and_says_why(
        cast: Cast, signed_in: SignedIn, change: Callable[[dict[str, Any]], object],
        message: str) -> None:
    qr = gad7_qr([1, 1, 1, 1, 1, 1, 1])
    change(qr)
    page = post_json(signed_in(cast.therapist_a), episode_of(cast), qr)
    text = page.content.decode().replace("&#x27;", "'")
    assert page.status_code == 400
    assert message in text
    assert not Response.objects.exists()
    assert not AuditEvent.objects.filter(event_type="questionnaire.imported").exists()


def test_the_same_response_twice_is_imported_once(cast: Cast, signed_in: SignedIn) -> None:
    http, episode = signed_in(cast.therapist_a), episode_of(cast)
    assert post_json(http, episode, gad7_qr([0] * 7)).status_code == 302
    again = post_json(http, episode, gad7_qr([0] * 7))
    assert again.status_code == 400
    assert "looks imported already" in again.content.decode()
    assert Response.objects.count() == 1


# ---- who may ---------------------------------------------------------------------------------

def test_the_supervisor_may_download_but_not_import(cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    http = signed_in(cast.supervisor)
    assert http.get(reverse("outcomes:episode_fhir",
                            kwargs={"episode_id": episode.public_id})).status_code == 200
    assert http.get(import_url(episode)).status_code == 403
    assert post_json(http, episode, gad7_qr([0] * 7)).status_code == 403
    assert not Response.objects.exists()


def test_clients_and_other_therapists_get_not_found(cast: Cast, signed_in: SignedIn) -> None:
    response = stored(cast, "phq-9", [0] * 9)
    url = reverse("outcomes:response_fhir", kwargs={"response_id": response.public_id})
    for user in (cast.client_user_a, cast.therapist_b, cast.other_clinic_therapist):
        assert signed_in(user).get(url).status_code == 404
        assert post_json(signed_in(user), episode_of(cast), gad7_qr([0] * 7)).status_code == 404
    assert not AuditEvent.objects.filter(event_type="outcomes.exported").exists()


def test_the_episode_page_links_download_and_import_for_its_therapist(
        cast: Cast, signed_in: SignedIn) -> None:
    episode = episode_of(cast)
    page_url = reverse("clients:episode", kwargs={"episode_id": episode.public_id})
    mine = signed_in(cast.therapist_a).get(page_url).content.decode()
    supervised = signed_in(cast.supervisor).get(page_url).content.decode()
    assert import_url(episode) in mine and import_url(episode) not in supervised
    export = reverse("outcomes:episode_fhir", kwargs={"episode_id": episode.public_id})
    assert export in mine and export in supervised
