"""Outcome measures without Django: the shipped instruments, scoring and band boundaries,
NHS Talking Therapies classification and Jacobson–Truax vectors at every boundary."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from relisten.lib.outcomes.change import (
    Change,
    classify,
    classify_pair,
    evaluate_course,
    is_case,
    jacobson_truax,
    rci_for,
)
from relisten.lib.outcomes.instruments import InstrumentDef, InstrumentError, load_questionnaire
from relisten.lib.outcomes.scoring import ScoringError, band_for, score

INSTRUMENTS = Path(__file__).resolve().parent.parent / "relisten" / "outcomes" / "instruments"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "questionnaires"


def shipped(code: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (json.loads((INSTRUMENTS / f"{code}.json").read_text()),
            json.loads((INSTRUMENTS / f"{code}.scoring.json").read_text()))


@pytest.fixture(scope="module")
def phq9() -> InstrumentDef:
    return load_questionnaire(*shipped("phq-9"))


@pytest.fixture(scope="module")
def gad7() -> InstrumentDef:
    return load_questionnaire(*shipped("gad-7"))


def answers_totalling(defn: InstrumentDef, total: int) -> dict[str, int]:
    """Fill items with 3s from the first until `total` is reached (item 9 last, so low totals
    do not trip the PHQ-9 risk rule)."""
    values = {}
    left = total
    for item in defn.items:
        values[item.link_id] = min(3, left)
        left -= values[item.link_id]
    assert left == 0
    return values


# ---- the shipped instruments ---------------------------------------------------------------

def test_phq9_definition_has_loinc_codes_official_wording_and_copyright(phq9: InstrumentDef):
    assert (phq9.code, phq9.loinc_panel, phq9.loinc_total) == ("phq-9", "44249-1", "44261-6")
    assert [item.loinc for item in phq9.items] == [
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
        "44260-8"]
    assert phq9.stem == ("Over the last 2 weeks, how often have you been bothered by any of the "
                         "following problems?")
    assert phq9.items[8].text == ("Thoughts that you would be better off dead or of hurting "
                                  "yourself in some way")
    assert [(o.score, o.code, o.display) for o in phq9.items[0].options] == [
        (0, "LA6568-5", "Not at all"), (1, "LA6569-3", "Several days"),
        (2, "LA6570-1", "More than half the days"), (3, "LA6571-9", "Nearly every day")]
    assert all(item.required for item in phq9.items)  # the LHC copy left item 9 optional
    assert "No permission required to reproduce, translate, display or distribute" in (
        phq9.copyright)
    assert "LOINC" in phq9.copyright and "Regenstrief" in phq9.copyright
    # The "how difficult" question is shown but never scored.
    assert [item.link_id for item in phq9.other_items] == ["69722-7"]
    assert (phq9.scoring.total_min, phq9.scoring.total_max) == (0, 27)


def test_phq9_help_text_has_the_corrected_bands():
    questionnaire, _ = shipped("phq-9")
    assert "0-4 minimal" in questionnaire["description"]
    assert "1-4" not in questionnaire["description"]
    assert "Severed" not in json.dumps(questionnaire)


def test_gad7_definition_has_official_item_7_and_loinc_codes(gad7: InstrumentDef):
    assert (gad7.code, gad7.loinc_panel, gad7.loinc_total) == ("gad-7", "69737-5", "70274-6")
    assert [item.loinc for item in gad7.items] == [
        "69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    assert gad7.items[6].text == "Feeling afraid, as if something awful might happen"
    assert (gad7.scoring.total_min, gad7.scoring.total_max) == (0, 21)
    assert "No permission required" in gad7.copyright
    assert gad7.scoring.risk_items == ()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/questionnaires is absent")
def test_third_party_questionnaires_load_without_scoring_rules():
    lhc = load_questionnaire(json.loads(
        (SHARED / "phq9_loinc-44249-1_lhncbc-lforms-fhir-app.json").read_text()))
    assert len(lhc.items) == 9 and lhc.loinc_total == "44261-6"
    assert (lhc.scoring.total_min, lhc.scoring.total_max, lhc.scoring.bands) == (0, 27, ())
    stanford = json.loads((SHARED / "gad7_stanford-researchkitonfhir.json").read_text())
    stanford["id"] = "gad-7-stanford"  # it ships without an id
    defn = load_questionnaire(stanford)  # answers from a contained ValueSet
    assert len(defn.items) == 7 and defn.items[0].scores == (0, 1, 2, 3)
    assert score(defn, {item.link_id: 1 for item in defn.items}).total == 7


def test_a_broken_questionnaire_lists_every_problem():
    questionnaire, scoring = shipped("gad-7")
    broken = copy.deepcopy(questionnaire)
    broken["id"] = "Not A Slug!"
    broken["item"][2]["linkId"] = broken["item"][1]["linkId"]
    with pytest.raises(InstrumentError) as error:
        load_questionnaire(broken, scoring)
    assert any("id of letters" in problem for problem in error.value.problems)
    assert any("is used twice" in problem for problem in error.value.problems)
    with pytest.raises(InstrumentError, match="not a FHIR Questionnaire"):
        load_questionnaire({"resourceType": "Patient"})


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["bands"].pop(1), "without gaps"),
    (lambda s: s["bands"][-1].update(max=20), "must end at the highest total, 21"),
    (lambda s: s["total"].update(max=30), "must be 0–21"),
    (lambda s: s["caseness"].update(at_least=22), "caseness.at_least"),
    (lambda s: s["rci"].update(reliability=1.0), "rci.reliability"),
    (lambda s: s.update(risk_items=[{"link_id": "nope", "above": 0}]), "risk item 'nope'"),
])
def test_broken_scoring_rules_say_what_is_wrong(change: Any, message: str):
    questionnaire, scoring = shipped("gad-7")
    scoring = copy.deepcopy(scoring)
    change(scoring)
    with pytest.raises(InstrumentError, match=message):
        load_questionnaire(questionnaire, scoring)


# ---- scoring and bands ---------------------------------------------------------------------

PHQ9_BANDS = [(0, "Minimal"), (4, "Minimal"), (5, "Mild"), (9, "Mild"), (10, "Moderate"),
              (14, "Moderate"), (15, "Moderately severe"), (19, "Moderately severe"),
              (20, "Severe"), (27, "Severe")]
GAD7_BANDS = [(0, "Minimal"), (4, "Minimal"), (5, "Mild"), (9, "Mild"), (10, "Moderate"),
              (14, "Moderate"), (15, "Severe"), (21, "Severe")]


@pytest.mark.parametrize(("total", "band"), PHQ9_BANDS)
def test_phq9_band_boundaries(phq9: InstrumentDef, total: int, band: str):
    scored = score(phq9, answers_totalling(phq9, total))
    assert (scored.total, scored.band) == (total, band)


@pytest.mark.parametrize(("total", "band"), GAD7_BANDS)
def test_gad7_band_boundaries(gad7: InstrumentDef, total: int, band: str):
    scored = score(gad7, answers_totalling(gad7, total))
    assert (scored.total, scored.band) == (total, band)


def test_band_for_is_empty_outside_the_range(phq9: InstrumentDef):
    assert band_for(phq9.scoring, 28) == ""


def test_score_keeps_each_item_value(phq9: InstrumentDef):
    answers = {item.link_id: index % 4 for index, item in enumerate(phq9.items)}
    scored = score(phq9, answers)
    assert scored.item_values == answers
    assert scored.total == sum(answers.values()) == 0 + 1 + 2 + 3 + 0 + 1 + 2 + 3 + 0


@pytest.mark.parametrize(("item9", "risk"), [(0, ()), (1, ("44260-8",)), (2, ("44260-8",)),
                                             (3, ("44260-8",))])
def test_phq9_item_9_above_0_is_a_risk_item(phq9: InstrumentDef, item9: int,
                                            risk: tuple[str, ...]):
    answers = {item.link_id: 0 for item in phq9.items} | {"44260-8": item9}
    assert score(phq9, answers).risk_items == risk


def test_every_item_is_required_and_the_error_names_the_missing_ones(phq9: InstrumentDef):
    answers = {item.link_id: 1 for item in phq9.items}
    del answers["44259-0"], answers["44260-8"]
    with pytest.raises(ScoringError) as error:
        score(phq9, answers)
    assert error.value.missing == ("44259-0", "44260-8")
    assert "questions 3 (Trouble falling or staying asleep" in error.value.message
    assert "and 9 (Thoughts that you would be better off dead" in error.value.message


@pytest.mark.parametrize("bad", [4, -1, True, "2", 1.5])
def test_an_answer_that_is_not_a_choice_is_refused(gad7: InstrumentDef, bad: object):
    answers: dict[str, Any] = {item.link_id: 0 for item in gad7.items}
    answers["69734-2"] = bad
    with pytest.raises(ScoringError) as error:
        score(gad7, answers)
    assert error.value.invalid == ("69734-2",)
    assert "question 4 (Trouble relaxing)" in error.value.message


def test_answers_to_unknown_questions_are_refused(gad7: InstrumentDef):
    answers = {item.link_id: 0 for item in gad7.items} | {"44260-8": 1}
    with pytest.raises(ScoringError) as error:
        score(gad7, answers)
    assert error.value.unknown == ("44260-8",)


# ---- NHS Talking Therapies classification ---------------------------------------------------

@pytest.mark.parametrize(("total", "case"), [(9, False), (10, True), (27, True), (0, False)])
def test_phq9_caseness_boundary(phq9: InstrumentDef, total: int, case: bool):
    assert is_case(phq9.scoring, total) is case


@pytest.mark.parametrize(("total", "case"), [(7, False), (8, True), (21, True), (0, False)])
def test_gad7_caseness_boundary(gad7: InstrumentDef, total: int, case: bool):
    assert is_case(gad7.scoring, total) is case


# (first, later, reliable improvement, reliable deterioration, recovery, reliable recovery)
PHQ9_VECTORS = [
    (16, 10, True, False, False, False),   # drop 6 but still a case at 10
    (16, 11, False, False, False, False),  # drop 5: not reliable
    (15, 9, True, False, True, True),      # drop 6 and below 10: reliable recovery
    (14, 9, False, False, True, False),    # drop 5 and below 10: recovery only
    (10, 9, False, False, True, False),    # smallest recovery
    (9, 3, True, False, False, False),     # not a case at start: no recovery
    (10, 4, True, False, True, True),
    (4, 10, False, True, False, False),    # rise 6: reliable deterioration
    (4, 9, False, False, False, False),    # rise 5: not reliable
    (21, 27, False, True, False, False),
    (12, 12, False, False, False, False),
]


@pytest.mark.parametrize(("first", "later", "improved", "worse", "recovered", "reliably"),
                         PHQ9_VECTORS)
def test_phq9_classification_vectors(phq9: InstrumentDef, first: int, later: int,
                                     improved: bool, worse: bool, recovered: bool,
                                     reliably: bool):
    change = classify(phq9.scoring, first, later)
    assert (change.reliable_improvement, change.reliable_deterioration, change.recovery,
            change.reliable_recovery) == (improved, worse, recovered, reliably)
    assert change.difference == later - first


GAD7_VECTORS = [
    (12, 8, True, False, False, False),    # drop 4 but still a case at 8
    (12, 9, False, False, False, False),   # drop 3
    (11, 7, True, False, True, True),      # drop 4 and below 8
    (10, 7, False, False, True, False),    # drop 3 and below 8
    (8, 7, False, False, True, False),
    (7, 3, True, False, False, False),     # not a case at start
    (3, 7, False, True, False, False),     # rise 4
    (3, 6, False, False, False, False),    # rise 3
]


@pytest.mark.parametrize(("first", "later", "improved", "worse", "recovered", "reliably"),
                         GAD7_VECTORS)
def test_gad7_classification_vectors(gad7: InstrumentDef, first: int, later: int,
                                     improved: bool, worse: bool, recovered: bool,
                                     reliably: bool):
    change = classify(gad7.scoring, first, later)
    assert (change.reliable_improvement, change.reliable_deterioration, change.recovery,
            change.reliable_recovery) == (improved, worse, recovered, reliably)


@pytest.mark.parametrize(("first", "later", "status"), [
    (4, 10, "Reliable deterioration"), (15, 9, "Reliable recovery"), (14, 9, "Recovered"),
    (16, 10, "Reliable improvement"), (12, 12, "No reliable change")])
def test_status_label(phq9: InstrumentDef, first: int, later: int, status: str):
    assert classify(phq9.scoring, first, later).status == status


def test_scores_outside_the_range_are_refused(phq9: InstrumentDef):
    with pytest.raises(ValueError, match="outside 0–27"):
        classify(phq9.scoring, 28, 3)


def test_course_is_first_score_against_end_and_each_follow_up(phq9: InstrumentDef):
    course = evaluate_course(phq9.scoring, 18, [("end", 8), ("fu3", 11), ("fu12", 24)])
    assert [(label, change.status) for label, change in course] == [
        ("end", "Reliable recovery"), ("fu3", "Reliable improvement"),
        ("fu12", "Reliable deterioration")]


def test_paired_measures(phq9: InstrumentDef, gad7: InstrumentDef):
    # PHQ-9 a case, GAD-7 not: a case at start; recovered only when both are below cut-off.
    pair = classify_pair(classify(phq9.scoring, 12, 5), classify(gad7.scoring, 6, 7))
    assert pair.case_at_start and not pair.case_at_end and pair.reliable_recovery
    still_anxious = classify_pair(classify(phq9.scoring, 12, 5), classify(gad7.scoring, 6, 8))
    assert still_anxious.case_at_end and not still_anxious.recovery
    # Improvement on one measure with reliable deterioration on the other is neither.
    mixed = classify_pair(classify(phq9.scoring, 12, 5), classify(gad7.scoring, 2, 6))
    assert not mixed.reliable_improvement and not mixed.reliable_deterioration
    assert mixed.status == "Recovered"  # recovery is about caseness alone
    worse = classify_pair(classify(phq9.scoring, 12, 13), classify(gad7.scoring, 2, 6))
    assert worse.reliable_deterioration and worse.status == "Reliable deterioration"
    assert classify_pair(Change(False, False, False, False),
                         Change(False, False, False, False)).difference is None


# ---- Jacobson–Truax ------------------------------------------------------------------------

@pytest.mark.parametrize(("sd", "reliability", "s_diff", "minimum"), [
    (7.5, 0.88, 3.6742, 7.2014),   # worked by hand: 7.5·√2·√0.12
    (10.0, 0.80, 6.3246, 12.3961),
    (6.0, 0.89, 2.8142, 5.5159),   # the shipped PHQ-9 settings
    (4.6, 0.92, 1.8400, 3.6064),   # the shipped GAD-7 settings
])
def test_jacobson_truax_vectors(sd: float, reliability: float, s_diff: float, minimum: float):
    rci = jacobson_truax(20, 10, sd, reliability)
    assert rci.s_diff == pytest.approx(s_diff, abs=1e-4)
    assert rci.min_reliable_change == pytest.approx(minimum, abs=1e-4)
    assert rci.value == pytest.approx(-10 / s_diff, abs=1e-3)


def test_rci_threshold_is_strictly_above_1_96():
    s_diff = 10 * math.sqrt(2) * math.sqrt(1 - 0.5)  # = 10 exactly
    assert not jacobson_truax(0, 19.6, 10, 0.5).reliable
    assert jacobson_truax(0, 19.61, 10, 0.5).reliable
    assert jacobson_truax(0, 19.61, 10, 0.5).direction == "Reliable deterioration"
    assert jacobson_truax(19.61, 0, 10, 0.5).direction == "Reliable improvement"
    assert s_diff == pytest.approx(10)
    with pytest.raises(ValueError):
        jacobson_truax(0, 1, 0, 0.5)


@pytest.mark.parametrize(("code", "points"), [("phq-9", 6), ("gad-7", 4)])
def test_shipped_rci_settings_agree_with_the_nhs_points(code: str, points: int):
    defn = load_questionnaire(*shipped(code))
    rci = rci_for(defn.scoring, 15, 15 - points)
    smaller = rci_for(defn.scoring, 15, 15 - points + 1)
    assert rci is not None and smaller is not None
    assert rci.reliable and not smaller.reliable
    assert defn.scoring.rci is not None and defn.scoring.rci.sources  # cited


# ---- the loader (Django) -------------------------------------------------------------------

@pytest.mark.django_db
def test_builtin_instruments_are_loaded_after_migrate_and_reloading_is_idempotent():
    from relisten.outcomes.builtin import definition_of, load_builtin_instruments
    from relisten.outcomes.models import Instrument

    rows = {row.code: row for row in Instrument.objects.filter(clinic=None)}
    assert set(rows) == {"phq-9", "gad-7"}  # post_migrate put them there
    phq = rows["phq-9"]
    assert (phq.loinc_panel, phq.loinc_total, phq.version, phq.active) == (
        "44249-1", "44261-6", 1, True)
    assert phq.scoring["caseness"]["at_least"] == 10
    assert "No permission required" in phq.copyright
    assert definition_of(phq).scoring.reliable_change_points == 6
    assert load_builtin_instruments() == []
    assert Instrument.objects.filter(clinic=None).count() == 2


@pytest.mark.django_db
def test_a_changed_shipped_file_updates_in_place_until_answered(cast: Any):
    from django.utils import timezone

    from relisten.outcomes.builtin import load_builtin_instruments
    from relisten.outcomes.models import Instrument, Response

    gad = Instrument.objects.get(clinic=None, code="gad-7")
    Instrument.objects.filter(pk=gad.pk).update(name="old name")
    assert [row.pk for row in load_builtin_instruments()] == [gad.pk]  # nobody answered yet
    gad.refresh_from_db()
    assert gad.name.startswith("GAD-7") and gad.version == 1

    Response.objects.create(episode=cast.client_a.episodes.first(), instrument=gad,
                            time_point="intake", answered_at=timezone.now(), source="staff",
                            total=3, band="Minimal")
    Instrument.objects.filter(pk=gad.pk).update(name="old name")
    [new] = load_builtin_instruments()
    gad.refresh_from_db()
    assert (new.version, new.active, gad.active, gad.name) == (2, True, False, "old name")
