"""Scales as data (issue 6, must-show 2): the loader's line-numbered errors, the formula
language, scoring of the shipped MITI and CTRS, round trips, and the scale library pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client as HttpClient

from relisten.accounts.models import User
from relisten.audit.models import AuditEvent
from relisten.core.personas import Cast
from relisten.fidelity import actions
from relisten.fidelity.builder import post_data_for
from relisten.fidelity.models import Scale
from relisten.lib.fidelity import formula
from relisten.lib.fidelity.scale import (
    ScaleError,
    dump_scale,
    load_scale,
    scale_from_definition,
    score,
    to_definition,
)

SHIPPED = Path(__file__).resolve().parent.parent / "relisten" / "fidelity" / "scales"
SignedIn = Callable[[User], HttpClient]

SMALL = """\
slug: small
name: A small scale
citation: Our own manual, 2024.
licence: Ours to use.
main_score: total
items:
  - id: q1
    text: Warmth
    kind: likert
    range: [1, 5]
    anchors:
      1: Cold
      5: Warm
  - id: q2
    text: Focus
    kind: likert
    range: [1, 5]
  - id: asked
    text: Asked about the week
    kind: yes_no
formulas:
  - id: total
    name: Total
    expr: q1 + q2
thresholds:
  - {score: total, op: ">=", value: 8, label: Good}
