"""A small, safe expression language for scale scores.

Grammar (recursive descent; nothing is ever passed to eval)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | primary
    primary := NUMBER | NAME | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"

"−", "×" and "÷" are accepted for "-", "*" and "/". Names are item ids, subscale ids or earlier
formulas; functions are sum, mean, min and max. A value that cannot be computed (an unanswered
item, a division by zero) makes the whole formula "not defined" with the reason, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_LENGTH = 500
MAX_DEPTH = 40
FUNCTIONS = ("sum", "mean", "min", "max")
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"

_TOKEN = re.compile(
    rf"\s*(?:(?P<number>\d+(?:\.\d+)?|\.\d+)|(?P<name>{NAME_PATTERN})|(?P<op>[-+*/(),−×÷]))"
)
_UNICODE_OPS = {"−": "-", "×": "*", "÷": "/"}


class FormulaError(ValueError):
    """A formula that cannot be read; `column` is 1-based within the formula text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class Undefined(Exception):  # noqa: N818 - a value state, not an error
    """The formula has no value for these answers; `reason` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    column: int


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]
    column: int


Node = Num | Name | Unary | Binary | Call


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is longer than {MAX_LENGTH} characters", 1)
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise FormulaError(f"'{text[column - 1]}' is not allowed in a formula", column)
        kind = match.lastgroup or "op"
        value = match.group(kind)
        tokens.append(Token(kind, _UNICODE_OPS.get(value, value), match.start(kind) + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        if self.current.text != text or self.current.kind != "op":
            found = f"'{self.current.text}'" if self.current.text else "the end of the formula"
            raise FormulaError(f"expected '{text}' but found {found}", self.current.column)
        self.take()

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise FormulaError("the formula is empty", 1)
        node = self.expr()
        if self.current.kind != "end":
            raise FormulaError(f"unexpected '{self.current.text}'", self.current.column)
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.current.kind == "op" and self.current.text in "+-":
            node = Binary(self.take().text, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.current.kind == "op" and self.current.text in "*/":
            node = Binary(self.take().text, node, self.unary())
        return node

    def unary(self) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise FormulaError("the formula is nested too deeply", self.current.column)
            if self.current.kind == "op" and self.current.text in "+-":
                op = self.take().text
                return Unary(op, self.unary())
            return self.primary()
        finally:
            self.depth -= 1

    def primary(self) -> Node:
        token = self.current
        if token.kind == "number":
            self.take()
            return Num(float(token.text))
        if token.kind == "name":
            self.take()
            if self.current.kind == "op" and self.current.text == "(":
                return self.call(token)
            return Name(token.text, token.column)
        if token.kind == "op" and token.text == "(":
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        if token.kind == "end":
            raise FormulaError("the formula ends too early", token.column)
        raise FormulaError(f"unexpected '{token.text}'", token.column)

    def call(self, name: Token) -> Node:
        if name.text not in FUNCTIONS:
            raise FormulaError(
                f"'{name.text}' is not a function; use one of {', '.join(FUNCTIONS)}", name.column
            )
        self.expect("(")
        args: list[Node] = []
        if not (self.current.kind == "op" and self.current.text == ")"):
            args.append(self.expr())
            while self.current.kind == "op" and self.current.text == ",":
                self.take()
                args.append(self.expr())
        self.expect(")")
        if not args:
            raise FormulaError(f"{name.text}() needs at least one value", name.column)
        return Call(name.text, tuple(args), name.column)


def parse(text: str) -> Node:
    """The formula's syntax tree, or FormulaError saying what is wrong and where."""
    return _Parser(text).parse()


def names_in(node: Node) -> list[Name]:
    """Every name the formula refers to, in order of appearance."""
    if isinstance(node, Name):
        return [node]
    if isinstance(node, Unary):
        return names_in(node.operand)
    if isinstance(node, Binary):
        return names_in(node.left) + names_in(node.right)
    if isinstance(node, Call):
        return [name for arg in node.args for name in names_in(arg)]
    return []


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


_APPLY: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "mean": _mean, "min": min, "max": max,
}


def evaluate(node: Node, values: Mapping[str, float | None]) -> float:
    """The formula's value; raises Undefined (with the reason) when it has none.

    `values` maps every known name to its value, None when it has none (e.g. unanswered).
    """
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        value = values.get(node.name)
        if value is None:
            raise Undefined(f"'{node.name}' has no value yet")
        return value
    if isinstance(node, Unary):
        operand = evaluate(node.operand, values)
        return -operand if node.op == "-" else operand
    if isinstance(node, Binary):
        left, right = evaluate(node.left, values), evaluate(node.right, values)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        if right == 0:
            raise Undefined("it would divide by zero")
        return left / right
    return _APPLY[node.function]([evaluate(arg, values) for arg in node.args])
