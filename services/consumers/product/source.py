"""Reading what a product sync needs from Acumatica, as sync units.

A unit is what must be written together: a simple item, a matrix family (template with the
variants at hand), a kit with its specification, or a key Acumatica no longer has. The real-time
path resolves changed keys; a batch job enumerates a date window page by page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.acumatica import filters as F
from shared.acumatica.client import AcumaticaClient

# Keys per OR-filter: 25 keys of up to 30 characters, URL-encoded, stay under the 2,048-character query
# string IIS allows by default; a batch of 100 keys is then 4 requests, one round at the default concurrency.
KEY_GROUP = 25
ITEM_EXPAND = ("Attributes",)


@dataclass
class Simple:
    item: dict[str, Any]

    @property
    def key(self) -> str:
        return self.item["InventoryID"]


@dataclass
class Family:
    template: dict[str, Any]
    variants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.template["InventoryID"]


@dataclass
class Kit:
    item: dict[str, Any]
    spec: dict[str, Any] | None

    @property
    def key(self) -> str:
        return self.item["InventoryID"]


@dataclass
class Gone:
    key: str


Unit = Simple | Family | Kit | Gone
Position = tuple[int, int]  # (stage of a job's enumeration, `$skip` within it)


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    for name in ("InventoryID", "TemplateItemID", "KitInventoryID", "ItemClass"):
        if isinstance(record.get(name), str):
            record[name] = record[name].strip()
    return record


def _groups(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[i : i + KEY_GROUP]) for i in range(0, len(keys), KEY_GROUP)]


class ProductSource:
    def __init__(self, client: AcumaticaClient, page_size: int = 1000, class_ttl: float = 300.0) -> None:
        self.client = client
        self.page_size = page_size
        self.class_ttl = class_ttl
        self._classes: tuple[float, dict[str, tuple[str, ...]]] | None = None
        # Custom fields the rules read (flag, CA Product ID): Acumatica returns them only when asked.
        self.custom: tuple[str, ...] = ()

    async def class_attributes(self) -> dict[str, tuple[str, ...]]:
        """Attribute IDs per item class (cached for a few minutes; classes rarely change)."""
        now = time.monotonic()
        if self._classes is None or now - self._classes[0] > self.class_ttl:
            classes = await self.client.list("ItemClass", expand=("Attributes",))
            attributes = {
                str(c["ClassID"]).strip(): tuple(str(a["AttributeID"]).strip() for a in c.get("Attributes") or ())
                for c in classes
            }
            self._classes = (now, attributes)
        return self._classes[1]

    def _items(self) -> dict[str, Any]:
        """Read options for stock items and templates."""
        return {"expand": ITEM_EXPAND, "custom": self.custom or None}

    async def _by_keys(self, entity: str, key_field: str, keys: Sequence[str], **options: Any) -> list[dict]:
        async def one(group: list[str]) -> list[dict]:
            query = F.any_of(*(F.field(key_field).eq(k) for k in group))
            return await self.client.list(entity, filter=query, **options)

        pages = await asyncio.gather(*(one(g) for g in _groups(list(dict.fromkeys(keys)))))
        return [_strip(r) for page in pages for r in page]

    async def resolve(self, keys: Iterable[str]) -> list[Unit]:
        """Units for changed keys (real time): items, templates, kits, or Gone."""
        keys = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
        items = {r["InventoryID"]: r for r in await self._by_keys("StockItem", "InventoryID", keys, **self._items())}
        missing = [k for k in keys if k not in items]
        templates = {
            r["InventoryID"]: r for r in await self._by_keys("TemplateItems", "InventoryID", missing, **self._items())
        }
        units: list[Unit] = [Gone(k) for k in missing if k not in templates]
        units += await self.units(list(items.values()), extra_templates=list(templates.values()))
        return units

    async def units(
        self, items: Sequence[dict[str, Any]], *, extra_templates: Sequence[dict[str, Any]] = ()
    ) -> list[Unit]:
        """Group stock items (and templates) into units, fetching templates and kit specs they need."""
        templates = {t["InventoryID"]: Family(t) for t in extra_templates}
        simple: list[Unit] = []
        kits: dict[str, dict[str, Any]] = {}
        orphans: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            parent = item.get("TemplateItemID")
            if parent:
                if parent in templates:
                    templates[parent].variants.append(item)
                else:
                    orphans.setdefault(parent, []).append(item)
            elif item.get("IsAKit"):
                kits[item["InventoryID"]] = item
            else:
                simple.append(Simple(item))
        # Independent reads, so one round trip rather than two.
        parents, kit_specs = await asyncio.gather(
            self._by_keys("TemplateItems", "InventoryID", list(orphans), **self._items()),
            self._by_keys("KitSpecification", "KitInventoryID", list(kits), expand=("StockComponents",)),
        )
        for template in parents:
            templates[template["InventoryID"]] = Family(template, orphans.pop(template["InventoryID"], []))
        simple += [Simple(v) for variants in orphans.values() for v in variants]  # template gone: stand alone
        specs = {s["KitInventoryID"]: s for s in kit_specs}
        return [*simple, *templates.values(), *(Kit(item, specs.get(key)) for key, item in kits.items())]

    async def pages(
        self, start: datetime | None, end: datetime | None, resume: Position = (0, 0)
    ) -> AsyncIterator[tuple[Position, list[Unit]]]:
        """Everything changed in [start, end] (all when start is None), a page of units at a time, each
        with the position to resume after it (stage, `$skip`), so a restarted job goes on from there.

        Templates whose own record changed come first, so their families' parents exist before
        any variant page; kits after every other stock item, so their components exist; kits whose
        specification changed (without the item changing) last. Acumatica is asked for the lower
        bound only and `end` is applied here: the ID write-back moves an item's stamp past `end`,
        and an item leaving the filtered set while it is paged with `$skip` would make the next
        page skip items never seen.
        """
        window = F.changed_between(start, None, "LastModified")
        kit_window = F.all_of(window, F.field("IsAKit").eq(True))
        spec_window = F.changed_between(start, None, "LastModifiedDateTime")
        seen_kits: set[str] = set()  # kits synced in stage 2 need no pass for their specification
        stages = (
            ("TemplateItems", window, ITEM_EXPAND, None, self.custom),
            ("StockItem", window, ITEM_EXPAND, None, self.custom),
            ("StockItem", kit_window, ITEM_EXPAND, None, self.custom),
            ("KitSpecification", spec_window, ("StockComponents",), ("KitInventoryID", "LastModifiedDateTime"), ()),
        )
        for stage, (entity, where, expand, select, custom) in enumerate(stages):
            if stage < resume[0]:
                continue
            skip = resume[1] if stage == resume[0] else 0
            async for after, page in self._paged(entity, where, expand, select, end=end, custom=custom, skip=skip):
                if stage == 0:
                    units = await self.units([], extra_templates=page)
                elif stage == 1:
                    units = await self.units([i for i in page if not i.get("IsAKit")])
                elif stage == 2:
                    seen_kits.update(i["InventoryID"] for i in page)
                    units = await self.units(page)
                else:
                    units = await self.resolve(
                        [s["KitInventoryID"] for s in page if s["KitInventoryID"] not in seen_kits]
                    )
                yield (stage, after), units

    async def _paged(
        self,
        entity: str,
        window: F.Filter | None,
        expand: Sequence[str],
        select: Sequence[str] | None = None,
        *,
        end: datetime | None = None,
        custom: Sequence[str] = (),
        skip: int = 0,
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        """Pages of records with the `$skip` that comes after each."""
        while True:
            page = await self.client.list(
                entity,
                filter=window,
                expand=expand,
                select=select,
                custom=custom or None,
                top=self.page_size,
                skip=skip,
            )
            skip += len(page)
            kept = [_strip(r) for r in page if end is None or (changed_at(r) or end) <= end]
            if kept:
                yield skip, kept
            if len(page) < self.page_size:
                return


def changed_at(record: dict[str, Any]) -> datetime | None:
    """The record's change stamp (`LastModified`, else `LastModifiedDateTime`)."""
    return parse_stamp(record.get("LastModified") or record.get("LastModifiedDateTime"))


def parse_stamp(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value