"""


def shipped(name: str) -> str:
    return (SHIPPED / f"{name}.yaml").read_text()


def error_of(text: str, fmt: str = "yaml") -> ScaleError:
    with pytest.raises(ScaleError) as caught:
        load_scale(text, fmt)  # type: ignore[arg-type]
    return caught.value


# ---- loading: errors name the line -----------------------------------------------------------

def test_anchors_outside_the_range_name_the_item_and_its_line() -> None:
    text = SMALL.replace("range: [1, 5]\n    anchors:\n      1: Cold\n      5: Warm",
                         "range: [1, 5]\n    anchors:\n      0: Cold\n      4: Warm")
    error = error_of(text)
    assert error.line == 12  # the "0: Cold" line of q1
    assert error.message == "item 'q1' has anchors for 0–4 but its range is 1–5"
    assert str(error) == "line 12: item 'q1' has anchors for 0–4 but its range is 1–5"


def test_every_problem_is_listed_with_its_line_in_order() -> None:
    text = SMALL.replace("kind: yes_no", "kind: yesno").replace("anchors", "ancors", 1)
    text = text.replace("expr: q1 + q2", "expr: q1 + q3")
    error = error_of(text)
    found = [(p.line, p.message) for p in error.problems]
    assert (11, "'ancors' is not a field of item 'q1'; did you mean 'anchors'?") in found
    assert (20, "item 'asked' has kind 'yesno'; use one of likert, count, yes_no") in found
    assert (24, "formula 'total' uses 'q3', which is not an item, subscale or earlier formula "
                "of this scale") in found
    lines = [line or 0 for line, _ in found]
    assert lines == sorted(lines)


def test_yaml_syntax_errors_and_duplicates_name_the_line() -> None:
    broken = SMALL.replace("    text: Focus", "    text: [Focus")
    assert error_of(broken).line is not None and "not valid YAML" in error_of(broken).message
    twice = SMALL.replace("    text: Focus\n", "    text: Focus\n    text: Again\n")
    error = error_of(twice)
    assert (error.line, error.message) == (16, "'text' appears twice here")


def test_yaml_refuses_python_tags() -> None:
    error = error_of("name: x\nslug: !!python/object/apply:os.system ['true']\n")
    assert error.line == 2 and "tag 'tag:yaml.org,2002:python/object/apply" in error.message
    scalar = error_of("name: x\nslug: !!python/name:os.system ''\n")
    assert scalar.line == 2 and "cannot be read" in scalar.message


def test_json_errors_name_the_line_too() -> None:
    document = to_definition(load_scale(SMALL, "yaml"))
    text = json.dumps(document, indent=2)
    line_of_q2 = next(n for n, line in enumerate(text.splitlines(), 1) if '"q2"' in line)
    bad = text.replace('"id": "q2"', '"id": "q 2"')
    error = error_of(bad, "json")
    assert error.line == line_of_q2 and "should start with a letter" in error.message
    syntax = error_of(text.replace('"slug": "small",', '"slug": "small"'), "json")
    # Python's JSON reader notices a missing comma on the line of the next field.
    assert syntax.line == 4
    assert syntax.message == "this is not valid JSON: Expecting ',' delimiter"


def test_missing_fields_and_unknown_scores_are_explained() -> None:
    error = error_of("slug: x\nname: X\nitems: []\nmain_score: nothing\n")
    messages = [p.message for p in error.problems]
    assert "the scale needs a 'citation'" in messages
    assert "the scale needs at least one item" in messages
    assert "the main score 'nothing' is not a subscale or formula of this scale" in messages


# ---- the formula language --------------------------------------------------------------------

def test_formula_precedence_unary_and_unicode_operators() -> None:
    values = {"a": 6.0, "b": 2.0, "c": 3.0}
    assert formula.evaluate(formula.parse("a + b * c"), values) == 12
    assert formula.evaluate(formula.parse("(a + b) × c"), values) == 24
    assert formula.evaluate(formula.parse("a ÷ b − -c"), values) == 6
    assert formula.evaluate(formula.parse("mean(a, b, c) + max(a, 10) - min(b)"), values) == (
        11 / 3 + 10 - 2)
    assert formula.evaluate(formula.parse("sum(a, b) / 2"), values) == 4


@pytest.mark.parametrize(("text", "column", "words"), [
    ("a +", 4, "ends too early"),
    ("(a + b", 7, "expected ')'"),
    ("a b", 3, "unexpected 'b'"),
    ("a ** b", 4, "unexpected '*'"),
    ("pow(a, 2)", 1, "'pow' is not a function"),
    ("a $ b", 3, "'$' is not allowed"),
    ("sum()", 1, "needs at least one value"),
    ("", 1, "empty"),
    ("__import__('os')", 12, "''' is not allowed"),
])
def test_formula_errors_say_what_and_where(text: str, column: int, words: str) -> None:
    with pytest.raises(formula.FormulaError) as caught:
        formula.parse(text)
    assert words in caught.value.message and caught.value.column == column


def test_formula_nesting_and_length_are_bounded() -> None:
    with pytest.raises(formula.FormulaError, match="nested too deeply"):
        formula.parse("-" * 100 + "1")
    with pytest.raises(formula.FormulaError, match="longer than"):
        formula.parse("1+" * 300 + "1")


def test_division_by_zero_is_not_defined_rather_than_a_crash() -> None:
    miti = load_scale(shipped("miti-4.2.1"), "yaml")
    answers = {item.id: 0 for item in miti.items} | {"cct": 3, "sst": 3, "partnership": 3,
                                                     "empathy": 3}
    result = score(miti, answers)
    assert result.values["pct_cr"] is None and result.values["r_to_q"] is None
    assert result.not_defined["r_to_q"] == "not defined: it would divide by zero"
    assert [r.met for r in result.thresholds if r.threshold.score == "pct_cr"] == [None, None]
    assert result.values["mi_adherent"] == 0


def test_unknown_names_in_a_formula_are_an_error_with_the_line() -> None:
    text = SMALL.replace("expr: q1 + q2", "expr: q1 + mean(q2, qq)")
    error = error_of(text)
    assert error.line == 24
    assert error.message.startswith("formula 'total' uses 'qq', which is not an item")


# ---- shipped scales --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["miti-4.2.1", "ctrs", "psychodynamic-adherence-competence"])
def test_every_shipped_scale_validates_and_round_trips(name: str) -> None:
    scale = load_scale(shipped(name), "yaml")
    assert scale.citation and scale.licence
    assert load_scale(dump_scale(scale, "yaml"), "yaml") == scale
    assert load_scale(dump_scale(scale, "json"), "json") == scale
    assert scale_from_definition(json.loads(json.dumps(to_definition(scale)))) == scale


def test_miti_summary_scores_and_benchmarks() -> None:
    miti = load_scale(shipped("miti-4.2.1"), "yaml")
    assert [i.id for i in miti.items if i.kind == "likert"] == [
        "cct", "sst", "partnership", "empathy"]
    assert len([i for i in miti.items if i.kind == "count"]) == 10
    answers = {"cct": 4, "sst": 3, "partnership": 4, "empathy": 3, "gi": 5, "persuade": 2,
               "persuade_perm": 1, "q": 12, "sr": 9, "cr": 6, "affirm": 3, "seek": 2,
               "emphasize": 1, "confront": 1}
    result = score(miti, answers)
    assert result.values == {"technical": 3.5, "relational": 3.5, "pct_cr": 40.0,
                             "r_to_q": 1.25, "mi_adherent": 6, "mi_non_adherent": 3}
    met = {(r.threshold.score, r.threshold.label): r.met for r in result.thresholds}
    assert met == {("relational", "Fair"): True, ("relational", "Good"): False,
                   ("technical", "Fair"): True, ("technical", "Good"): False,
                   ("pct_cr", "Fair"): True, ("pct_cr", "Good"): False,
                   ("r_to_q", "Fair"): True, ("r_to_q", "Good"): False}
    assert result.complete and result.main == 3.5


def test_ctrs_total_and_competence() -> None:
    ctrs = load_scale(shipped("ctrs"), "yaml")
    assert len(ctrs.items) == 11 and all((i.min, i.max) == (0, 6) for i in ctrs.items)
    competent = score(ctrs, {item.id: 4 for item in ctrs.items[:7]}
                      | {item.id: 3 for item in ctrs.items[7:]})
    assert competent.main == 40 and competent.thresholds[0].met is True
    assert competent.values["general"] == 24 and competent.values["conceptualization"] == 16
    below = score(ctrs, {item.id: 3 for item in ctrs.items} | {"agenda": 6})
    assert below.main == 36 and below.thresholds[0].met is False
    partial = score(ctrs, {"agenda": 6})
    assert partial.main is None and len(partial.missing) == 10
    assert partial.thresholds[0].met is None and "not answered" in partial.not_defined["general"]
    with pytest.raises(ValueError, match="within 0–6"):
        score(ctrs, {"agenda": 7})


def test_psychodynamic_template_is_marked_and_has_both_subscales() -> None:
    template = load_scale(shipped("psychodynamic-adherence-competence"), "yaml")
    assert template.template
    assert {s.id: len(s.items) for s in template.subscales} == {"adherence": 7, "competence": 7}
    assert "Blagys" in template.citation


# ---- loading into the database ---------------------------------------------------------------

def test_shipped_scales_are_loaded_once_and_idempotently(db: None) -> None:
    slugs = set(Scale.objects.filter(clinic=None).values_list("slug", flat=True))
    assert {"miti-4.2.1", "ctrs", "psychodynamic-adherence-competence"} <= slugs
    before = Scale.objects.count()
    assert actions.load_shipped_scales() == []
    assert Scale.objects.count() == before


# ---- the pages -------------------------------------------------------------------------------

def _ctrs(db: None = None) -> Scale:
    return Scale.objects.get(clinic=None, slug="ctrs", version=1)


def test_every_clinical_member_sees_the_list_and_details(cast: Cast, signed_in: SignedIn) -> None:
    for user in (cast.therapist_a, cast.trainee, cast.supervisor, cast.admin):
        http = signed_in(user)
        listing = http.get("/fidelity/scales/")
        assert listing.status_code == 200 and b"Cognitive Therapy Rating Scale" in listing.content
        detail = http.get(f"/fidelity/scales/{_ctrs().public_id}/")
        assert detail.status_code == 200
        assert b"Guided discovery" in detail.content and b"Competent: CTRS total" in detail.content
        assert b"Young" in detail.content  # citation
    assert signed_in(cast.therapist_a).get("/fidelity/scales/import/").status_code == 403
    assert signed_in(cast.client_user_a).get("/fidelity/scales/").status_code == 404
    assert signed_in(cast.researcher).get("/fidelity/scales/").status_code == 404


def test_import_errors_are_shown_with_lines_and_nothing_is_saved(
    cast: Cast, signed_in: SignedIn
) -> None:
    http = signed_in(cast.supervisor)
    before = (Scale.objects.count(), AuditEvent.objects.count())
    bad = SMALL.replace("      1: Cold\n      5: Warm", "      0: Cold\n      4: Warm")
    response = http.post("/fidelity/scales/import/", {"text": bad, "format": "auto"})
    assert response.status_code == 400
    assert "<strong>Line 12:</strong> item &#x27;q1&#x27; has anchors for 0–4 but its range is " \
           "1–5" in response.content.decode()
    assert (Scale.objects.count(), AuditEvent.objects.count()) == before


def test_import_versions_and_export(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.admin)
    first = http.post("/fidelity/scales/import/", {"text": SMALL, "format": "yaml"})
    v1 = Scale.objects.get(clinic=cast.clinic, slug="small")
    assert first.status_code == 302 and first["Location"] == f"/fidelity/scales/{v1.public_id}/"
    assert v1.version == 1 and v1.created_by == cast.admin
    event = AuditEvent.objects.get(event_type="scale.imported")
    assert event.changes == {"slug": "small", "version": 1, "format": "yaml"}
    # The same document again saves nothing; a changed one is version 2.
    http.post("/fidelity/scales/import/", {"text": SMALL, "format": "yaml"})
    assert Scale.objects.filter(clinic=cast.clinic, slug="small").count() == 1
    changed = SMALL.replace("value: 8", "value: 7")
    upload = {"file": _upload("small.yaml", changed), "format": "auto"}
    assert http.post("/fidelity/scales/import/", upload).status_code == 302
    v2 = Scale.objects.get(clinic=cast.clinic, slug="small", version=2)
    assert v2.definition["thresholds"][0]["value"] == 7
    # JSON export of v2 imports back (as the next version: it is the same scale, new text).
    exported = http.get(f"/fidelity/scales/{v2.public_id}/export.json")
    assert exported["Content-Disposition"] == 'attachment; filename="small-v2.json"'
    assert load_scale(exported.content.decode(), "json") == scale_from_definition(v2.definition)
    yaml_export = http.get(f"/fidelity/scales/{v2.public_id}/export.yaml")
    assert load_scale(yaml_export.content.decode(), "yaml").thresholds[0].value == 7
    # A clinic may not take a shipped scale's slug.
    refused = http.post("/fidelity/scales/import/", {"text": shipped("ctrs"), "format": "yaml"})
    assert refused.status_code == 400 and b"slug of a scale shipped with Relisten" in \
        refused.content


def _upload(name: str, text: str) -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile
    return SimpleUploadedFile(name, text.encode(), content_type="application/yaml")


def test_a_clinics_scale_is_404_for_other_clinics(cast: Cast, signed_in: SignedIn) -> None:
    scale, _ = actions.save_scale_document(actor=cast.admin, clinic=cast.clinic, text=SMALL,
                                           fmt="yaml")
    assert signed_in(cast.therapist_b).get(f"/fidelity/scales/{scale.public_id}/").status_code \
        == 200
    outsider = signed_in(cast.other_clinic_therapist)
    for suffix in ("", "export.yaml", "edit/"):
        assert outsider.get(f"/fidelity/scales/{scale.public_id}/{suffix}").status_code == 404
    assert b"A small scale" not in outsider.get("/fidelity/scales/").content
    assert AuditEvent.objects.filter(event_type="authz.denied",
                                     changes__object_type="scale").exists()


def test_builder_makes_a_scale_the_importer_accepts(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.supervisor)
    assert http.get("/fidelity/scales/new/").status_code == 200
    form = {
        "name": "Our adherence scale", "slug": "our-adherence", "citation": "Our manual, 2024",
        "licence": "Clinic use only", "main_score": "total",
        "item-count": "3", "sub-count": "0", "formula-count": "1", "threshold-count": "1",
        "item-0-id": "focus", "item-0-text": "Keeps the focus", "item-0-kind": "likert",
        "item-0-min": "0", "item-0-max": "4", "item-0-anchors": "0: Not at all\n4: Throughout",
        "item-1-id": "homework", "item-1-text": "Sets homework", "item-1-kind": "yes_no",
        "item-2-kind": "likert",  # a blank row is ignored
        "formula-0-id": "total", "formula-0-name": "Total", "formula-0-expr": "focus + homework",
        "threshold-0-score": "total", "threshold-0-op": ">=", "threshold-0-value": "4",
        "threshold-0-label": "Adherent", "action": "save",
    }
    response = http.post("/fidelity/scales/new/", form)
    assert response.status_code == 302
    scale = Scale.objects.get(clinic=cast.clinic, slug="our-adherence")
    built = scale_from_definition(scale.definition)
    assert [i.id for i in built.items] == ["focus", "homework"]
    assert built.item("focus").anchors == {0: "Not at all", 4: "Throughout"}  # type: ignore[union-attr]
    assert score(built, {"focus": 3, "homework": 1}).thresholds[0].met is True
    assert AuditEvent.objects.filter(event_type="scale.built").count() == 1
    # Editing saves version 2 with the same slug; the form round-trips unchanged fields.
    edit = post_data_for(built) | {"item-0-max": "5"}
    assert http.post(f"/fidelity/scales/{scale.public_id}/edit/", edit).status_code == 302
    v2 = Scale.objects.get(clinic=cast.clinic, slug="our-adherence", version=2)
    assert v2.definition["items"][0]["range"] == [0, 5]


def test_builder_shows_the_same_validation_errors(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.admin)
    form = {"name": "Broken", "slug": "broken", "citation": "c", "licence": "l",
            "main_score": "total", "item-count": "1", "formula-count": "1",
            "item-0-id": "q1", "item-0-text": "Q", "item-0-kind": "likert", "item-0-min": "1",
            "item-0-max": "5", "item-0-anchors": "0: Never\nsometimes",
            "formula-0-id": "total", "formula-0-name": "T", "formula-0-expr": "q1 / (q2",
            "action": "save"}
    response = http.post("/fidelity/scales/new/", form)
    assert response.status_code == 400
    assert "the anchor line “sometimes” should start with its point" in response.content.decode()
    form["item-0-anchors"] = "0: Never\n5: Always"
    response = http.post("/fidelity/scales/new/", form)
    page = response.content.decode()
    assert response.status_code == 400
    assert "Item &#x27;q1&#x27; has anchors for 0–5 but its range is 1–5" in page
    assert "expected &#x27;)&#x27; but found the end of the formula" in page
    assert not Scale.objects.filter(slug="broken").exists()
    more = http.post("/fidelity/scales/new/", form | {"action": "more"})
    assert more.status_code == 200 and b'name="item-3-id"' in more.content


def test_only_managers_change_and_shipped_scales_never(cast: Cast, signed_in: SignedIn) -> None:
    scale, _ = actions.save_scale_document(actor=cast.admin, clinic=cast.clinic, text=SMALL,
                                           fmt="yaml")
    therapist = signed_in(cast.therapist_a)
    refused = therapist.post(f"/fidelity/scales/{scale.public_id}/retire/", {"retired": "1"})
    assert refused.status_code == 403 and b"admins and supervisors" in refused.content
    shipped_edit = signed_in(cast.admin).get(f"/fidelity/scales/{_ctrs().public_id}/edit/")
    assert shipped_edit.status_code == 403 and b"Export this one" in shipped_edit.content
    supervisor = signed_in(cast.supervisor)
    assert supervisor.post(f"/fidelity/scales/{scale.public_id}/retire/",
                           {"retired": "1"}).status_code == 302
    scale.refresh_from_db()
    assert scale.retired
    assert AuditEvent.objects.filter(event_type="scale.retired").count() == 1
    supervisor.post(f"/fidelity/scales/{scale.public_id}/retire/", {"retired": "0"})
    scale.refresh_from_db()
    assert not scale.retired


def test_a_shipped_scale_can_be_copied_into_the_builder(cast: Cast, signed_in: SignedIn) -> None:
    http = signed_in(cast.supervisor)
    page = http.get(f"/fidelity/scales/new/?from={_ctrs().public_id}").content.decode()
    assert 'value="Cognitive Therapy Rating Scale (CTRS) (our version)"' in page
    assert 'name="slug" value=""' in page  # a copy needs its own slug
    assert 'value="guided_discovery"' in page and "0: No agenda was set." in page
