"""FHIR R4 interchange: export responses (QuestionnaireResponse + total Observation, a client's
history as a Bundle), import QuestionnaireResponses, all checked with fhir.resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from relisten.lib.outcomes.fhir import (
    FhirError,
    ResponseRecord,
    history_bundle,
    import_questionnaire_response,
    questionnaire_response,
    total_observation,
    validate,
)
from relisten.lib.outcomes.instruments import InstrumentDef, load_questionnaire
from relisten.lib.outcomes.scoring import score

INSTRUMENTS = Path(__file__).resolve().parent.parent / "relisten" / "outcomes" / "instruments"
PATIENT = "6a1c4b0e-3f0e-4d8e-9d55-0c1f6f1f2a01"
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def shipped(code: str) -> InstrumentDef:
    return load_questionnaire(json.loads((INSTRUMENTS / f"{code}.json").read_text()),
                              json.loads((INSTRUMENTS / f"{code}.scoring.json").read_text()))


@pytest.fixture(scope="module")
def phq9() -> InstrumentDef:
    return shipped("phq-9")


@pytest.fixture(scope="module")
def gad7() -> InstrumentDef:
    return shipped("gad-7")


def record(defn: InstrumentDef, values: list[int], response_id: str,
           when: datetime = WHEN) -> ResponseRecord:
    answers = dict(zip(defn.link_ids, values, strict=True))
    scored = score(defn, answers)
    return ResponseRecord(response_id=response_id, patient_id=PATIENT, authored=when,
                          answers=answers, total=scored.total, band=scored.band)


@pytest.mark.parametrize("code", ["phq-9", "gad-7"])
def test_shipped_questionnaires_are_valid_fhir(code: str):
    Questionnaire.model_validate(json.loads((INSTRUMENTS / f"{code}.json").read_text()))


def test_response_exports_as_a_valid_questionnaire_response(phq9: InstrumentDef):
    rec = record(phq9, [1, 2, 3, 0, 1, 2, 3, 0, 1], "resp-1")
    resource = questionnaire_response(phq9, rec)
    parsed = QuestionnaireResponse.model_validate(resource)
    assert parsed.status == "completed"
    assert parsed.questionnaire == "https://relisten.app/fhir/Questionnaire/phq-9|1"
    assert parsed.subject.reference == f"Patient/{PATIENT}"
    assert [item.linkId for item in parsed.item] == list(phq9.link_ids)
    assert [item.answer[0].valueCoding.code for item in parsed.item] == [
        "LA6569-3", "LA6570-1", "LA6571-9", "LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9",
        "LA6568-5", "LA6569-3"]
    assert parsed.item[0].answer[0].valueCoding.system == "http://loinc.org"


def test_total_exports_as_a_loinc_coded_observation(phq9: InstrumentDef, gad7: InstrumentDef):
    rec = record(phq9, [1, 2, 3, 0, 1, 2, 3, 0, 1], "resp-1")
    parsed = Observation.model_validate(total_observation(phq9, rec))
    assert (parsed.code.coding[0].system, parsed.code.coding[0].code) == (
        "http://loinc.org", "44261-6")
    assert parsed.valueInteger == 13 and parsed.interpretation[0].text == "Moderate"
    assert parsed.category[0].coding[0].code == "survey"
    assert parsed.derivedFrom[0].reference == "QuestionnaireResponse/resp-1"
    gad = Observation.model_validate(total_observation(gad7, record(gad7, [3] * 7, "g-1")))
    assert (gad.code.coding[0].code, gad.valueInteger) == ("70274-6", 21)


def test_history_bundle_holds_every_response_and_total_in_time_order(phq9: InstrumentDef,
                                                                      gad7: InstrumentDef):
    later = record(phq9, [0] * 9, "phq-end", WHEN + timedelta(days=90))
    first = record(phq9, [2] * 9, "phq-intake")
    anxiety = record(gad7, [1] * 7, "gad-intake", WHEN + timedelta(minutes=5))
    bundle = history_bundle(PATIENT, [(phq9, later), (phq9, first), (gad7, anxiety)],
                            bundle_id="history-1", timestamp=WHEN + timedelta(days=91),
                            base_url="https://relisten.example/fhir/")
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    kinds = [(entry.resource.get_resource_type(), entry.resource.id) for entry in parsed.entry]
    assert kinds == [("Patient", PATIENT),
                     ("QuestionnaireResponse", "phq-intake"), ("Observation", "phq-intake-total"),
                     ("QuestionnaireResponse", "gad-intake"), ("Observation", "gad-intake-total"),
                     ("QuestionnaireResponse", "phq-end"), ("Observation", "phq-end-total")]
    assert parsed.entry[1].fullUrl == (
        "https://relisten.example/fhir/QuestionnaireResponse/phq-intake")
    totals = [entry.resource.valueInteger for entry in parsed.entry
              if entry.resource.get_resource_type() == "Observation"]
    assert totals == [18, 7, 0]
    assert "name" not in bundle["entry"][0]["resource"]  # no identifying details


def test_history_refuses_another_clients_response(phq9: InstrumentDef):
    other = ResponseRecord(response_id="x", patient_id="someone-else", authored=WHEN,
                           answers=dict.fromkeys(phq9.link_ids, 0), total=0)
    with pytest.raises(ValueError, match="same client"):
        history_bundle(PATIENT, [(phq9, other)], bundle_id="b", timestamp=WHEN,
                       base_url="https://relisten.example/fhir")


def test_export_then_import_round_trips(phq9: InstrumentDef):
    rec = record(phq9, [3, 2, 1, 0, 3, 2, 1, 0, 2], "resp-2")
    assert import_questionnaire_response(phq9, questionnaire_response(phq9, rec)) == rec.answers


def gad7_response(answers: list[dict[str, Any]], link_prefix: str = "/") -> dict[str, Any]:
    codes = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "item": [{"linkId": "/group", "item": [
                {"linkId": f"{link_prefix}{code}", "answer": [answer]}
                for code, answer in zip(codes, answers, strict=True)]}]}


def coding(code: str, display: str = "") -> dict[str, Any]:
    value = {"system": "http://loinc.org", "code": code} | ({"display": display} if display else {})
    return {"valueCoding": value}


def test_import_maps_more_days_than_not_on_gad7_item_2_to_2(gad7: InstrumentDef):
    """LOINC's answer list for 68509-9 uses LA18938-3 "More days than not" for the score 2."""
    qr = gad7_response([coding("LA6569-3"), coding("LA18938-3", "More days than not"),
                        coding("LA6568-5"), coding("LA6571-9"), coding("LA6570-1"),
                        {"valueInteger": 0}, {"valueInteger": 3}])
    values = import_questionnaire_response(gad7, qr)
    assert values == {"69725-0": 1, "68509-9": 2, "69733-4": 0, "69734-2": 3, "69735-9": 2,
                      "69689-8": 0, "69736-7": 3}
    assert score(gad7, values).total == 11


