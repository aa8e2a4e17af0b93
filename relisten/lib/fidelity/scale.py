"""Fidelity scales as data: load (with errors that name the line), score, and write back.

Public API (RATING and the views code against exactly this)::

    load_scale(text: str, fmt: "yaml" | "json") -> ScaleDef        # raises ScaleError
    scale_from_definition(definition: Mapping) -> ScaleDef         # Scale.definition → ScaleDef
    to_definition(scale: ScaleDef) -> dict                         # ScaleDef → JSON-ready document
    dump_scale(scale: ScaleDef, fmt: "yaml" | "json") -> str        # load_scale(dump) == scale
    score(scale: ScaleDef, answers: Mapping[str, float]) -> Scores # ValueError: answer out of range
    answer_problem(item: Item, value: object) -> str | None        # plain words, or None if fine
    ScaleError(message, line)  .message .line (1-based or None) .problems (every Problem found)

    ScaleDef(slug, name, version_label, citation, licence, items: tuple[Item, ...],
             subscales: tuple[Subscale, ...], formulas: tuple[Formula, ...],
             thresholds: tuple[Threshold, ...], main_score: str,
             description="", source="", template=False)      .item(id) .score_name(id)
    Item(id, text, kind: "likert" | "count" | "yes_no", min: int, max: int | None (None: a count
         without upper limit), anchors: dict[int, str], subscale: str | None, description="")
    Subscale(id, name, method: "sum" | "mean", items: tuple[str, ...])
    Formula(id, name, expr, unit="", description="")
    Threshold(score, op: ">=" | ">" | "<=" | "<", value: float, label)   .describe()
    Scores(values: dict[str, float | None]  (every subscale and formula id),
           not_defined: dict[str, str]  (id → why it has no value),
           thresholds: tuple[ThresholdResult(threshold, value, met: bool | None), ...],
           missing: tuple[str, ...]  (unanswered item ids), main: float | None)
           .complete  .to_json() -> dict   (what Rating.scores stores)

Answers map item id → number: a Likert point, 1/0 for yes/no, or a behaviour count. Names in
formulas are item ids, subscale ids and earlier formulas (see formula.py for the language).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import yaml

from relisten.lib.fidelity import formula
from relisten.lib.fidelity.located import Located, Path, SyntaxProblem, parse_json, parse_yaml

Kind = Literal["likert", "count", "yes_no"]
Format = Literal["yaml", "json"]
Method = Literal["sum", "mean"]
Op = Literal[">=", ">", "<=", "<"]

SCHEMA = "relisten-scale/1"
KINDS: tuple[Kind, ...] = ("likert", "count", "yes_no")
METHODS: tuple[Method, ...] = ("sum", "mean")
OPS: dict[str, Op] = {">=": ">=", "≥": ">=", ">": ">", "<=": "<=", "≤": "<=", "<": "<"}
OP_SIGNS: dict[Op, str] = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]{0,79}$")
IDENTIFIER = re.compile(rf"^{formula.NAME_PATTERN}$")
MAX_ITEMS = 200
MAX_TEXT = 2000
YES_NO_ANCHORS = {0: "No", 1: "Yes"}


# ---- the definition --------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    id: str
    text: str
    kind: Kind
    min: int
    max: int | None
    anchors: dict[int, str] = field(default_factory=dict)
    subscale: str | None = None
    description: str = ""

    def range_label(self) -> str:
        return f"{self.min}–{self.max}" if self.max is not None else f"{self.min} or more"


@dataclass(frozen=True)
class Subscale:
    id: str
    name: str
    method: Method
    items: tuple[str, ...]


@dataclass(frozen=True)
class Formula:
    id: str
    name: str
    expr: str
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Threshold:
    score: str
    op: Op
    value: float
    label: str

    def describe(self, score_name: str = "") -> str:
        value = f"{self.value:g}"
        return f"{self.label}: {score_name or self.score} {OP_SIGNS[self.op]} {value}"

    def met_by(self, value: float) -> bool:
        return {
            ">=": value >= self.value, ">": value > self.value,
            "<=": value <= self.value, "<": value < self.value,
        }[self.op]


@dataclass(frozen=True)
class ScaleDef:
    slug: str
    name: str
    version_label: str
    citation: str
    licence: str
    items: tuple[Item, ...]
    subscales: tuple[Subscale, ...]
    formulas: tuple[Formula, ...]
    thresholds: tuple[Threshold, ...]
    main_score: str
    description: str = ""
    source: str = ""
    template: bool = False

    def item(self, item_id: str) -> Item | None:
        return next((item for item in self.items if item.id == item_id), None)

    def score_name(self, score_id: str) -> str:
        """The readable name of a subscale or formula (its id when unknown)."""
        for subscale in self.subscales:
            if subscale.id == score_id:
                return subscale.name
        for entry in self.formulas:
            if entry.id == score_id:
                return entry.name
        return score_id


# ---- errors ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    message: str
    line: int | None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ScaleError(ValueError):
    """The document is not a valid scale. `message` and `line` describe the first problem;
    `problems` lists all that were found (a person fixes them in one go)."""

    def __init__(self, message: str, line: int | None = None,
                 problems: tuple[Problem, ...] = ()) -> None:
        self.message = message
        self.line = line
        self.problems = problems or (Problem(message, line),)
        super().__init__(str(self.problems[0]))


# ---- loading ---------------------------------------------------------------------------------

def load_scale(text: str, fmt: Format) -> ScaleDef:
    """Parse and validate a scale document; ScaleError names the line of each problem."""
    if fmt not in ("yaml", "json"):
        raise ScaleError(f"unknown format {fmt!r}; use yaml or json")
    try:
        located = parse_yaml(text) if fmt == "yaml" else parse_json(text)
    except SyntaxProblem as problem:
        raise ScaleError(problem.message, problem.line) from None
    return _Validator(located).scale()


def scale_from_definition(definition: Mapping[str, Any]) -> ScaleDef:
    """The ScaleDef of a stored, already validated document (Scale.definition)."""
    return _Validator(Located(json.loads(json.dumps(definition)))).scale()


_TOP_FIELDS = ("schema", "slug", "name", "version_label", "description", "citation", "licence",
               "source", "template", "main_score", "items", "subscales", "formulas", "thresholds")
_ITEM_FIELDS = ("id", "text", "description", "kind", "range", "anchors", "subscale")
_SUBSCALE_FIELDS = ("id", "name", "method")
_FORMULA_FIELDS = ("id", "name", "expr", "unit", "description")
_THRESHOLD_FIELDS = ("score", "op", "value", "label")


class _Validator:
    """Turns located plain data into a ScaleDef, collecting every problem with its line."""

    def __init__(self, located: Located) -> None:
        self.located = located
        self.problems: list[Problem] = []

    def fail(self, path: Path, message: str) -> None:
        self.problems.append(Problem(message, self.located.line(path)))

    # -- small typed readers --

    def mapping(self, value: Any, path: Path, what: str,
                allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"{what} should be a set of fields (name: value)")
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.fail((*path, key), f"'{key}' is not a field of {what}{hint}")
        return value

    def text(self, data: dict[str, Any], key: str, path: Path, what: str, *,
             required: bool = True, limit: int = MAX_TEXT) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.fail(path if key not in data else (*path, key), f"{what} needs a '{key}'")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail((*path, key), f"'{key}' of {what} should be text")
            return ""
        value = str(value).strip()
        if len(value) > limit:
            self.fail((*path, key), f"'{key}' of {what} is longer than {limit} characters")
        return value

    def identifier(self, data: dict[str, Any], path: Path, what: str) -> str:
        value = self.text(data, "id", path, what, limit=80)
        if value and not IDENTIFIER.match(value):
            self.fail((*path, "id"), f"the id '{value}' of {what} should start with a letter and "
                                     "use only letters, digits and underscores (e.g. q3)")
        if value in formula.FUNCTIONS:
            self.fail((*path, "id"), f"'{value}' is the name of a function; choose another id")
        return value

    def integer(self, value: Any, path: Path, message: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            self.fail(path, message)
            return None
        return int(value)

    def sequence(self, data: dict[str, Any], key: str, path: Path) -> list[Any]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail((*path, key), f"'{key}' should be a list (one entry per line starting '- ')")
            return []
        return value

    # -- the document --

    def scale(self) -> ScaleDef:
        data = self.located.data
        if data is None:
            raise ScaleError("the document is empty")
        top = self.mapping(data, (), "the scale", _TOP_FIELDS)
        schema = top.get("schema", SCHEMA)
        if schema != SCHEMA:
            self.fail(("schema",), f"the schema should be '{SCHEMA}', not '{schema}'")
        slug = self.text(top, "slug", (), "the scale", limit=80)
        if slug and not SLUG.match(slug):
            self.fail(("slug",), f"the slug '{slug}' should use only lower-case letters, digits, "
                                 "dots and hyphens (e.g. miti-4.2.1)")
        template = top.get("template", False)
        if not isinstance(template, bool):
            self.fail(("template",), "'template' should be true or false")
            template = False
        items = self.items(self.sequence(top, "items", ()))
        subscales = self.subscales(self.sequence(top, "subscales", ()), items)
        formulas = self.formulas(self.sequence(top, "formulas", ()), items, subscales)
        score_ids = [s.id for s in subscales] + [f.id for f in formulas]
        thresholds = self.thresholds(self.sequence(top, "thresholds", ()), score_ids)
        main_score = self.text(top, "main_score", (), "the scale", limit=80)
        if main_score and main_score not in score_ids:
            self.fail(("main_score",), self.unknown_score(main_score, "the main score", score_ids))
        result = ScaleDef(
            slug=slug, name=self.text(top, "name", (), "the scale", limit=200),
            version_label=self.text(top, "version_label", (), "the scale", required=False,
                                    limit=40),
            citation=self.text(top, "citation", (), "the scale"),
            licence=self.text(top, "licence", (), "the scale"),
            items=tuple(items), subscales=tuple(subscales), formulas=tuple(formulas),
            thresholds=tuple(thresholds), main_score=main_score,
            description=self.text(top, "description", (), "the scale", required=False),
            source=self.text(top, "source", (), "the scale", required=False),
            template=template,
        )
        if self.problems:
            ordered = tuple(sorted(self.problems, key=lambda p: p.line or 0))
            raise ScaleError(ordered[0].message, ordered[0].line, ordered)
        return result

    def unknown_score(self, name: str, what: str, known: list[str]) -> str:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{what} '{name}' is not a subscale or formula of this scale{hint}"

    def items(self, entries: list[Any]) -> list[Item]:
        if not entries:
            self.fail(("items",) if "items" in (self.located.data or {}) else (),
                      "the scale needs at least one item")
        if len(entries) > MAX_ITEMS:
            self.fail(("items",), f"a scale may have at most {MAX_ITEMS} items")
        items: list[Item] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries[:MAX_ITEMS]):
            path: Path = ("items", index)
            data = self.mapping(entry, path, _label("item", index, entry), _ITEM_FIELDS)
            item_id = self.identifier(data, path, f"item {index + 1}")
            what = f"item '{item_id}'" if item_id else f"item {index + 1}"
            if item_id in seen:
                self.fail((*path, "id"), f"the id '{item_id}' is used by an earlier item")
            seen.add(item_id)
            item = self.item(data, path, item_id, what)
            if item is not None:
                items.append(item)
        return items

    def item(self, data: dict[str, Any], path: Path, item_id: str, what: str) -> Item | None:
        kind = data.get("kind", "likert")
        if kind not in KINDS:
            self.fail((*path, "kind"), f"{what} has kind '{kind}'; use one of {', '.join(KINDS)}")
            return None
        low, high = self.item_range(data, path, kind, what)
        anchors = self.anchors(data, path, what, low, high)
        if kind == "yes_no" and not anchors:
            anchors = dict(YES_NO_ANCHORS)
        subscale = self.text(data, "subscale", path, what, required=False, limit=80) or None
        return Item(
            id=item_id, text=self.text(data, "text", path, what, limit=500), kind=kind,
            min=low, max=high, anchors=anchors, subscale=subscale,
            description=self.text(data, "description", path, what, required=False),
        )

    def item_range(self, data: dict[str, Any], path: Path, kind: str,
                   what: str) -> tuple[int, int | None]:
        raw = data.get("range")
        if kind == "yes_no":
            if raw is not None and raw != [0, 1]:
                self.fail((*path, "range"), f"{what} is yes/no, so its range is always 0–1")
            return 0, 1
        if raw is None:
            if kind == "count":
                return 0, None
            self.fail(path, f"{what} needs a 'range', e.g. range: [1, 5]")
            return 0, 0
        message = f"the range of {what} should be two whole numbers, e.g. [1, 5]"
        if not isinstance(raw, list) or len(raw) != 2:
            self.fail((*path, "range"), message)
            return 0, 0
        low = self.integer(raw[0], (*path, "range"), message)
        high = None if kind == "count" and raw[1] is None else self.integer(
            raw[1], (*path, "range"), message)
        if low is None:
            return 0, 0
        if high is not None and high <= low:
            self.fail((*path, "range"), f"the range of {what} should go from a lower to a higher "
                                        f"number, not {low}–{high}")
        if kind == "count" and low < 0:
            self.fail((*path, "range"), f"{what} counts behaviours, so it cannot start below 0")
        return low, high

    def anchors(self, data: dict[str, Any], path: Path, what: str, low: int,
                high: int | None) -> dict[int, str]:
        raw = data.get("anchors")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail((*path, "anchors"), f"the anchors of {what} should be 'point: text' lines")
            return {}
        anchors: dict[int, str] = {}
        for key, text in raw.items():
            point = _as_int(key)
            if point is None:
                self.fail((*path, "anchors", key),
                          f"the anchor '{key}' of {what} should be a whole number")
                continue
            if not isinstance(text, str) or not text.strip():
                self.fail((*path, "anchors", key), f"the anchor {point} of {what} needs a text")
                continue
            if len(text) > 500:
                self.fail((*path, "anchors", key),
                          f"the anchor {point} of {what} is longer than 500 characters")
            anchors[point] = text.strip()
        raw_keys = {_as_int(key): key for key in raw}
        outside = [p for p in anchors if p < low or (high is not None and p > high)]
        if outside:
            span = f"{min(anchors)}–{max(anchors)}" if len(anchors) > 1 else f"{min(anchors)}"
            self.fail((*path, "anchors", raw_keys[outside[0]]),
                      f"{what} has anchors for {span} but its range is "
                      f"{low}–{high if high is not None else 'unlimited'}")
        return dict(sorted(anchors.items()))

    def subscales(self, entries: list[Any], items: list[Item]) -> list[Subscale]:
        result: list[Subscale] = []
        item_ids = {item.id for item in items}
        for index, entry in enumerate(entries):
            path: Path = ("subscales", index)
            data = self.mapping(entry, path, _label("subscale", index, entry), _SUBSCALE_FIELDS)
            sub_id = self.identifier(data, path, f"subscale {index + 1}")
            what = f"subscale '{sub_id}'" if sub_id else f"subscale {index + 1}"
            if sub_id in item_ids or sub_id in {s.id for s in result}:
                self.fail((*path, "id"), f"the id '{sub_id}' is already used in this scale")
            method = data.get("method", "sum")
            if method not in METHODS:
                self.fail((*path, "method"), f"{what} has method '{method}'; use sum or mean")
                method = "sum"
            members = tuple(item.id for item in items if item.subscale == sub_id)
            if sub_id and not members:
                self.fail(path, f"{what} has no items; give its items 'subscale: {sub_id}'")
            result.append(Subscale(sub_id, self.text(data, "name", path, what, limit=200),
                                   cast(Method, method), members))
        known = {s.id for s in result}
        for index, item in enumerate(items):
            if item.subscale and item.subscale not in known:
                self.fail(("items", index, "subscale"),
                          f"item '{item.id}' belongs to subscale '{item.subscale}', which is "
                          "not listed under 'subscales'")
        return result

    def formulas(self, entries: list[Any], items: list[Item],
                 subscales: list[Subscale]) -> list[Formula]:
        known = [item.id for item in items] + [s.id for s in subscales]
        result: list[Formula] = []
        for index, entry in enumerate(entries):
            path: Path = ("formulas", index)
            data = self.mapping(entry, path, _label("formula", index, entry), _FORMULA_FIELDS)
            formula_id = self.identifier(data, path, f"formula {index + 1}")
            what = f"formula '{formula_id}'" if formula_id else f"formula {index + 1}"
            if formula_id in known:
                self.fail((*path, "id"), f"the id '{formula_id}' is already used in this scale")
            expr = self.text(data, "expr", path, what, limit=formula.MAX_LENGTH)
            if expr:
                self.check_expression(expr, (*path, "expr"), what, known)
            result.append(Formula(
                id=formula_id, name=self.text(data, "name", path, what, limit=200), expr=expr,
                unit=self.text(data, "unit", path, what, required=False, limit=20),
                description=self.text(data, "description", path, what, required=False),
            ))
            known.append(formula_id)
        return result

    def check_expression(self, expr: str, path: Path, what: str, known: list[str]) -> None:
        try:
            tree = formula.parse(expr)
        except formula.FormulaError as error:
            self.fail(path, f"{what} cannot be read at character {error.column}: {error.message}")
            return
        for name in formula.names_in(tree):
            if name.name not in known:
                close = difflib.get_close_matches(name.name, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.fail(path, f"{what} uses '{name.name}', which is not an item, subscale "
                                f"or earlier formula of this scale{hint}")

    def thresholds(self, entries: list[Any], score_ids: list[str]) -> list[Threshold]:
        result: list[Threshold] = []
        for index, entry in enumerate(entries):
            path: Path = ("thresholds", index)
            what = f"threshold {index + 1}"
            data = self.mapping(entry, path, what, _THRESHOLD_FIELDS)
            score_id = self.text(data, "score", path, what, limit=80)
            if score_id and score_id not in score_ids:
                self.fail((*path, "score"), self.unknown_score(score_id, f"{what} refers to",
                                                               score_ids))
            op = OPS.get(str(data.get("op", ">=")))
            if op is None:
                self.fail((*path, "op"), f"{what} has op '{data.get('op')}'; use >=, >, <= or <")
                op = ">="
            value = data.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail((*path, "value") if "value" in data else path,
                          f"{what} needs a number as its 'value'")
                value = 0
            result.append(Threshold(score_id, op, float(value),
                                    self.text(data, "label", path, what, limit=100)))
        return result


def _label(kind: str, index: int, entry: Any) -> str:
    """How messages name an entry: by its id when it has a readable one, else by position."""
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(entry_id, str) and IDENTIFIER.match(entry_id):
        return f"{kind} '{entry_id}'"
    return f"{kind} {index + 1}"


def _as_int(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, float) and key == int(key):
        return int(key)
    if isinstance(key, str) and re.fullmatch(r"-?\d+", key.strip()):
        return int(key)
    return None


# ---- writing ---------------------------------------------------------------------------------

def to_definition(scale: ScaleDef) -> dict[str, Any]:
    """The scale as a plain document (what the importer accepts; Scale.definition stores it)."""
    document: dict[str, Any] = {"schema": SCHEMA, "slug": scale.slug, "name": scale.name}
    if scale.version_label:
        document["version_label"] = scale.version_label
    if scale.description:
        document["description"] = scale.description
    document["citation"] = scale.citation
    document["licence"] = scale.licence
    if scale.source:
        document["source"] = scale.source
    if scale.template:
        document["template"] = True
    document["main_score"] = scale.main_score
    document["items"] = [_item_document(item) for item in scale.items]
    if scale.subscales:
        document["subscales"] = [{"id": s.id, "name": s.name, "method": s.method}
                                 for s in scale.subscales]
    if scale.formulas:
        document["formulas"] = [_formula_document(f) for f in scale.formulas]
    if scale.thresholds:
        document["thresholds"] = [
            {"score": t.score, "op": t.op, "value": _number(t.value), "label": t.label}
            for t in scale.thresholds
        ]
    return document


def _item_document(item: Item) -> dict[str, Any]:
    document: dict[str, Any] = {"id": item.id, "text": item.text}
    if item.description:
        document["description"] = item.description
    document["kind"] = item.kind
    if item.kind == "likert" or (item.kind == "count" and (item.min, item.max) != (0, None)):
        document["range"] = [item.min, item.max]
    if item.anchors:
        document["anchors"] = dict(item.anchors)
    if item.subscale:
        document["subscale"] = item.subscale
    return document


def _formula_document(entry: Formula) -> dict[str, Any]:
    document: dict[str, Any] = {"id": entry.id, "name": entry.name, "expr": entry.expr}
    if entry.unit:
        document["unit"] = entry.unit
    if entry.description:
        document["description"] = entry.description
    return document


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else value


def dump_scale(scale: ScaleDef, fmt: Format) -> str:
    """The scale as YAML or JSON text that load_scale reads back to an equal ScaleDef."""
    document = to_definition(scale)
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=96)


# ---- scoring ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    value: float | None
    met: bool | None  # None: the score has no value (yet)


@dataclass(frozen=True)
class Scores:
    values: dict[str, float | None]
    not_defined: dict[str, str]
    thresholds: tuple[ThresholdResult, ...]
    missing: tuple[str, ...]
    main: float | None

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "values": dict(self.values),
            "not_defined": dict(self.not_defined),
            "thresholds": [
                {"score": r.threshold.score, "op": r.threshold.op, "value": r.threshold.value,
                 "label": r.threshold.label, "met": r.met}
                for r in self.thresholds
            ],
            "missing": list(self.missing),
            "main": self.main,
        }


def answer_problem(item: Item, value: object) -> str | None:
    """Why `value` is not a valid answer to `item`, in plain words; None when it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"the answer to '{item.text}' should be a number"
    if value != int(value):
        return f"the answer to '{item.text}' should be a whole number"
    if value < item.min or (item.max is not None and value > item.max):
        return f"the answer to '{item.text}' should be within {item.range_label()}"
    return None


