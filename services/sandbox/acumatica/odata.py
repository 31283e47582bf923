"""The OData v3 subset Acumatica's contract API accepts in `$filter`, `$select` and `$expand`.

A filter is parsed once per request into a predicate over plain records, so a list query only pays
for evaluating it on the records it walks. Comparisons behave like SQL Server's default collation
(case-insensitive strings), which is what the real API runs on. A filter that is only `or`-ed
equalities of the entity's leading key field with string literals (`InventoryID eq 'A' or ...`, what
the connector sends for a batch of keys) also yields those literals, so the store can look the rows
up instead of testing every one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.acumatica.values import attribute, parse_datetime

from .entities import EntitySpec

Getter = Callable[[dict[str, Any]], Any]
Predicate = Callable[[dict[str, Any]], bool]


class QueryError(ValueError):
    """A malformed query option; the API answers 400 with this message."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<typed>(?:datetimeoffset|datetime|date|guid)'[^']*')
      | (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?(?:[mMdDfFlL])?)
      | (?P<custom>cf\.(?:String|Boolean|Int|Decimal|DateTime|Double|Guid|Short|Long)\(\s*f\s*=\s*'[^']*'\s*\))
      | (?P<name>[A-Za-z_][\w]*(?:/[A-Za-z_][\w]*)*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_FUNCTIONS = {
    "substringof": lambda needle, hay: needle in hay,
    "startswith": lambda hay, prefix: hay.startswith(prefix),
    "endswith": lambda hay, suffix: hay.endswith(suffix),
}


def fold(text: str) -> str:
    """A string as `$filter` compares it: trailing spaces ignored, case-insensitive."""
    return text.rstrip().casefold()


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return fold(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        if op == "eq":
            return left is None and right is None
        return op == "ne" and (left is None) != (right is None)
    left, right = _comparable(left), _comparable(right)
    if isinstance(left, bool) != isinstance(right, bool):
        return op == "ne"
    try:
        return bool(_COMPARISONS[op](left, right))
    except TypeError:  # e.g. a number compared with a string: no row matches, as in SQL with a cast error avoided
        return op == "ne"


def custom_getter(path: str) -> Getter:
    """`View.UsrField` reads the record's custom block; `View.AttributeX` reads attribute X."""
    view, _, name = path.partition(".")
    if not view or not name:
        raise QueryError(f"custom field {path!r} must look like 'View.Field'")
    if name.startswith("Attribute") and len(name) > len("Attribute"):
        attribute_id = name[len("Attribute") :]
        return lambda record: attribute(record, attribute_id)
    return lambda record: ((record.get("custom") or {}).get(view) or {}).get(name)


def field_getter(spec: EntitySpec, path: str) -> Getter:
    parts = path.split("/")
    if not spec.knows(parts[0]):
        raise QueryError(f"Invalid field name '{parts[0]}' for entity {spec.name}.")
    if len(parts) == 1:
        name = parts[0]
        return lambda record: record.get(name)

    def get(record: dict[str, Any]) -> Any:
        value: Any = record
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return get


@dataclass(frozen=True, slots=True)
class Filter:
    test: Predicate
    # String literals the leading key field is compared `eq` with, when the whole filter is an `or` of
    # such comparisons: exactly the rows whose key equals one of them match (None: test every row).
    keys: tuple[str, ...] | None = None


class _Parser:
    def __init__(self, spec: EntitySpec, text: str) -> None:
        self.spec = spec
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise QueryError(f"Cannot parse $filter near {text[pos : pos + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1] != expected):
            raise QueryError(f"$filter: expected {expected or 'more input'}, got {token[1] if token else 'end'}")
        self.pos += 1
        return token

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "name" and token[1] in words

    def parse(self) -> Filter:
        result = self.or_expr()
        if self.peek() is not None:
            raise QueryError(f"$filter: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return result

    def or_expr(self) -> Filter:
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        tests = [p.test for p in parts]
        keys = tuple(k for p in parts for k in p.keys or ()) if all(p.keys is not None for p in parts) else None
        return Filter(lambda r: any(t(r) for t in tests), keys)

    def and_expr(self) -> Filter:
        parts = [self.not_expr()]
        while self.is_word("and"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        tests = [p.test for p in parts]
        return Filter(lambda r: all(t(r) for t in tests))

    def not_expr(self) -> Filter:
        if self.is_word("not"):
            self.take()
            inner = self.not_expr().test
            return Filter(lambda r: not inner(r))
        return self.comparison()

    def comparison(self) -> Filter:
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        subject = self.peek()
        left = self.operand()
        if self.is_word(*_COMPARISONS):
            op = self.take()[1]
            literal = self.peek()
            right = self.operand()
            keys = None
            if op == "eq" and subject == ("name", self.spec.keys[0]) and literal and literal[0] == "string":
                keys = (_string(literal[1]),)
            return Filter(lambda r: _compare(op, left(r), right(r)), keys)
        return Filter(lambda r: left(r) is True)

    def operand(self) -> Getter:
        kind, text = self.take()
        if kind == "string":
            value: Any = _string(text)
            return lambda _r: value
        if kind == "number":
            stripped = text.rstrip("mMdDfFlL")
            value = float(stripped) if "." in stripped or stripped != text else int(stripped)
            return lambda _r: value
        if kind == "typed":
            value = _typed_literal(text)
            return lambda _r: value
        if kind == "custom":
            path = re.search(r"'([^']*)'", text).group(1)  # type: ignore[union-attr]
            return custom_getter(path)
        if kind == "name":
            if text in ("true", "false"):
                flag = text == "true"
                return lambda _r: flag
            if text == "null":
                return lambda _r: None
            if text in _FUNCTIONS:
                return self.function(text)
            return field_getter(self.spec, text)
        raise QueryError(f"$filter: unexpected {text!r}")

    def function(self, name: str) -> Getter:
        self.take("(")
        first = self.operand()
        self.take(",")
        second = self.operand()
        self.take(")")
        test = _FUNCTIONS[name]

        def call(record: dict[str, Any]) -> bool:
            a, b = first(record), second(record)
            if not isinstance(a, str) or not isinstance(b, str):
                return False
            return test(a.casefold(), b.casefold())

        return call


def _string(token: str) -> str:
    return token[1:-1].replace("''", "'")


def _typed_literal(text: str) -> Any:
    kind, _, rest = text.partition("'")
    raw = rest[:-1]
    try:
        if kind == "datetimeoffset":
            return parse_datetime(raw)
        if kind == "datetime":
            return parse_datetime(raw)
        if kind == "date":
            return date.fromisoformat(raw)
    except ValueError as exc:
        raise QueryError(f"$filter: invalid {kind} literal '{raw}'") from exc
    return raw  # guid


def parse_filter(spec: EntitySpec, text: str | None) -> Filter | None:
    if not text or not text.strip():
        return None
    return _Parser(spec, text).parse()


def parse_paths(spec: EntitySpec, text: str | None, option: str) -> set[str] | None:
    """`$select` / `$expand` as a set of slash paths, each checked against the entity's fields."""
    if text is None or not text.strip():
        return None
    paths = {part.strip() for part in text.split(",") if part.strip()}
    for path in paths:
        head = path.split("/")[0]
        if not spec.knows(head):
            raise QueryError(f"{option}: '{head}' is not a field of {spec.name}.")
        if option == "$expand" and head not in spec.expandable:
            raise QueryError(f"$expand: '{head}' is not a detail or linked entity of {spec.name}.")
    if option == "$expand":  # expanding `MainContact/Address` expands `MainContact` too
        paths |= {"/".join(p.split("/")[:n]) for p in paths for n in range(1, p.count("/") + 1)}
    return paths


def parse_custom(text: str | None) -> list[str]:
    if not text:
        return []
    paths = [part.strip() for part in text.split(",") if part.strip()]
    for path in paths:
        custom_getter(path)  # validates the shape
    return paths


def parse_int(value: str | None, option: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise QueryError(f"{option} must be a non-negative integer, got {value!r}") from exc
    if number < 0:
        raise QueryError(f"{option} must be a non-negative integer, got {value!r}")
    return number
