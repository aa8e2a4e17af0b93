"""An instrument as the answer form needs it: its items and options, and scoring a submission.

The definition and the scoring rules are the framework-free ones in relisten/lib/outcomes/;
this adds what a form needs on top (answers as posted, which items are still missing, in words).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relisten.lib.outcomes.instruments import InstrumentDef, ItemDef, load_questionnaire
from relisten.lib.outcomes.scoring import score
from relisten.outcomes.models import Instrument


class AlreadyAnswered(Exception):
    """The questionnaire was answered (or is no longer asked for) in the meantime."""


class Incomplete(Exception):
    """Some items have no answer; `missing` holds their numbers (1-based), for the message."""

    def __init__(self, missing: list[int]) -> None:
        self.missing = missing
        super().__init__(missing_message(missing))


def missing_message(missing: list[int]) -> str:
    if len(missing) == 1:
        return f"Please answer question {missing[0]} before sending."
    listed = ", ".join(str(n) for n in missing[:-1]) + f" and {missing[-1]}"
    return f"Please answer questions {listed} before sending. Every question is needed."


@dataclass(frozen=True)
class Option:
    score: int
    code: str
    display: str


@dataclass(frozen=True)
class Item:
    number: int
    link_id: str
    code: str
    text: str
    options: tuple[Option, ...]

    def answer_code(self, value: int) -> str:
        return next((option.code for option in self.options if option.score == value), "")


@dataclass(frozen=True)
class Scored:
    total: int
    band: str
    values: dict[str, int]
    risk_items: tuple[str, ...]


@dataclass(frozen=True)
class Questionnaire:
    code: str
    name: str
    stem: str
    copyright: str
    items: tuple[Item, ...]
    definition: InstrumentDef

    def score(self, answers: Mapping[str, Any]) -> Scored:
        values = clean_answers(self, answers)
        missing = [item.number for item in self.items if item.link_id not in values]
        if missing:
            raise Incomplete(missing)
        result = score(self.definition, values)
        return Scored(int(result.total), str(result.band), dict(values),
                      tuple(result.risk_items))


def _item(number: int, item: ItemDef) -> Item:
    options = tuple(Option(int(o.score), str(o.code), str(o.display)) for o in item.options)
    return Item(number, item.link_id, str(item.loinc), item.text, options)


def questionnaire_of(instrument: Instrument) -> Questionnaire:
    definition = load_questionnaire(instrument.questionnaire, instrument.scoring or None)
    items = tuple(_item(n, item) for n, item in enumerate(definition.items, start=1))
    return Questionnaire(
        code=instrument.code, name=instrument.name, stem=definition.stem or "",
        copyright=instrument.copyright or definition.copyright or "", items=items,
        definition=definition,
    )


def clean_answers(form: Questionnaire, answers: Mapping[str, Any]) -> dict[str, int]:
    """Only known items with one of their own option scores, as ints (posted forms give text)."""
    kept: dict[str, int] = {}
    for item in form.items:
        raw = answers.get(item.link_id)
        try:
            value = int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            value = None
        if value is not None and any(option.score == value for option in item.options):
            kept[item.link_id] = value
    return kept
