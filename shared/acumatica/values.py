"""Acumatica's value-wrapped JSON, to and from plain Python structures.

The contract-based API wraps every general field (`"InventoryID": {"value": "X"}`), nests linked
entities as objects and details as arrays, keeps system fields bare, and carries custom fields as
`"custom": {"View": {"Field": {"type": "...", "value": ...}}}`. Code on both sides of the wire (the
client and the sandbox) works with plain dicts and converts only at the edge, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

SYSTEM_FIELDS = frozenset({"id", "rowNumber", "note", "delete", "error", "files", "_links"})
_VALUE_KEYS = frozenset({"value", "error", "type"})
# Values `plain` returns unchanged (exact types: a subclass such as an enum goes the general way).
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_CUSTOM_TYPES = (
    (bool, "CustomBooleanField"),
    (int, "CustomIntField"),
    (float, "CustomDecimalField"),
    (datetime, "CustomDateTimeField"),
)


def format_datetime(value: datetime) -> str:
    """The API's own shape: milliseconds and an explicit offset (`2024-07-15T10:31:28.402+00:00`)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="milliseconds")


def parse_datetime(text: str) -> datetime:
    """Parse an API timestamp; a value without offset is taken as UTC (the sandbox and the filters agree)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plain(value: Any) -> Any:
    """A JSON-ready scalar: datetimes and dates become the API's string forms."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _is_value_object(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and obj.keys() <= _VALUE_KEYS and ("value" in obj or "error" in obj)


def unwrap(obj: Any) -> Any:
    """Value-wrapped JSON → plain structure (field errors are dropped; see `field_errors`)."""
    if type(obj) is dict and len(obj) == 1 and "value" in obj:  # most fields: skip the general checks
        return obj["value"]
    if isinstance(obj, list):
        return [unwrap(item) for item in obj]
    if not isinstance(obj, Mapping):
        return obj
    if _is_value_object(obj):
        return obj.get("value")
    out: dict[str, Any] = {}
    for key, val in obj.items():
        if key == "custom" and isinstance(val, Mapping):
            out[key] = {
                view: {name: unwrap(field) for name, field in fields.items()}
                for view, fields in val.items()
                if isinstance(fields, Mapping)
            }
        elif key in SYSTEM_FIELDS:
            out[key] = val
        else:
            out[key] = unwrap(val)
    return out


def wrap(obj: Any) -> Any:
    """Plain structure → value-wrapped JSON, the inverse of `unwrap`."""
    if type(obj) in _JSON_SCALARS:
        return {"value": obj}
    if isinstance(obj, list):
        return [wrap(item) for item in obj]
    if not isinstance(obj, Mapping):
        return {"value": plain(obj)}
    out: dict[str, Any] = {}
    for key, val in obj.items():
        if key in SYSTEM_FIELDS:
            out[key] = val
        elif type(val) in _JSON_SCALARS:  # most fields: skip the call and the ABC checks (sandbox list pages)
            out[key] = {"value": val}
        elif key == "custom" and isinstance(val, Mapping):
            out[key] = {
                view: {name: custom_value(field) for name, field in fields.items()} for view, fields in val.items()
            }
        else:
            out[key] = wrap(val)
    return out


def custom_value(value: Any) -> dict[str, Any]:
    kind = next((name for typ, name in _CUSTOM_TYPES if isinstance(value, typ)), "CustomStringField")
    return {"type": kind, "value": plain(value)}


def field_errors(obj: Any, path: tuple[str | int, ...] = ()) -> dict[tuple[str | int, ...], str]:
    """Every `"error"` in a (422) response, keyed by its path, e.g. `("Details", 0, "InventoryID")`."""
    found: dict[tuple[str | int, ...], str] = {}
    if isinstance(obj, list):
        for index, item in enumerate(obj):
            found.update(field_errors(item, (*path, index)))
    elif isinstance(obj, Mapping):
        if _is_value_object(obj):
            if obj.get("error"):
                found[path] = str(obj["error"])
            return found
        for key, val in obj.items():
            if key == "error" and isinstance(val, str) and path:
                found[path] = val
            elif key == "custom" and isinstance(val, Mapping):
                for view, fields in val.items():
                    if isinstance(fields, Mapping):
                        found.update(field_errors(fields, (*path, "custom", view)))
            elif key not in SYSTEM_FIELDS:
                found.update(field_errors(val, (*path, key)))
    return found


def attribute(record: Mapping[str, Any], attribute_id: str) -> Any:
    """Value of an attribute from a plain record's `Attributes[]` (None when absent)."""
    for row in record.get("Attributes") or ():
        if str(row.get("AttributeID", "")).strip().upper() == attribute_id.upper():
            return row.get("Value")
    return None


def custom_field(record: Mapping[str, Any], path: str) -> Any:
    """Value of a custom field `View.Field` from a plain record's `custom` block."""
    view, _, name = path.partition(".")
    return ((record.get("custom") or {}).get(view) or {}).get(name)


def custom_block(values: Iterable[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """Plain `custom` block from `("View.Field", value)` pairs."""
    block: dict[str, dict[str, Any]] = {}
    for path, value in values:
        view, _, name = path.partition(".")
        if not name:
            raise ValueError(f"custom field {path!r} must look like 'View.Field'")
        block.setdefault(view, {})[name] = value
    return block
