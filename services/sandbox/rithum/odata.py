"""The OData 4 subset the real API offers and the connector uses: `$filter`, `$select`, `$expand`,
`$orderby`, `$top`, `$skip`, `$count` and server-driven paging by `@odata.nextLink`.

Filters compile to Python closures once per query text, and an `or`-chain of `eq` lookups on an
indexed property (`Sku eq 'A' or Sku eq 'B'`, `ID eq 5`) or of `ge`/`gt` bounds on an ordered one
(`UpdateDateUtc ge 2026-...`, the connector's check after each feed file) is answered from the index,
so lookups stay fast on 100k products.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import urlencode

from .errors import bad_request


class T(Enum):
    """Edm types of the properties the sandbox knows."""

    STR = "Edm.String"
    INT = "Edm.Int32"
    FLOAT = "Edm.Decimal"
    BOOL = "Edm.Boolean"
    DATETIME = "Edm.DateTimeOffset"
    NULL = "null"


NUMERIC = {T.INT, T.FLOAT}
Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Getter = Callable[[Row], Any]


def parse_datetime(text: str) -> datetime:
    """ISO 8601 date or date-time; naive values are UTC, as every date in the API is."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# --- key predicates ------------------------------------------------------------------------------

_KEY_PART = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*(?:'((?:[^']|'')*)'|(-?\d+))\s*(,|\Z)")


def parse_key(text: str, entity: str, keys: Mapping[str, T]) -> dict[str, Any]:
    """A compound key such as `ProductID=12, Name='it''s'` (the text between the parentheses).

    Every key of `keys` must be named once with a literal of its type (integers bare, strings in
    single quotes with `''` for a quote); the order of the parts is free, as OData allows.
    """
    values: dict[str, Any] = {}
    position = 0
    while position < len(text):
        found = _KEY_PART.match(text, position)
        if found is None:
            raise bad_request(f"The key '({text})' of {entity} is not valid OData: expected Name=value pairs.")
        name, string, number, comma = found.groups()
        kind = keys.get(name)
        if kind is None or name in values:
            raise bad_request(f"'{name}' is not a key property of {entity}, or it is named twice.")
        if (kind is T.STR) != (string is not None):
            raise bad_request(f"The key property '{name}' of {entity} needs a literal of type {kind.value}.")
        values[name] = string.replace("''", "'") if string is not None else int(number)
        position = found.end()
        if comma and position == len(text):
            raise bad_request(f"The key '({text})' of {entity} ends with a comma.")
    missing = [name for name in keys if name not in values]
    if missing:
        raise bad_request(f"The key of {entity} needs {', '.join(missing)}.")
    return values


