"""In-memory tenant data: one insertion-ordered table per entity, change clock, transactions.

Records are plain dicts (see `shared.acumatica.values`) and are never mutated once stored: a change
stores a new dict, so the old one can travel in a push notification's `Deleted` rows. Tables keep
insertion order, which is what list paging walks, so a page over 100k records costs only the walk
up to `$skip + $top` matches; a filter on the leading key field is answered from an index instead.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .entities import SPECS, EntitySpec
from .odata import fold

Key = tuple[str, ...]


def normalize_key(values: tuple[Any, ...]) -> Key:
    """Keys compare like the SQL collation Acumatica runs on: case-insensitive, trailing spaces ignored."""
    return tuple(str(v).rstrip().upper() for v in values)


def key_of(spec: EntitySpec, record: dict[str, Any]) -> Key:
    return normalize_key(tuple(record.get(k) for k in spec.keys))


@dataclass(frozen=True, slots=True)
class Change:
    entity: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class Clock:
    """Millisecond timestamps that strictly increase, so `LastModified gt <watermark>` is exact."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        current = datetime.now(UTC)
        current = current.replace(microsecond=current.microsecond // 1000 * 1000)
        if current <= self._last:
            current = self._last + timedelta(milliseconds=1)
        self._last = current
        return current


class Table:
    """An entity's rows in insertion order, and an index of them by the leading key field.

    The index maps that field's value, folded as `$filter` compares strings, to the keys of the rows
    holding it, each with its place in insertion order, so `InventoryID eq 'A' or ...` finds its rows in
    the order a scan would without walking the table (and, with a composite key, finds every
    `KitInventoryID eq 'K'` revision). Rows whose value is not a string, which no string literal equals,
    share the bucket None: they still need their place kept. The index is built on the first lookup,
    so tables never queried by key cost no memory for it.
    """

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.rows: dict[Key, dict[str, Any]] = {}
        self.by_id: dict[str, Key] = {}
        self._leading: dict[str | None, dict[Key, int]] | None = None
        self._places = 0

    def put(self, key: Key, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store `record` under `key`; a replaced row keeps its place, as in the dict. Returns the old row."""
        old = self.rows.get(key)
        self.rows[key] = record
        if self._leading is not None:
            if old is None:
                place = self._places
                self._places += 1
            else:
                place = self._unindex(self._leading, key, old)
            self._leading.setdefault(self._lead(record), {})[key] = place
        return old

    def pop(self, key: Key) -> dict[str, Any] | None:
        old = self.rows.pop(key, None)
        if old is not None and self._leading is not None:
            self._unindex(self._leading, key, old)
        return old

    def clear(self) -> None:
        self.rows.clear()
        self.by_id.clear()
        self._leading = None

    def matching(self, values: Iterable[str]) -> list[dict[str, Any]]:
        """Rows whose leading key field `$filter`-equals one of `values`, in table order."""
        if self._leading is None:
            self._leading = {}
            for place, (key, record) in enumerate(self.rows.items()):
                self._leading.setdefault(self._lead(record), {})[key] = place
            self._places = len(self.rows)
        found: dict[Key, int] = {}
        for value in values:
            found.update(self._leading.get(fold(value), {}))
        return [self.rows[key] for key in sorted(found, key=found.__getitem__)]

    def _lead(self, record: dict[str, Any]) -> str | None:
        value = record.get(self.spec.keys[0])
        return fold(value) if isinstance(value, str) else None

    def _unindex(self, leading: dict[str | None, dict[Key, int]], key: Key, record: dict[str, Any]) -> int:
        lead = self._lead(record)
        bucket = leading[lead]
        place = bucket.pop(key)
        if not bucket:
            del leading[lead]
        return place


class Store:
    def __init__(self) -> None:
        self.clock = Clock()
        self.tables = {name: Table(spec) for name, spec in SPECS.items()}
        self.listeners: list[Callable[[list[Change]], None]] = []
        self._pending: list[Change] | None = None
        self._ids = random.Random()
        self._counters: dict[str, int] = {}
        # derived details: template -> variants, category -> member items (ordered sets)
        self.variants: dict[Key, dict[Key, None]] = {}
        self.members: dict[Key, dict[tuple[str, Key], None]] = {}

    def clear(self) -> None:
        for table in self.tables.values():
            table.clear()
        self._counters.clear()
        self.variants.clear()
        self.members.clear()

    # -- reads ---------------------------------------------------------------------------------

    def table(self, entity: str) -> Table:
        return self.tables[entity]

    def get(self, entity: str, *key: Any) -> dict[str, Any] | None:
        return self.tables[entity].rows.get(normalize_key(key))

    def get_by_id(self, entity: str, record_id: str) -> dict[str, Any] | None:
        table = self.tables[entity]
        key = table.by_id.get(record_id.lower())
        return table.rows.get(key) if key else None

    def exists(self, entity: str, *key: Any) -> bool:
        return normalize_key(key) in self.tables[entity].rows

    def record_id(self, entity: str, record: dict[str, Any]) -> str:
        """The record's session-independent GUID, assigned on first sight (seeding stays cheap)."""
        record_id = record.get("id")
        if record_id is None:
            record_id = record["id"] = self.new_id()
            self.tables[entity].by_id[record_id] = key_of(self.tables[entity].spec, record)
        return record_id

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def next_number(self, entity: str, prefix: str, leading: tuple[Any, ...] = ()) -> str:
        """Next free auto-number (`SO000042`) after the `leading` key parts; integers for an empty prefix."""
        rows = self.tables[entity].rows
        while True:
            number = self._counters[entity] = self._counters.get(entity, 0) + 1
            candidate = f"{prefix}{number:06d}" if prefix else str(number)
            if normalize_key((*leading, candidate)) not in rows:
                return candidate

    # -- writes --------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[list[Change]]:
        """Group changes; listeners (push notifications) see them together when the block ends."""
        if self._pending is not None:
            yield self._pending
            return
        self._pending = changes = []
        try:
            yield changes
        finally:  # nothing is rolled back, so whatever was applied is also announced
            self._pending = None
            if changes:
                for listener in self.listeners:
                    listener(changes)

    def save(self, entity: str, record: dict[str, Any], *, touch: bool = True) -> dict[str, Any]:
        """Store `record` (a new dict) under its key, stamping the change-tracking fields."""
        table = self.tables[entity]
        key = key_of(table.spec, record)
        old = table.rows.get(key)
        if touch:
            now = self.clock.now()
            for name in table.spec.modified:
                record[name] = now
        if old is not None and "id" in old:
            record["id"] = old["id"]
        elif "id" in record:
            table.by_id[record["id"]] = key
        table.put(key, record)
        self._index(entity, old, record)
        self._emit(Change(entity, old, record))
        return record

    def delete(self, entity: str, key: Key) -> dict[str, Any] | None:
        table = self.tables[entity]
        old = table.pop(normalize_key(key))
        if old is not None:
            table.by_id.pop(old.get("id", ""), None)
            self._index(entity, old, None)
            self._emit(Change(entity, old, None))
        return old

    def load(self, entity: str, records: list[dict[str, Any]]) -> None:
        """Bulk insert for seeding: no clock, no notifications (records carry their own timestamps)."""
        table = self.tables[entity]
        keys = table.spec.keys
        for record in records:
            table.put(normalize_key(tuple(record.get(k) for k in keys)), record)
            self._index(entity, None, record)

    def _emit(self, change: Change) -> None:
        if self._pending is None:
            raise RuntimeError("store writes must run inside store.transaction()")
        self._pending.append(change)

    def _index(self, entity: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if entity == "StockItem":
            self._index_variant(old, new)
        if entity in ("StockItem", "TemplateItems"):
            self._index_members(entity, old, new)

    def _index_variant(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        old_parent = old.get("TemplateItemID") if old else None
        new_parent = new.get("TemplateItemID") if new else None
        item = key_of(SPECS["StockItem"], new or old or {})
        if old_parent and old_parent != new_parent:
            self.variants.get(normalize_key((old_parent,)), {}).pop(item, None)
        if new_parent:
            self.variants.setdefault(normalize_key((new_parent,)), {})[item] = None

    def _index_members(self, entity: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        item = (entity, key_of(SPECS[entity], new or old or {}))
        before = {normalize_key((c.get("CategoryID"),)) for c in (old or {}).get("Categories") or ()}
        after = {normalize_key((c.get("CategoryID"),)) for c in (new or {}).get("Categories") or ()}
        for category in before - after:
            self.members.get(category, {}).pop(item, None)
        for category in after - before:
            self.members.setdefault(category, {})[item] = None
        if self._pending is not None:
            self._touch_categories(before ^ after)

    def _touch_categories(self, categories: set[Key]) -> None:
        """Membership is part of the category record in the API, so its change stamp moves too."""
        table = self.tables["ItemSalesCategory"]
        for category in categories:
            current = table.rows.get(category)
            if current is not None:
                self.save("ItemSalesCategory", dict(current))
