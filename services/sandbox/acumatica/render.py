"""Stored record → the JSON the API returns, honouring `$select`, `$expand` and `$custom`.

As in the real API nothing nested is returned unless expanded: details, linked entities and the
derived collections (a template's `Matrix`, a category's `Members`) all need `$expand`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.acumatica.values import custom_value, plain, wrap

from .entities import ATTRIBUTES, EntitySpec
from .odata import custom_getter
from .store import Store, normalize_key

_MATRIX_FIELDS = ("InventoryID", "Description", "DefaultPrice", "MSRP", "ItemStatus", "ExportToExternal")


@dataclass(frozen=True)
class View:
    select: set[str] | None = None
    expand: set[str] = field(default_factory=set)
    custom: list[str] = field(default_factory=list)
    # per-prefix answers of `selected`, asked once per field of every record of a page
    _selected: dict[str, set[str] | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def selected(self, prefix: str) -> set[str] | None:
        """Field names `$select` keeps at the level under `prefix` (None: all of them)."""
        if self.select is None:
            return None
        if prefix not in self._selected:
            names = {path[len(prefix) :].split("/")[0] for path in self.select if path.startswith(prefix)}
            names.discard("")
            self._selected[prefix] = names or (None if prefix else set())
        return self._selected[prefix]


class Renderer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def render(self, spec: EntitySpec, record: dict[str, Any], view: View, row_number: int = 1) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.store.record_id(spec.name, record), "rowNumber": row_number}
        out.update(self._level(record, view, ""))
        for path in view.expand:
            head = path.split("/")[0]
            if head in spec.derived and self._keeps(view, "", head):
                rows = self._derived(spec, record, head)
                out[head] = [
                    {"id": row["id"], "rowNumber": n, **self._level(row, view, f"{head}/")}
                    for n, row in enumerate(rows, 1)
                ]
        body = wrap(out)
        body["custom"] = self._custom(record, view.custom)
        return body

    def _keeps(self, view: View, prefix: str, name: str) -> bool:
        selected = view.selected(prefix)
        return selected is None or name in selected

    def _level(self, obj: dict[str, Any], view: View, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        selected = view.selected(prefix)
        for name, value in obj.items():
            if name in ("id", "custom") or (selected is not None and name not in selected):
                continue
            if isinstance(value, list):
                if prefix + name in view.expand:
                    out[name] = [self._row(name, row, view, f"{prefix}{name}/", i) for i, row in enumerate(value, 1)]
            elif isinstance(value, dict):
                if prefix + name in view.expand:
                    out[name] = self._level(value, view, f"{prefix}{name}/")
            else:
                out[name] = value
        return out

    def _row(self, collection: str, row: dict[str, Any], view: View, prefix: str, number: int) -> dict[str, Any]:
        if "id" not in row:
            row["id"] = self.store.new_id()
        if collection == "Attributes":
            attribute_id = str(row.get("AttributeID", ""))
            row = {
                "AttributeID": attribute_id,
                "AttributeDescription": ATTRIBUTES.get(attribute_id.upper(), attribute_id),
                **row,
            }
            row.setdefault("ValueDescription", row.get("Value"))
            row.setdefault("Required", False)
            row.setdefault("IsActive", True)
        return {"id": row["id"], "rowNumber": number, **self._level(row, view, prefix)}

    def _derived(self, spec: EntitySpec, record: dict[str, Any], name: str) -> list[dict[str, Any]]:
        key = normalize_key(tuple(record.get(k) for k in spec.keys))
        rows: list[dict[str, Any]] = []
        if name == "Matrix":
            items = self.store.table("StockItem").rows
            for variant in self.store.variants.get(key, {}):
                item = items.get(variant)
                if item is not None:
                    rows.append(
                        {"id": self.store.record_id("StockItem", item), **{f: item.get(f) for f in _MATRIX_FIELDS}}
                    )
        elif name == "Members":
            for entity, member in self.store.members.get(key, {}):
                item = self.store.table(entity).rows.get(member)
                if item is not None:
                    rows.append(
                        {
                            "id": self.store.record_id(entity, item),
                            "InventoryID": item.get("InventoryID"),
                            "ItemClass": item.get("ItemClass"),
                            "ItemStatus": item.get("ItemStatus"),
                        }
                    )
        return rows

    def _custom(self, record: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        block: dict[str, Any] = {}
        for path in paths:
            view_name, _, field_name = path.partition(".")
            block.setdefault(view_name, {})[field_name] = custom_value(custom_getter(path)(record))
        return block


def flat(value: Any) -> Any:
    """A stored record as plain JSON (admin API): datetimes as strings, nothing wrapped."""
    if isinstance(value, dict):
        return {k: flat(v) for k, v in value.items()}
    if isinstance(value, list):
        return [flat(v) for v in value]
    return plain(value)
