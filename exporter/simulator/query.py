"""Codat's query language (the subset the simulator needs): parse, resolve fields, evaluate, order.

Grammar, as documented by Codat::

    expression := conjunction ("||" conjunction)*
    conjunction := term ("&&" term)*
    term       := "{" expression "}" | property operator value
    operator   := "=" | "!=" | "~" | ">" | "<" | ">=" | "<="

Values run to the next ``&&``, ``||`` or ``}`` and are trimmed. Dates are
``YYYY-MM-DD`` (midnight UTC) or full ISO-8601 timestamps. Everything here is
pure: a parse error or an unknown property raises ``QueryError``, which the
HTTP layer turns into Codat's 400 "Error parsing query" answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

T = TypeVar("T")

MAX_QUERY_LENGTH = 2048
OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "~")
FieldKind = Literal["string", "date", "number"]


class QueryError(ValueError):
    """The query cannot be parsed or refers to a property that does not exist."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """``property operator value``."""

    prop: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``&&`` or ``||`` over two or more sub-expressions."""

    op: Literal["&&", "||"]
    items: tuple[Node, ...]


Node = Comparison | BoolOp


@dataclass(frozen=True, slots=True)
class Field:
    """How to read one queryable property of an object.

    ``getter`` returns the value, ``None`` (null: never matches ``=``), or a
    list of values (an array of sub-objects: matches if any element matches).
    """

    kind: FieldKind
    getter: Callable[[Any], Any]


FieldResolver = Callable[[str], Field | None]

_PROPERTY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_query(text: str) -> Node:
    """Parse a query string into an expression tree; raise ``QueryError`` if malformed."""
    if len(text) >= MAX_QUERY_LENGTH:
        raise QueryError("Malformed query.")
    parser = _Parser(text)
    node = parser.expression()
    parser.skip_spaces()
    if parser.pos != len(text):
        raise QueryError("Malformed query.")
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def startswith(self, token: str) -> bool:
        self.skip_spaces()
        return self.text.startswith(token, self.pos)

    def expression(self) -> Node:
        return self.chain("||", self.conjunction)

    def conjunction(self) -> Node:
        return self.chain("&&", self.term)

    def chain(self, op: Literal["&&", "||"], operand: Callable[[], Node]) -> Node:
        """One or more ``operand``s joined by ``op`` (``||`` binds looser than ``&&``)."""
        items = [operand()]
        while self.startswith(op):
            self.pos += len(op)
            items.append(operand())
        return items[0] if len(items) == 1 else BoolOp(op, tuple(items))

    def term(self) -> Node:
        if self.startswith("{"):
            self.pos += 1
            node = self.expression()
            if not self.startswith("}"):
                raise QueryError("Malformed query.")
            self.pos += 1
            return node
        self.skip_spaces()
        match = _PROPERTY.match(self.text, self.pos)
        if not match:
            raise QueryError("Malformed query.")
        prop = match.group(0)
        self.pos = match.end()
        self.skip_spaces()
        op = next((o for o in OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise QueryError("Malformed query.")
        self.pos += len(op)
        end = len(self.text)
        for stop in ("&&", "||", "}"):
            found = self.text.find(stop, self.pos)
            if found != -1:
                end = min(end, found)
        value = self.text[self.pos : end].strip()
        if not value or any(c in value for c in "{=<>!~&|"):
            raise QueryError("Malformed query.")
        self.pos = end
        return Comparison(prop, op, value)


def parse_date(value: str) -> datetime:
    """A query date: ``YYYY-MM-DD`` means midnight UTC; timestamps without a zone are UTC."""
    try:
        if _DATE_ONLY.fullmatch(value):
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        if "." in text:
            # .NET writes 7 fractional digits; Python reads at most 6.
            head, _, tail = text.partition(".")
            digits = re.match(r"\d*", tail)
            frac = digits.group(0) if digits else ""
            text = f"{head}.{frac[:6].ljust(6, '0')}{tail[len(frac) :]}"
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise QueryError("Malformed query.") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


Predicate = Callable[[Any], bool]


def compile_query(node: Node, resolve: FieldResolver, entity: str) -> Predicate:
    """Turn a parsed query into a predicate; unknown properties raise ``QueryError``.

    ``entity`` names the object in the error, as Codat does ("... on Dataset").
    """
    if isinstance(node, BoolOp):
        parts = [compile_query(item, resolve, entity) for item in node.items]
        if node.op == "&&":
            return lambda obj: all(p(obj) for p in parts)
        return lambda obj: any(p(obj) for p in parts)
    field = resolve(node.prop)
    if field is None:
        raise QueryError(f"Could not resolve property {node.prop} on {entity}")
    return _comparison(field, node.op, node.value)


def _comparison(field: Field, op: str, raw: str) -> Predicate:
    expected: Any
    if field.kind == "date":
        if op == "~":
            raise QueryError("Malformed query.")
        expected = parse_date(raw)
    elif field.kind == "number":
        if op == "~":
            raise QueryError("Malformed query.")
        try:
            expected = float(raw)
        except ValueError as exc:
            raise QueryError("Malformed query.") from exc
    else:
        if op in (">", "<", ">=", "<="):
            raise QueryError("Malformed query.")
        expected = raw.lower()

    def test(actual: Any) -> bool:
        if actual is None:
            return op == "!="
        if field.kind == "string":
            actual = str(actual).lower()
        elif field.kind == "number":
            actual = float(actual)
        return _apply(op, actual, expected)

    getter = field.getter

    def predicate(obj: Any) -> bool:
        actual = getter(obj)
        if isinstance(actual, list):
            return any(test(a) for a in actual)
        return test(actual)

    return predicate


def _apply(op: str, actual: Any, expected: Any) -> bool:
    if op == "=":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if op == "~":
        return bool(expected in actual)
    if op == ">":
        return bool(actual > expected)
    if op == "<":
        return bool(actual < expected)
    if op == ">=":
        return bool(actual >= expected)
    return bool(actual <= expected)


def build_filter(query: str | None, resolve: FieldResolver, entity: str) -> Predicate:
    """Parse and compile ``query`` (``None`` or blank matches everything)."""
    if query is None or not query.strip():
        return lambda obj: True
    return compile_query(parse_query(query), resolve, entity)


def fields_resolver(fields: Mapping[str, Field]) -> FieldResolver:
    """A resolver over a fixed field table; property names match case-insensitively."""
    lowered = {name.lower(): field for name, field in fields.items()}
    return lambda name: lowered.get(name.lower())


def order_by(items: Sequence[T], spec: str | None, resolve: FieldResolver, entity: str) -> list[T]:
    """Sort by ``spec`` (a property, ``-`` prefix for descending); nulls sort last either way."""
    if spec is None or not spec.strip():
        return list(items)
    spec = spec.strip()
    descending = spec.startswith("-")
    name = spec[1:] if descending else spec
    field = resolve(name)
    if field is None:
        raise QueryError(f"Could not resolve property {name} on {entity}")
    present: list[tuple[Any, T]] = []
    missing: list[T] = []
    for item in items:
        key = field.getter(item)
        if isinstance(key, list):
            key = key[0] if key else None
        if key is None:
            missing.append(item)
        else:
            present.append((str(key).lower() if field.kind == "string" else key, item))
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [item for _, item in present] + missing


def matching(items: Iterable[T], predicate: Predicate) -> list[T]:
    """The items the predicate accepts, in order."""
    return [item for item in items if predicate(item)]