def score(scale: ScaleDef, answers: Mapping[str, float]) -> Scores:
    """Subscales, formulas and thresholds for these answers.

    Unanswered items are listed in `missing`; a score that needs one (or divides by zero) has
    no value and says why in `not_defined`. Answers to unknown items are ignored; an answer out
    of its item's range raises ValueError (check with answer_problem first).
    """
    names: dict[str, float | None] = {}
    missing: list[str] = []
    for item in scale.items:
        value = answers.get(item.id)
        if value is None:
            missing.append(item.id)
            names[item.id] = None
            continue
        problem = answer_problem(item, value)
        if problem:
            raise ValueError(problem)
        names[item.id] = float(value)
    values: dict[str, float | None] = {}
    not_defined: dict[str, str] = {}
    for subscale in scale.subscales:
        unanswered = [i for i in subscale.items if names[i] is None]
        if unanswered:
            values[subscale.id] = None
            not_defined[subscale.id] = "not defined yet: " + _unanswered(unanswered)
        else:
            parts = [cast(float, names[i]) for i in subscale.items]
            total = sum(parts)
            mean_or_sum = total if subscale.method == "sum" else total / len(parts)
            values[subscale.id] = round(mean_or_sum, 6)
        names[subscale.id] = values[subscale.id]
    for entry in scale.formulas:
        try:
            values[entry.id] = round(formula.evaluate(formula.parse(entry.expr), names), 6)
        except formula.Undefined as undefined:
            values[entry.id] = None
            not_defined[entry.id] = "not defined: " + undefined.reason
        names[entry.id] = values[entry.id]
    results = tuple(
        ThresholdResult(t, values.get(t.score),
                        None if values.get(t.score) is None else t.met_by(cast(float,
                                                                               values[t.score])))
        for t in scale.thresholds
    )
    return Scores(values, not_defined, results, tuple(missing), values.get(scale.main_score))


def _unanswered(item_ids: list[str]) -> str:
    shown = ", ".join(item_ids[:5]) + (" …" if len(item_ids) > 5 else "")
    return f"{'an item is' if len(item_ids) == 1 else 'items are'} not answered ({shown})"
