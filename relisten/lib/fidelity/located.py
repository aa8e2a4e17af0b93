"""Parse YAML or JSON into plain data, remembering the line every value starts on.

Validation messages name the line a person has to fix, so the parsers keep a map from each
value's path (("items", 3, "anchors", 2) …) to its 1-based line. YAML lines come from PyYAML's
node marks (yaml.compose); JSON is read by a tiny position-aware reader after `json.loads` has
accepted the text (so JSON syntax errors keep Python's own precise messages).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

# The standard library's JSON string reader (C-accelerated); typeshed does not declare it.
scanstring = cast(Callable[[str, int], tuple[str, int]], json.decoder.scanstring)  # type: ignore[attr-defined]

Path = tuple[str | int, ...]


class SyntaxProblem(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Located:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest enclosing value that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


# ---- YAML ------------------------------------------------------------------------------------

def parse_yaml(text: str) -> Located:
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            raise SyntaxProblem(
                f"this is not valid YAML: {error.problem or error.context}",
                mark.line + 1 if mark else None,
            ) from None
        except yaml.YAMLError as error:
            raise SyntaxProblem(f"this is not valid YAML: {error}", None) from None
        located = Located(None)
        if node is not None:
            try:
                located.data = _from_node(loader, node, (), located.lines)
            except RecursionError:
                raise SyntaxProblem("this YAML is nested too deeply", None) from None
        return located
    finally:
        loader.dispose()


_PLAIN_TAGS: dict[type, str] = {yaml.MappingNode: "tag:yaml.org,2002:map",
               yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _from_node(loader: yaml.SafeLoader, node: yaml.Node, path: Path,
               lines: dict[Path, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    plain_tag = _PLAIN_TAGS.get(type(node))
    if plain_tag is not None and node.tag != plain_tag:
        raise SyntaxProblem(f"the tag '{node.tag}' is not allowed in a scale document",
                            node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node)
            if isinstance(key, list | dict) or key is None:
                raise SyntaxProblem("a field name must be plain text", key_node.start_mark.line + 1)
            if key in result:
                raise SyntaxProblem(f"'{key}' appears twice here", key_node.start_mark.line + 1)
            # A field's line is its name's line (a block value starts on the next one).
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _from_node(loader, value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_from_node(loader, child, (*path, index), lines)
                for index, child in enumerate(node.value)]
    return _scalar(loader, node)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SyntaxProblem("a field name must be plain text", node.start_mark.line + 1)
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or node.start_mark
        raise SyntaxProblem(f"this value cannot be read: {error.problem}", mark.line + 1) from None


# ---- JSON ------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def parse_json(text: str) -> Located:
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise SyntaxProblem(f"this is not valid JSON: {error.msg}", error.lineno) from None
    except RecursionError:
        raise SyntaxProblem("this JSON is nested too deeply", None) from None
    reader = _JsonReader(text)
    located = Located(None)
    try:
        located.data = reader.value(reader.skip(0), (), located.lines)[0]
    except RecursionError:
        raise SyntaxProblem("this JSON is nested too deeply", None) from None
    return located


class _JsonReader:
    """Reads text that json.loads has already accepted, noting each value's line."""

    def __init__(self, text: str) -> None:
        self.text = text

    def skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        return match.end() if match else index

    def line_at(self, index: int) -> int:
        return self.text.count("\n", 0, index) + 1

    def value(self, index: int, path: Path, lines: dict[Path, int]) -> tuple[Any, int]:
        lines[path] = self.line_at(index)
        char = self.text[index]
        if char == "{":
            return self.obj(index + 1, path, lines)
        if char == "[":
            return self.array(index + 1, path, lines)
        if char == '"':
            return scanstring(self.text, index + 1)
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, index):
                return literal, index + len(word)
        match = _NUMBER.match(self.text, index)
        if match is None:  # pragma: no cover - json.loads accepted it
            raise SyntaxProblem("this is not valid JSON", self.line_at(index))
        number = match.group()
        parsed: float | int = float(number) if any(c in number for c in ".eE") else int(number)
        return parsed, match.end()

    def obj(self, index: int, path: Path, lines: dict[Path, int]) -> tuple[Any, int]:
        result: dict[str, Any] = {}
        index = self.skip(index)
        if self.text[index] == "}":
            return result, index + 1
        while True:
            key_line = self.line_at(index)
            key, index = scanstring(self.text, index + 1)
            if key in result:
                raise SyntaxProblem(f"'{key}' appears twice here", key_line)
            index = self.skip(self.skip(index) + 1)  # the colon
            result[key], index = self.value(index, (*path, key), lines)
            lines[(*path, key)] = key_line
            index = self.skip(index)
            if self.text[index] == "}":
                return result, index + 1
            index = self.skip(index + 1)  # the comma

    def array(self, index: int, path: Path, lines: dict[Path, int]) -> tuple[Any, int]:
        result: list[Any] = []
        index = self.skip(index)
        if self.text[index] == "]":
            return result, index + 1
        while True:
            item, index = self.value(index, (*path, len(result)), lines)
            result.append(item)
            index = self.skip(index)
            if self.text[index] == "]":
                return result, index + 1
            index = self.skip(index + 1)
