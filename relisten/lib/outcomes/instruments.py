"""Outcome questionnaires as data: a FHIR R4 Questionnaire plus its scoring rules.

Public API (the outcomes app codes against exactly this)::

    load_questionnaire(fhir_json, scoring=None) -> InstrumentDef     # raises InstrumentError
    load_scoring(scoring_json, items) -> ScoringRules                # raises InstrumentError
    InstrumentDef(code, name, loinc_panel, loinc_total, items, stem, copyright, scoring,
                  version, url, other_items, known_link_ids)   .item(link_id)  .link_ids
    ItemDef(link_id, loinc, text, options: tuple[Option, ...], required)  .scores
    Option(score, code, display, system)
    ScoringRules(total_min, total_max, bands, caseness_at_least, reliable_change_points, rci,
                 risk_items, sources)
    Band(low, high, label)   RiskRule(link_id, above, label)   RciParams(sd, reliability, sources)

Scored items are the Questionnaire's `choice` items whose answer options carry an ordinal value
(extension `ordinalValue`, or the older `iso21090-CO-value` / `itemWeight`); answer options may
come inline or from a contained ValueSet. Other questions (e.g. the PHQ-9 "how difficult" item)
are kept in `other_items`: shown to the client, never added to the total. The scoring rules live
beside the Questionnaire (Instrument.scoring) in the `relisten-outcome-scoring/1` format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOINC = "http://loinc.org"
SCORING_SCHEMA = "relisten-outcome-scoring/1"
ORDINAL_URLS = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)
CODE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,39}$")
MAX_ITEMS = 200


class InstrumentError(ValueError):
    """The questionnaire or its scoring rules cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("This questionnaire cannot be used: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Option:
    score: int
    code: str
    display: str
    system: str = LOINC


@dataclass(frozen=True)
class ItemDef:
    link_id: str
    loinc: str
    text: str
    options: tuple[Option, ...]
    required: bool = True

    @property
    def scores(self) -> tuple[int, ...]:
        return tuple(option.score for option in self.options)

    def option_for_score(self, score: int) -> Option | None:
        return next((option for option in self.options if option.score == score), None)

    def option_for_code(self, code: str) -> Option | None:
        return next((option for option in self.options if option.code == code), None)


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str


@dataclass(frozen=True)
class RiskRule:
    """An item whose answer above `above` needs a clinician's attention at once."""

    link_id: str
    above: int
    label: str


@dataclass(frozen=True)
class RciParams:
    """Jacobson–Truax inputs: the SD of pre-treatment scores and the measure's reliability."""

    sd: float
    reliability: float
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoringRules:
    total_min: int
    total_max: int
    bands: tuple[Band, ...] = ()
    caseness_at_least: int | None = None
    reliable_change_points: int | None = None
    rci: RciParams | None = None
    risk_items: tuple[RiskRule, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstrumentDef:
    code: str
    name: str
    loinc_panel: str
    loinc_total: str
    items: tuple[ItemDef, ...]
    stem: str
    copyright: str
    scoring: ScoringRules
    version: str = ""
    url: str = ""
    other_items: tuple[ItemDef, ...] = ()
    known_link_ids: frozenset[str] = frozenset()  # every linkId, scored or not

    def item(self, link_id: str) -> ItemDef:
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)

    @property
    def link_ids(self) -> tuple[str, ...]:
        return tuple(item.link_id for item in self.items)


# ---- the Questionnaire ---------------------------------------------------------------------

def _loinc_code(codings: object) -> str:
    if not isinstance(codings, list):
        return ""
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("system") == LOINC and coding.get("code"):
            return str(coding["code"])
    return ""


def _walk(items: object) -> Iterator[Mapping[str, Any]]:
    """Every item, groups flattened, in questionnaire order."""
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, Mapping):
            yield item
            yield from _walk(item.get("item"))


def _ordinal(extensions: object) -> float | None:
    if not isinstance(extensions, list):
        return None
    for extension in extensions:
        if isinstance(extension, Mapping) and extension.get("url") in ORDINAL_URLS:
            value = extension.get("valueDecimal", extension.get("valueInteger"))
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def _contained_concepts(questionnaire: Mapping[str, Any], reference: str) -> list[
        tuple[Mapping[str, Any], str]]:
    """(concept, system) pairs of a contained ValueSet named by `#id`."""
    for resource in questionnaire.get("contained") or []:
        if isinstance(resource, Mapping) and f"#{resource.get('id')}" == reference:
            found = []
            for include in (resource.get("compose") or {}).get("include") or []:
                for concept in include.get("concept") or []:
                    found.append((concept, str(include.get("system", ""))))
            return found
    return []


