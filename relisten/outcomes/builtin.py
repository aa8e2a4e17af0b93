"""The questionnaires Relisten ships (PHQ-9, GAD-7): FHIR Questionnaire files plus scoring rules
in relisten/outcomes/instruments/, loaded into Instrument rows after every migrate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction

from relisten.lib.outcomes.instruments import InstrumentDef, load_questionnaire
from relisten.outcomes.models import Instrument

BUILTIN_DIR = Path(__file__).resolve().parent / "instruments"


def builtin_files() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(questionnaire, scoring) per shipped instrument: `<code>.json`, `<code>.scoring.json`."""
    found = []
    for path in sorted(BUILTIN_DIR.glob("*.json")):
        if path.name.endswith(".scoring.json"):
            continue
        scoring_path = path.with_name(path.stem + ".scoring.json")
        found.append((json.loads(path.read_text(encoding="utf-8")),
                      json.loads(scoring_path.read_text(encoding="utf-8"))))
    return found


def definition_of(instrument: Instrument) -> InstrumentDef:
    """The framework-free definition (items, options, scoring rules) of an Instrument row."""
    return load_questionnaire(instrument.questionnaire, instrument.scoring)


@transaction.atomic
def load_builtin_instruments() -> list[Instrument]:
    """Add the shipped instruments that are new or changed; idempotent.

    Runs after every `migrate` and test-database flush (OutcomesConfig.ready). A changed file
    replaces the current version while nobody has answered it; once answered, it becomes the
    next version and the old one is retired, so earlier responses keep the wording they were
    given. Like a data migration it writes no audit row: no person acted.
    """
    changed = []
    for questionnaire, scoring in builtin_files():
        defn = load_questionnaire(questionnaire, scoring)  # a broken shipped file fails loudly
        fields = {"name": defn.name, "loinc_panel": defn.loinc_panel,
                  "loinc_total": defn.loinc_total, "questionnaire": questionnaire,
                  "scoring": scoring, "copyright": defn.copyright, "active": True}
        current = (Instrument.objects.select_for_update()
                   .filter(clinic=None, code=defn.code).order_by("-version").first())
        if current is None:
            changed.append(Instrument.objects.create(clinic=None, code=defn.code, version=1,
                                                     **fields))
            continue
        if all(getattr(current, name) == value for name, value in fields.items()):
            continue
        if current.responses.exists():
            Instrument.objects.filter(pk=current.pk).update(active=False)
            changed.append(Instrument.objects.create(clinic=None, code=defn.code,
                                                     version=current.version + 1, **fields))
        else:
            for name, value in fields.items():
                setattr(current, name, value)
            current.save()
            changed.append(current)
    return changed
