"""Score one completed questionnaire: total, severity band, per-item values, risk items.

    score(defn, answers: Mapping[link_id, int]) -> Scored     # raises ScoringError
    band_for(rules, total) -> str                            # "" when the instrument has no bands
    Scored(total, band, item_values: dict[link_id, int], risk_items: tuple[link_id, ...])
    ScoringError  .missing (link ids not answered)  .invalid (link ids with impossible values)
                  .unknown (answers to questions the instrument does not have)

Every scored question must be answered: a total with gaps would look like a lower score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relisten.lib.outcomes.instruments import InstrumentDef, ScoringRules


class ScoringError(ValueError):
    """The answers cannot be scored; the message says which questions, in plain words."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = (),
                 invalid: tuple[str, ...] = (), unknown: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing
        self.invalid = invalid
        self.unknown = unknown


@dataclass(frozen=True)
class Scored:
    total: int
    band: str
    item_values: dict[str, int] = field(default_factory=dict)
    risk_items: tuple[str, ...] = ()


def band_for(rules: ScoringRules, total: int) -> str:
    for band in rules.bands:
        if band.low <= total <= band.high:
            return band.label
    return ""


def _numbered(defn: InstrumentDef, link_ids: list[str]) -> str:
    """'3 (Trouble relaxing) and 5 (…)': question numbers as the client sees them."""
    position = {item.link_id: index for index, item in enumerate(defn.items, start=1)}
    names = [f"{position[link_id]} ({defn.item(link_id).text})" for link_id in link_ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def score(defn: InstrumentDef, answers: Mapping[str, int]) -> Scored:
    known = {item.link_id for item in defn.items}
    unknown = tuple(sorted(key for key in answers if key not in known))
    if unknown:
        raise ScoringError("Some answers belong to questions this questionnaire does not have.",
                           unknown=unknown)
    missing = [item.link_id for item in defn.items if answers.get(item.link_id) is None]
    if missing:
        plural = "question" if len(missing) == 1 else "questions"
        raise ScoringError(f"Please answer {plural} {_numbered(defn, missing)} before sending. "
                           "Every question is needed for the score.", missing=tuple(missing))
    invalid = []
    for item in defn.items:
        value = answers[item.link_id]
        if isinstance(value, bool) or not isinstance(value, int) or value not in item.scores:
            invalid.append(item.link_id)
    if invalid:
        raise ScoringError(f"The answer to question {_numbered(defn, invalid)} is not one of the "
                           "choices offered. Please choose one of them.", invalid=tuple(invalid))
    values = {item.link_id: answers[item.link_id] for item in defn.items}
    total = sum(values.values())
    risks = tuple(rule.link_id for rule in defn.scoring.risk_items
                  if values[rule.link_id] > rule.above)
    return Scored(total=total, band=band_for(defn.scoring, total), item_values=values,
                  risk_items=risks)