@pytest.mark.skipif(not (INSTRUMENTS.parent.parent.parent.parent / "shared").is_dir(),
                    reason="../shared is absent")
def test_import_an_lhc_forms_response_with_slashed_link_ids_and_extra_items(phq9: InstrumentDef):
    items = [{"linkId": f"/{item.loinc}", "answer": [coding("LA6570-1")]} for item in phq9.items]
    items.append({"linkId": "/44261-6", "answer": [{"valueDecimal": 18}]})  # the total
    items.append({"linkId": "/69722-7", "answer": [coding("LA6573-5")]})   # how difficult
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
    values = import_questionnaire_response(phq9, qr)
    assert values == dict.fromkeys(phq9.link_ids, 2)


@pytest.mark.parametrize(("qr", "message"), [
    ({"resourceType": "Observation"}, "not a FHIR QuestionnaireResponse"),
    ({"resourceType": "QuestionnaireResponse", "status": "completed",
      "authored": "last Tuesday"}, "not valid FHIR"),
    ({"resourceType": "QuestionnaireResponse", "status": "in-progress"}, "not finished"),
])
def test_import_refuses_what_is_not_a_finished_response(gad7: InstrumentDef,
                                                        qr: dict[str, Any], message: str):
    with pytest.raises(FhirError, match=message):
        import_questionnaire_response(gad7, qr)


def test_import_names_answers_that_do_not_fit(gad7: InstrumentDef):
    qr = gad7_response([coding("LA9999-9"), {"valueInteger": 4}, coding("LA6568-5"),
                        coding("LA6568-5"), coding("LA6568-5"), coding("LA6568-5"),
                        coding("LA6568-5")])
    qr["item"].append({"linkId": "not-in-gad7", "answer": [{"valueInteger": 1}]})
    with pytest.raises(FhirError) as error:
        import_questionnaire_response(gad7, qr)
    assert error.value.problems == (
        "question 1: answer code 'LA9999-9' is not one of its choices",
        "question 2: the answer is not one of its choices",
        "1 answers are for questions that GAD-7 (Generalized Anxiety Disorder-7) does not have")


def test_an_incomplete_import_is_left_for_score_to_refuse(gad7: InstrumentDef):
    qr = gad7_response([coding("LA6568-5")] * 7)
    qr["item"][0]["item"].pop()
    values = import_questionnaire_response(gad7, qr)
    assert len(values) == 6
    with pytest.raises(ValueError, match="question 7"):
        score(gad7, values)


def test_validate_reports_the_invalid_field():
    with pytest.raises(FhirError) as error:
        validate({"resourceType": "Observation", "status": "final",
                  "code": {"text": "x"}, "valueInteger": "many"})
    assert any(problem.startswith("valueInteger") for problem in error.value.problems)
    with pytest.raises(FhirError, match="not a FHIR resource type"):
        validate({"resourceType": "Nonsense"})