def _options(questionnaire: Mapping[str, Any], item: Mapping[str, Any],
             problems: list[str]) -> tuple[tuple[Option, ...], bool]:
    """The item's answer options and whether every one of them carries a score."""
    label = f"question {item.get('linkId')!r}"
    raw: list[tuple[Mapping[str, Any], float | None]] = []
    for answer_option in item.get("answerOption") or []:
        coding = answer_option.get("valueCoding") if isinstance(answer_option, Mapping) else None
        if isinstance(coding, Mapping):
            ordinal = _ordinal(answer_option.get("extension"))
            if ordinal is None:
                ordinal = _ordinal(coding.get("extension"))
            raw.append((coding, ordinal))
    value_set = item.get("answerValueSet")
    if not raw and isinstance(value_set, str) and value_set.startswith("#"):
        for concept, system in _contained_concepts(questionnaire, value_set):
            raw.append(({**concept, "system": system}, _ordinal(concept.get("extension"))))
    if not raw:
        problems.append(f"{label} has no answer options")
        return (), False
    if any(ordinal is None for _, ordinal in raw):
        return tuple(Option(score=index, code=str(coding.get("code", "")),
                            display=str(coding.get("display", "")),
                            system=str(coding.get("system", "")))
                     for index, (coding, _) in enumerate(raw)), False
    options = []
    for coding, ordinal in raw:
        assert ordinal is not None
        if ordinal != int(ordinal):
            problems.append(f"{label}: answer scores must be whole numbers")
            return (), False
        options.append(Option(score=int(ordinal), code=str(coding.get("code", "")),
                              display=str(coding.get("display", "")),
                              system=str(coding.get("system", LOINC))))
    if len({option.score for option in options}) != len(options):
        problems.append(f"{label} gives two answers the same score")
    return tuple(options), True


def load_questionnaire(fhir_json: Mapping[str, Any],
                       scoring: Mapping[str, Any] | None = None) -> InstrumentDef:
    """Read a FHIR R4 Questionnaire (and its scoring rules) into an InstrumentDef.

    Without `scoring` the total is the sum of the item scores and there are no bands,
    caseness or risk rules. Raises InstrumentError listing every problem found."""
    problems: list[str] = []
    if fhir_json.get("resourceType") != "Questionnaire":
        raise InstrumentError(["it is not a FHIR Questionnaire (resourceType must be "
                               "'Questionnaire')"])
    code = str(fhir_json.get("id") or "").lower()
    if not CODE.match(code):
        problems.append("the Questionnaire needs an id of letters, digits, dots and hyphens "
                        "(at most 40), e.g. 'phq-9'")
    name = str(fhir_json.get("title") or fhir_json.get("name") or "").strip()
    if not name:
        problems.append("the Questionnaire needs a title")

    stem = ""
    items: list[ItemDef] = []
    others: list[ItemDef] = []
    loinc_total = ""
    seen: set[str] = set()
    for item in _walk(fhir_json.get("item")):
        link_id = str(item.get("linkId") or "")
        kind = item.get("type")
        if not link_id:
            problems.append("every question needs a linkId")
            continue
        if link_id in seen:
            problems.append(f"linkId {link_id!r} is used twice")
        seen.add(link_id)
        text = str(item.get("text") or "").strip()
        if kind == "display" or (kind == "group" and text):
            stem = stem or text  # the first instruction, or the group's heading
        elif kind in ("integer", "decimal") and item.get("readOnly", True):
            loinc_total = loinc_total or _loinc_code(item.get("code"))
        elif kind in ("choice", "coding"):
            options, scored = _options(fhir_json, item, problems)
            definition = ItemDef(link_id=link_id, loinc=_loinc_code(item.get("code")),
                                 text=text, options=options,
                                 required=bool(item.get("required", False)))
            if not text:
                problems.append(f"question {link_id!r} has no text")
            (items if scored else others).append(definition)
    if not items:
        problems.append("it has no scored questions (choice questions whose answers carry an "
                        "ordinalValue)")
    if len(items) > MAX_ITEMS:
        problems.append(f"it has more than {MAX_ITEMS} questions")
    if problems:
        raise InstrumentError(problems)

    scored_items = tuple(items)
    rules = (load_scoring(scoring, scored_items) if scoring is not None
             else _plain_sum(scored_items))
    return InstrumentDef(
        code=code, name=name, loinc_panel=_loinc_code(fhir_json.get("code")),
        loinc_total=loinc_total, items=scored_items, stem=stem,
        copyright=str(fhir_json.get("copyright") or ""), scoring=rules,
        version=str(fhir_json.get("version") or ""), url=str(fhir_json.get("url") or ""),
        other_items=tuple(others), known_link_ids=frozenset(seen))


def _plain_sum(items: Sequence[ItemDef]) -> ScoringRules:
    return ScoringRules(total_min=sum(min(item.scores) for item in items),
                        total_max=sum(max(item.scores) for item in items))


