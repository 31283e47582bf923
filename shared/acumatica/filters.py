"""Build `$filter` expressions (OData v3 as Acumatica reads them) without string pasting.

    modified_since(watermark)                        # LastModified gt datetimeoffset'2024-07-15T10:31:28.402+00:00'
    field("ItemStatus").eq("Active") & attribute("ACTIVERITHUM").eq("1")
    changed_between(start, end, "LastModifiedDateTime")

Literals are escaped here (quotes doubled, timestamps with offset), so values taken from other
systems cannot break or widen a filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.acumatica.values import format_datetime


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"datetimeoffset'{format_datetime(value)}'"
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot use {type(value).__name__} in a $filter")


@dataclass(frozen=True)
class Filter:
    text: str

    def __and__(self, other: Filter) -> Filter:
        return Filter(f"({self.text}) and ({other.text})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(f"({self.text}) or ({other.text})")

    def __invert__(self) -> Filter:
        return Filter(f"not ({self.text})")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Field:
    """A field reference: `ItemClass`, `MainContact/Email`, or a custom `cf.String(f='View.Field')`."""

    expression: str

    def _compare(self, op: str, value: Any) -> Filter:
        return Filter(f"{self.expression} {op} {literal(value)}")

    def eq(self, value: Any) -> Filter:
        return self._compare("eq", value)

    def ne(self, value: Any) -> Filter:
        return self._compare("ne", value)

    def gt(self, value: Any) -> Filter:
        return self._compare("gt", value)

    def ge(self, value: Any) -> Filter:
        return self._compare("ge", value)

    def lt(self, value: Any) -> Filter:
        return self._compare("lt", value)

    def le(self, value: Any) -> Filter:
        return self._compare("le", value)

    def startswith(self, prefix: str) -> Filter:
        return Filter(f"startswith({self.expression},{literal(prefix)})")

    def contains(self, text: str) -> Filter:
        return Filter(f"substringof({literal(text)},{self.expression})")


def field(name: str) -> Field:
    return Field(name)


def custom(path: str, kind: str = "String") -> Field:
    """A custom field, e.g. `custom("ItemSettings.UsrCAProductID")`."""
    view, _, name = path.partition(".")
    if not view or not name:
        raise ValueError(f"custom field {path!r} must look like 'View.Field'")
    return Field(f"cf.{kind}(f='{path}')")


def attribute(attribute_id: str, view: str = "ItemSettings") -> Field:
    """An attribute's value as a user-defined field (`ItemSettings.AttributeACTIVERITHUM`)."""
    return custom(f"{view}.Attribute{attribute_id}")


def all_of(*filters: Filter | None) -> Filter | None:
    present = [f for f in filters if f is not None]
    if not present:
        return None
    combined = present[0]
    for item in present[1:]:
        combined = combined & item
    return combined


def any_of(*filters: Filter) -> Filter:
    if not filters:
        raise ValueError("any_of needs at least one filter")
    combined = filters[0]
    for item in filters[1:]:
        combined = combined | item
    return combined


def modified_since(since: datetime, name: str = "LastModified") -> Filter:
    """Delta filter: records changed strictly after the watermark."""
    return field(name).gt(since)


def changed_between(start: datetime | None, end: datetime | None, name: str = "LastModified") -> Filter | None:
    """Custom date range: `start <= changed <= end`, either bound optional."""
    return all_of(
        field(name).ge(start) if start is not None else None,
        field(name).le(end) if end is not None else None,
    )
