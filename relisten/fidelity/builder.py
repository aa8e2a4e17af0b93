"""The scale builder's form: rows of plain fields ⇄ a scale document.

The builder works without JavaScript: each part (items, subscales, formulas, thresholds) is a
list of numbered rows, and "More rows" sends the form back with extra blank rows. Saving turns
the rows into the same document the importer accepts (YAML), validated by the same loader, so
a builder scale and an imported one cannot differ in what they allow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relisten.lib.fidelity.scale import KINDS, METHODS, SCHEMA, ScaleDef, to_definition

MAX_ROWS = {"item": 200, "sub": 20, "formula": 40, "threshold": 40}
EXTRA_ROWS = {"item": 3, "sub": 1, "formula": 1, "threshold": 1}
ROW_FIELDS = {
    "item": ("id", "text", "kind", "min", "max", "anchors", "subscale"),
    "sub": ("id", "name", "method"),
    "formula": ("id", "name", "expr", "unit"),
    "threshold": ("score", "op", "value", "label"),
}
TOP_FIELDS = ("name", "slug", "version_label", "description", "citation", "licence", "source",
              "main_score")
OPS = (">=", ">", "<=", "<")
_ANCHOR_LINE = re.compile(r"^\s*(-?\d+)\s*[:=.)–-]\s*(.+?)\s*$")


@dataclass
class BuilderState:
    """What the form shows: every field as the text in its box."""

    top: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    template: bool = False

    def pad(self, extra: Mapping[str, int] = EXTRA_ROWS) -> BuilderState:
        for part, count in extra.items():
            rows = self.rows.setdefault(part, [])
            for _ in range(min(count, MAX_ROWS[part] - len(rows))):
                rows.append(dict.fromkeys(ROW_FIELDS[part], ""))
        return self


def state_from_scale(scale: ScaleDef | None) -> BuilderState:
    if scale is None:
        return BuilderState(top=dict.fromkeys(TOP_FIELDS, ""), rows={}).pad(
            {"item": 5, "sub": 2, "formula": 2, "threshold": 2})
    doc = to_definition(scale)
    state = BuilderState(top={key: str(doc.get(key, "")) for key in TOP_FIELDS},
                         template=scale.template)
    state.rows["item"] = [
        {"id": item.id, "text": item.text, "kind": item.kind, "min": str(item.min),
         "max": "" if item.max is None else str(item.max),
         "anchors": "\n".join(f"{point}: {text}" for point, text in item.anchors.items()),
         "subscale": item.subscale or ""}
        for item in scale.items
    ]
    state.rows["sub"] = [{"id": s.id, "name": s.name, "method": s.method}
                         for s in scale.subscales]
    state.rows["formula"] = [{"id": f.id, "name": f.name, "expr": f.expr, "unit": f.unit}
                             for f in scale.formulas]
    state.rows["threshold"] = [{"score": t.score, "op": t.op, "value": f"{t.value:g}",
                                "label": t.label} for t in scale.thresholds]
    return state.pad()


def state_from_post(post: Mapping[str, str]) -> BuilderState:
    state = BuilderState(top={key: str(post.get(key, "")).strip() for key in TOP_FIELDS},
                         template=bool(post.get("template")))
    for part, names in ROW_FIELDS.items():
        count = _count(post.get(f"{part}-count", "0"), MAX_ROWS[part])
        state.rows[part] = [
            {name: str(post.get(f"{part}-{index}-{name}", "")).strip() for name in names}
            for index in range(count)
        ]
    return state


def _count(raw: str, limit: int) -> int:
    return min(int(raw), limit) if raw.isdigit() else 0


def _blank(row: Mapping[str, str]) -> bool:
    return not any(value for key, value in row.items() if key not in ("kind", "method", "op"))


def _number(raw: str) -> Any:
    """An int or float when the text is one; otherwise the text, for the validator to name."""
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def document_from_state(state: BuilderState) -> tuple[dict[str, Any], list[str]]:
    """The scale document the rows describe, and problems only the builder can see (anchor
    lines it cannot read). Everything else is left to the loader's validation."""
    problems: list[str] = []
    doc: dict[str, Any] = {"schema": SCHEMA}
    for key in TOP_FIELDS:
        if state.top.get(key):
            doc[key] = state.top[key]
    if state.template:
        doc["template"] = True
    items = []
    for number, row in enumerate(state.rows.get("item", []), start=1):
        if _blank(row):
            continue
        item: dict[str, Any] = {"id": row["id"], "text": row["text"],
                                "kind": row["kind"] or "likert"}
        if item["kind"] != "yes_no" and (row["min"] or row["max"]):
            item["range"] = [_number(row["min"] or "0"),
                             _number(row["max"]) if row["max"] else None]
        anchors: dict[int, str] = {}
        for line in row["anchors"].splitlines():
            if not line.strip():
                continue
            match = _ANCHOR_LINE.match(line)
            if match is None:
                problems.append(f"Item row {number}: the anchor line “{line.strip()[:60]}” "
                                "should start with its point, like “1: Not at all”.")
                continue
            anchors[int(match.group(1))] = match.group(2)
        if anchors:
            item["anchors"] = anchors
        if row["subscale"]:
            item["subscale"] = row["subscale"]
        items.append(item)
    doc["items"] = items
    subs = [{"id": r["id"], "name": r["name"], "method": r["method"] or "sum"}
            for r in state.rows.get("sub", []) if not _blank(r)]
    if subs:
        doc["subscales"] = subs
    formulas = []
    for row in state.rows.get("formula", []):
        if _blank(row):
            continue
        entry = {"id": row["id"], "name": row["name"], "expr": row["expr"]}
        if row["unit"]:
            entry["unit"] = row["unit"]
        formulas.append(entry)
    if formulas:
        doc["formulas"] = formulas
    thresholds = [{"score": r["score"], "op": r["op"] or ">=", "value": _number(r["value"]),
                   "label": r["label"]}
                  for r in state.rows.get("threshold", []) if not _blank(r)]
    if thresholds:
        doc["thresholds"] = thresholds
    return doc, problems


def post_data_for(scale: ScaleDef) -> dict[str, str]:
    """The form fields that save `scale` unchanged (for tests and the access matrix)."""
    state = state_from_scale(scale)
    data = {key: value for key, value in state.top.items()}
    if state.template:
        data["template"] = "on"
    for part, rows in state.rows.items():
        data[f"{part}-count"] = str(len(rows))
        for index, row in enumerate(rows):
            for name, value in row.items():
                data[f"{part}-{index}-{name}"] = value
    data["action"] = "save"
    return data


CHOICES = {"kinds": KINDS, "methods": METHODS, "ops": OPS}