# --- $filter -------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)(?![\w.])
    | (?P<num>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_FUNCTIONS = {
    "contains": lambda a, b: b in a,
    "startswith": lambda a, b: a.startswith(b),
    "endswith": lambda a, b: a.endswith(b),
}


@dataclass(frozen=True)
class Lookup:
    """`prop eq value` (or `ge`/`gt` on an ordered property), a candidate for answering from an index."""

    prop: str
    value: Any
    op: str = "eq"


@dataclass
class Filter:
    predicate: Predicate
    # Index lookups whose union contains every match, or None when the filter needs a full scan.
    lookups: list[Lookup] | None


@dataclass
class _Operand:
    type: T
    get: Getter
    prop: str | None = None
    literal: Any = None


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise bad_request(f"Syntax error at position {pos} in $filter '{text}'.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over `or` / `and` / `not`, comparisons and the string functions."""

    def __init__(
        self, text: str, entity: str, schema: Mapping[str, T], indexed: Iterable[str], ordered: Iterable[str]
    ) -> None:
        self.text = text
        self.entity = entity
        self.schema = schema
        self.indexed = set(indexed)
        self.ordered = set(ordered)
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> Filter:
        result = self._or()
        if self.pos != len(self.tokens):
            raise bad_request(f"Unexpected '{self.tokens[self.pos][1]}' in $filter '{self.text}'.")
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise bad_request(f"Unexpected end of $filter '{self.text}'.")
        self.pos += 1
        return token

    def _expect(self, value: str) -> None:
        _, text = self._next()
        if text != value:
            raise bad_request(f"Expected '{value}' but found '{text}' in $filter '{self.text}'.")

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token and token[0] == "word" and token[1] == word:
            self.pos += 1
            return True
        return False

    def _or(self) -> Filter:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            lp, rp = left.predicate, right.predicate
            lookups = left.lookups + right.lookups if left.lookups is not None and right.lookups is not None else None
            left = Filter(lambda r, lp=lp, rp=rp: lp(r) or rp(r), lookups)
        return left

    def _and(self) -> Filter:
        left = self._unary()
        while self._keyword("and"):
            right = self._unary()
            lp, rp = left.predicate, right.predicate
            lookups = left.lookups if left.lookups is not None else right.lookups
            left = Filter(lambda r, lp=lp, rp=rp: lp(r) and rp(r), lookups)
        return left

    def _unary(self) -> Filter:
        if self._keyword("not"):
            inner = self._unary().predicate
            return Filter(lambda r: not inner(r), None)
        token = self._peek()
        if token == ("punct", "("):
            self.pos += 1
            inner_filter = self._or()
            self._expect(")")
            return inner_filter
        left = self._operand()
        if left.type is T.BOOL and left.prop is None and left.literal is None:
            return Filter(lambda r, g=left.get: bool(g(r)), None)  # a function call standing alone
        _, op = self._next()
        if op not in _COMPARE:
            raise bad_request(f"Expected a comparison operator but found '{op}' in $filter '{self.text}'.")
        right = self._operand()
        return self._comparison(left, op, right)

    def _comparison(self, left: _Operand, op: str, right: _Operand) -> Filter:
        compatible = (
            left.type is right.type
            or T.NULL in (left.type, right.type)
            or (left.type in NUMERIC and right.type in NUMERIC)
        )
        if not compatible:
            raise bad_request(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{left.type.value}' and '{right.type.value}' for operator kind '{op}'."
            )
        compare = _COMPARE[op]
        lget, rget = left.get, right.get
        if op in ("eq", "ne"):
            predicate: Predicate = lambda r: compare(lget(r), rget(r))  # noqa: E731
        else:

            def predicate(r: Row) -> bool:
                a, b = lget(r), rget(r)
                return a is not None and b is not None and compare(a, b)

        lookups = None
        if right.prop is None and right.literal is not None:
            if (op == "eq" and left.prop in self.indexed) or (op in ("ge", "gt") and left.prop in self.ordered):
                lookups = [Lookup(left.prop, right.literal, op)]
        return Filter(predicate, lookups)

    def _operand(self) -> _Operand:
        kind, text = self._next()
        if kind == "str":
            value = text[1:-1].replace("''", "'")
            return _Operand(T.STR, lambda r: value, literal=value)
        if kind == "dt":
            try:
                moment = parse_datetime(text)
            except ValueError:
                raise bad_request(f"'{text}' is not a valid date-time in $filter.") from None
            return _Operand(T.DATETIME, lambda r: moment, literal=moment)
        if kind == "num":
            number: int | float = float(text) if "." in text else int(text)
            return _Operand(T.FLOAT if isinstance(number, float) else T.INT, lambda r: number, literal=number)
        if kind == "word":
            if text in ("true", "false"):
                flag = text == "true"
                return _Operand(T.BOOL, lambda r: flag, literal=flag)
            if text == "null":
                return _Operand(T.NULL, lambda r: None)
            if text in _FUNCTIONS:
                return self._function(text)
            if text in self.schema:
                return _Operand(self.schema[text], lambda r: r.get(text), prop=text)
            raise bad_request(f"Could not find a property named '{text}' on type '{self.entity}'.")
        raise bad_request(f"Unexpected '{text}' in $filter '{self.text}'.")

    def _function(self, name: str) -> _Operand:
        self._expect("(")
        subject = self._operand()
        self._expect(",")
        needle = self._operand()
        self._expect(")")
        if subject.type is not T.STR or needle.type is not T.STR:
            raise bad_request(f"{name}() takes two string arguments.")
        test, sget, nget = _FUNCTIONS[name], subject.get, needle.get

        def call(r: Row) -> bool:
            a, b = sget(r), nget(r)
            return a is not None and b is not None and test(a, b)

        return _Operand(T.BOOL, call)


def compile_filter(
    text: str, entity: str, schema: Mapping[str, T], indexed: Iterable[str] = (), ordered: Iterable[str] = ()
) -> Filter:
    if not text.strip():
        raise bad_request("$filter is empty.")
    return _Parser(text, entity, schema, indexed, ordered).parse()


# --- $orderby, $select, $expand ------------------------------------------------------------------


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


def order_rows(rows: Sequence[Row], orderby: str, entity: str, schema: Mapping[str, T]) -> list[Row]:
    """Sort by `Prop [asc|desc], ...`; nulls first ascending, as OData specifies."""
    keys: list[tuple[str, bool]] = []
    for part in orderby.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_request(f"Invalid $orderby clause '{part.strip()}'.")
        if words[0] not in schema:
            raise bad_request(f"Could not find a property named '{words[0]}' on type '{entity}'.")
        keys.append((words[0], len(words) == 2 and words[1] == "desc"))
    ordered = list(rows)
    for prop, descending in reversed(keys):
        ordered.sort(key=lambda r, p=prop: _sort_key(r.get(p)), reverse=descending)
    return ordered


def parse_select(text: str | None, entity: str, allowed: Iterable[str]) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = set(allowed)
    for name in names:
        if name not in known:
            raise bad_request(f"Could not find a property named '{name}' on type '{entity}'.")
    return names


def parse_expand(text: str | None, entity: str, allowed: Iterable[str]) -> set[str]:
    """Top-level navigation names; nested options in parentheses are accepted and not interpreted."""
    if not text:
        return set()
    names, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0 and char != ")":
            current += char
    names.append(current)
    known = set(allowed)
    result = set()
    for name in (n.strip() for n in names):
        if name not in known:
            raise bad_request(f"Could not find a navigation property named '{name}' on type '{entity}'.")
        result.add(name)
    return result


# --- query options and paging --------------------------------------------------------------------

_OPTIONS = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count"}


@dataclass
class Query:
    params: list[tuple[str, str]]
    filter: str | None = None
    select: str | None = None
    expand: str | None = None
    orderby: str | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    skiptoken: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _non_negative(name: str, text: str) -> int:
    if not text.isdigit():
        raise bad_request(f"The value '{text}' of {name} is not a non-negative integer.")
    return int(text)


def parse_query(params: Sequence[tuple[str, str]], *, skiptoken: bool = False) -> Query:
    """Unknown `$` options are refused; other parameters (e.g. `exported`) are kept in `extra`.

    `$skiptoken` (the continuation a nextLink carries) is accepted only where `skiptoken` says so.
    """
    query = Query(params=[(k, v) for k, v in params if k != "access_token"])
    seen: set[str] = set()
    for key, value in query.params:
        if key in seen and key.startswith("$"):
            raise bad_request(f"The query option '{key}' is given more than once.")
        seen.add(key)
        if key.startswith("$") and key not in _OPTIONS and not (skiptoken and key == "$skiptoken"):
            raise bad_request(f"The query parameter '{key}' is not supported.")
        if key == "$filter":
            query.filter = value
        elif key == "$select":
            query.select = value
        elif key == "$expand":
            query.expand = value
        elif key == "$orderby":
            query.orderby = value
        elif key == "$top":
            query.top = _non_negative(key, value)
        elif key == "$skip":
            query.skip = _non_negative(key, value)
        elif key == "$count":
            if value not in ("true", "false"):
                raise bad_request(f"The value '{value}' of $count is not 'true' or 'false'.")
            query.count = value == "true"
        elif key == "$skiptoken":
            query.skiptoken = value
        else:
            query.extra[key] = value
    return query


def page_bounds(
    query: Query, total: int, page_size: int, continuation: Callable[[], str] | None = None
) -> tuple[int, int, str | None]:
    """The slice to answer and the query string of the next page (None when this is the last).

    `continuation` gives the `$skiptoken` the next page carries; it is asked only when there is one.
    """
    start = query.skip
    wanted = page_size if query.top is None else min(query.top, page_size)
    end = min(start + wanted, total)
    remaining_top = None if query.top is None else query.top - (end - start)
    if end >= total or remaining_top == 0:
        return start, end, None
    params = [(k, v) for k, v in query.params if k not in ("$skip", "$top", "$skiptoken")]
    if remaining_top is not None:
        params.append(("$top", str(remaining_top)))
    params.append(("$skip", str(end)))
    if continuation is not None:
        params.append(("$skiptoken", continuation()))
    return start, end, urlencode(params, safe="$(),'")
