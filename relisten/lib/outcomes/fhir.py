"""FHIR R4 interchange for outcome questionnaires (validated with fhir.resources' R4B models,
which read and write R4 JSON for these resources).

    questionnaire_response(defn, record) -> dict      # FHIR QuestionnaireResponse
    total_observation(defn, record) -> dict           # FHIR Observation: the total, LOINC coded
    history_bundle(patient_id, entries, bundle_id, timestamp, base_url) -> dict  # collection
    import_questionnaire_response(defn, qr) -> dict[link_id, int]   # raises FhirError
    validate(resource) -> None                        # raises FhirError

Exports carry no names: the subject is `Patient/<the client's public id>`. Imports accept
answers as `valueCoding` (the LOINC answer codes of the questionnaire, plus the known
alternative codes in ANSWER_CODE_ALIASES) or `valueInteger` (the item score); whether every
question was answered is score()'s business.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from relisten.lib.outcomes.instruments import LOINC, InstrumentDef, ItemDef

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# LOINC's answer list for GAD-7 item 2 (68509-9) says "More days than not" (LA18938-3) where the
# form says "More than half the days" (LA6570-1); both are the score 2.
ANSWER_CODE_ALIASES = {"LA18938-3": "LA6570-1"}
FINISHED = ("completed", "amended")


class FhirError(ValueError):
    """The resource is not valid FHIR or does not fit the questionnaire; plain-words message."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)


@dataclass(frozen=True)
class ResponseRecord:
    """One stored response, as plain data (the app builds it from its rows)."""

    response_id: str
    patient_id: str
    authored: datetime
    answers: Mapping[str, int]
    total: int
    band: str = ""


def validate(resource: Mapping[str, Any]) -> None:
    kind = str(resource.get("resourceType", ""))
    try:
        model = get_fhir_model_class(kind)
    except ValueError as error:
        raise FhirError(f"{kind or 'This'} is not a FHIR resource type.") from error
    try:
        model.model_validate(dict(resource))
    except ValidationError as error:
        problems = [f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"
                    for detail in error.errors()]
        raise FhirError(f"The {kind} is not valid FHIR ({len(problems)} problems).",
                        problems) from error


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("FHIR date-times need a time zone")
    return moment.isoformat()


def _answer(item: ItemDef, value: int) -> dict[str, Any]:
    option = item.option_for_score(value)
    if option is None:
        raise ValueError(f"{value} is not a score of question {item.link_id}")
    if not option.code:
        return {"valueInteger": value}
    coding = {"system": option.system, "code": option.code, "display": option.display}
    return {"valueCoding": {key: text for key, text in coding.items() if text}}


def questionnaire_response(defn: InstrumentDef, record: ResponseRecord) -> dict[str, Any]:
    canonical = f"{defn.url}|{defn.version}" if defn.url and defn.version else defn.url
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": record.response_id,
        "status": "completed",
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "authored": _stamp(record.authored),
        "item": [{"linkId": item.link_id, "text": item.text,
                  "answer": [_answer(item, record.answers[item.link_id])]}
                 for item in defn.items],
    }
    if canonical:
        resource["questionnaire"] = canonical
    return resource


def total_observation(defn: InstrumentDef, record: ResponseRecord) -> dict[str, Any]:
    code: dict[str, Any] = {"text": f"{defn.name} total score"}
    if defn.loinc_total:
        code["coding"] = [{"system": LOINC, "code": defn.loinc_total}]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{record.response_id}-total",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey",
                                  "display": "Survey"}]}],
        "code": code,
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "effectiveDateTime": _stamp(record.authored),
        "valueInteger": record.total,
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{record.response_id}"}],
    }
    if record.band:
        resource["interpretation"] = [{"text": record.band}]
    return resource


def history_bundle(patient_id: str, entries: Sequence[tuple[InstrumentDef, ResponseRecord]],
                   *, bundle_id: str, timestamp: datetime, base_url: str) -> dict[str, Any]:
    """A client's responses, oldest first, each with its total, as a `collection` Bundle."""
    base = base_url.rstrip("/")
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": patient_id}]
    for defn, record in sorted(entries, key=lambda entry: entry[1].authored):
        if record.patient_id != patient_id:
            raise ValueError("every response in a history must be the same client's")
        resources.append(questionnaire_response(defn, record))
        resources.append(total_observation(defn, record))
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": _stamp(timestamp),
        "entry": [{"fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                   "resource": resource} for resource in resources],
    }


# ---- import --------------------------------------------------------------------------------

def _walk(items: object) -> Iterator[Mapping[str, Any]]:
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, Mapping):
            yield item
            yield from _walk(item.get("item"))
            for answer in item.get("answer") or []:
                if isinstance(answer, Mapping):
                    yield from _walk(answer.get("item"))


def _lookup(defn: InstrumentDef) -> dict[str, ItemDef]:
    """linkId → item, also under the LOINC code and with LHC-Forms' leading slash."""
    found: dict[str, ItemDef] = {}
    for item in defn.items:
        for key in (item.link_id, item.loinc):
            if key:
                found[key] = item
                found[f"/{key}"] = item
    return found


def _value(item: ItemDef, answer: Mapping[str, Any], position: int) -> tuple[int | None, str]:
    coding = answer.get("valueCoding")
    if isinstance(coding, Mapping):
        code = str(coding.get("code", ""))
        option = item.option_for_code(ANSWER_CODE_ALIASES.get(code, code))
        if option is None:
            return None, f"question {position}: answer code {code!r} is not one of its choices"
        return option.score, ""
    number = answer.get("valueInteger", answer.get("valueDecimal"))
    if isinstance(number, int | float) and not isinstance(number, bool) and number == int(number):
        if int(number) in item.scores:
            return int(number), ""
    return None, f"question {position}: the answer is not one of its choices"


def import_questionnaire_response(defn: InstrumentDef,
                                  qr: Mapping[str, Any]) -> dict[str, int]:
    if qr.get("resourceType") != "QuestionnaireResponse":
        raise FhirError("This file is not a FHIR QuestionnaireResponse.")
    validate(qr)
    if qr.get("status") not in FINISHED:
        raise FhirError("This questionnaire response is not finished (its status is "
                        f"{qr.get('status')!r}); only completed responses can be imported.")
    lookup = _lookup(defn)
    position = {item.link_id: index for index, item in enumerate(defn.items, start=1)}
    values: dict[str, int] = {}
    problems: list[str] = []
    unknown: list[str] = []
    for entry in _walk(qr.get("item")):
        link_id = str(entry.get("linkId", ""))
        item = lookup.get(link_id)
        answers = [answer for answer in entry.get("answer") or [] if isinstance(answer, Mapping)]
        if item is None:
            known = link_id in defn.known_link_ids or link_id.lstrip("/") in defn.known_link_ids
            if answers and not known:
                unknown.append(link_id)
            continue
        number = position[item.link_id]
        if item.link_id in values or len(answers) > 1:
            problems.append(f"question {number} is answered more than once")
            continue
        if not answers:
            continue
        value, problem = _value(item, answers[0], number)
        if value is None:
            problems.append(problem)
        else:
            values[item.link_id] = value
    if unknown:
        problems.append(f"{len(unknown)} answers are for questions that {defn.name} does not "
                        "have")
    if problems:
        raise FhirError(f"This response does not fit {defn.name}: " + "; ".join(problems) + ".",
                        problems)
    return values