# ---- the scoring rules ---------------------------------------------------------------------

def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _bands(raw: object, low: int, high: int, problems: list[str]) -> tuple[Band, ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        problems.append("bands must be a list")
        return ()
    bands: list[Band] = []
    for entry in raw:
        band_low = _whole(entry.get("min")) if isinstance(entry, Mapping) else None
        band_high = _whole(entry.get("max")) if isinstance(entry, Mapping) else None
        label = str(entry.get("label") or "").strip() if isinstance(entry, Mapping) else ""
        if band_low is None or band_high is None or not label or band_low > band_high:
            problems.append("each band needs whole-number min ≤ max and a label")
            return ()
        if len(label) > 40:
            problems.append(f"band label {label!r} is longer than 40 characters")
        bands.append(Band(band_low, band_high, label))
    bands.sort(key=lambda band: band.low)
    expected = low
    for band in bands:
        if band.low != expected:
            problems.append(f"the bands must cover {low}–{high} without gaps or overlaps "
                            f"(a band should start at {expected}, not {band.low})")
            return ()
        expected = band.high + 1
    if expected != high + 1:
        problems.append(f"the bands must end at the highest total, {high}")
    return tuple(bands)


def _rci(raw: object, problems: list[str]) -> RciParams | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append("rci must be an object with sd and reliability")
        return None
    sd = _number(raw.get("sd"))
    reliability = _number(raw.get("reliability"))
    if sd is None or sd <= 0:
        problems.append("rci.sd must be a number above 0")
    if reliability is None or not 0 <= reliability < 1:
        problems.append("rci.reliability must be at least 0 and below 1")
    sources = tuple(str(raw[key]) for key in ("reliability_source", "sd_source", "method_source")
                    if raw.get(key))
    if sd is None or reliability is None:
        return None
    return RciParams(sd=sd, reliability=reliability, sources=sources)


def load_scoring(scoring_json: Mapping[str, Any], items: Sequence[ItemDef]) -> ScoringRules:
    """Check the scoring rules against the questionnaire's scored items."""
    problems: list[str] = []
    if scoring_json.get("schema") != SCORING_SCHEMA:
        problems.append(f"the scoring rules must say schema: {SCORING_SCHEMA!r}")
    plain = _plain_sum(items)
    total = scoring_json.get("total") or {}
    if not isinstance(total, Mapping) or total.get("method", "sum") != "sum":
        problems.append("only the 'sum' total is supported")
        total = {}
    low = _whole(total.get("min", plain.total_min))
    high = _whole(total.get("max", plain.total_max))
    if (low, high) != (plain.total_min, plain.total_max):
        problems.append(f"the total's range must be {plain.total_min}–{plain.total_max}, "
                        "the sum of the item scores")
        low, high = plain.total_min, plain.total_max
    assert low is not None and high is not None
    bands = _bands(scoring_json.get("bands"), low, high, problems)

    caseness = scoring_json.get("caseness")
    caseness_at_least = None
    if caseness is not None:
        caseness_at_least = _whole(caseness.get("at_least")) if isinstance(caseness,
                                                                              Mapping) else None
        if caseness_at_least is None or not low < caseness_at_least <= high:
            problems.append(f"caseness.at_least must be a whole number in {low + 1}–{high}")
    reliable = scoring_json.get("reliable_change")
    reliable_points = None
    if reliable is not None:
        reliable_points = _whole(reliable.get("points")) if isinstance(reliable,
                                                                          Mapping) else None
        if reliable_points is None or not 0 < reliable_points <= high - low:
            problems.append("reliable_change.points must be a whole number above 0")

    link_ids = {item.link_id: item for item in items}
    risks = []
    for entry in scoring_json.get("risk_items") or []:
        link_id = str(entry.get("link_id", "")) if isinstance(entry, Mapping) else ""
        above = _whole(entry.get("above", 0)) if isinstance(entry, Mapping) else None
        if link_id not in link_ids or above is None:
            problems.append(f"risk item {link_id!r} is not a scored question of this "
                            "questionnaire")
            continue
        risks.append(RiskRule(link_id=link_id, above=above,
                              label=str(entry.get("label") or link_ids[link_id].text)))

    sources = tuple(str(value) for value in (
        scoring_json.get("bands_source"),
        caseness.get("source") if isinstance(caseness, Mapping) else None,
        reliable.get("source") if isinstance(reliable, Mapping) else None,
    ) if value)
    rci = _rci(scoring_json.get("rci"), problems)
    if problems:
        raise InstrumentError(problems)
    return ScoringRules(total_min=low, total_max=high, bands=bands,
                        caseness_at_least=caseness_at_least,
                        reliable_change_points=reliable_points, rci=rci,
                        risk_items=tuple(risks), sources=sources)
