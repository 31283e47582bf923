"""The product pipeline: units in, Rithum products written, outcomes and ID write-backs decided.

Shared by the real-time path (push notifications, micro-batches) and batch jobs (pages). Small
sets go through the REST API in `$batch` requests; sets at or above the site configuration's feed
threshold go as one FTP feed file. Parents go before children and components before bundles on
both paths. An unchanged record (same content hash, already on Rithum) costs no call.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.consumers.product import transform as T
from services.consumers.product.source import Family, Gone, Kit, Simple, Unit, changed_at, parse_stamp
from services.consumers.product.writeback import WriteBack
from shared import syncrecords
from shared.acumatica.client import AcumaticaClient
from shared.db.models import SyncRecord, SyncStatus
from shared.requestlog import log_context
from shared.rithum import batch as rb
from shared.rithum.client import RithumClient, odata_datetime
from shared.rithum.errors import RithumError
from shared.rithum.feed import FeedRow, FeedWriter
from shared.rithum.ftp import FeedUploader
from shared.syncrecords import Outcome

log = logging.getLogger("connector.product")
ENTITY = "product"
UNLISTED_LABEL = "Unlisted"


@dataclass
class Plan:
    """What one pass will do: products to write, and outcomes already decided."""

    writes: list[T.RithumProduct] = field(default_factory=list)
    unlist: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    items: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # sku → (Acumatica entity, record)
    modified: dict[str, datetime | None] = field(default_factory=dict)
    untouched: set[str] = field(default_factory=set)


def plan(units: Sequence[Unit], rules: T.ProductRules, records: dict[str, SyncRecord]) -> Plan:
    """Apply the rules and the transform (pure): what to write, unlist, filter or skip."""
    p = Plan()

    def listed(key: str) -> bool:
        record = records.get(key)
        return bool(record and record.rithum_id and record.status != SyncStatus.DELETED)

    def reject(key: str, reason: str) -> None:
        if listed(key):
            p.unlist.append((key, reason))
        else:
            p.outcomes[key] = Outcome(key, SyncStatus.FILTERED, "Filtering Applied", error=reason)

    def add(product: T.RithumProduct, entity: str, record: dict[str, Any]) -> None:
        p.items[product.sku] = (entity, record)
        p.modified[product.sku] = changed_at(record)
        stored = records.get(product.sku)
        if (
            stored is not None
            and stored.rithum_id
            and stored.content_hash == product.content_hash
            and stored.status == SyncStatus.PROCESSED
        ):
            if stored.source_modified_at is not None and stored.source_modified_at == p.modified[product.sku]:
                p.untouched.add(product.sku)  # not changed since our own last write: not even counted
                return
            p.outcomes[product.sku] = Outcome(
                product.sku, SyncStatus.SKIPPED, "Not Changed", kind=product.kind.value, rithum_id=stored.rithum_id
            )
        else:
            p.writes.append(product)

    for unit in units:
        try:
            if isinstance(unit, Gone):
                reject(unit.key, "no longer in Acumatica")
            elif isinstance(unit, Simple):
                reason = T.ineligible_reason(unit.item, rules)
                if reason:
                    reject(unit.key, reason)
                else:
                    add(T.standalone(unit.item, rules), "StockItem", unit.item)
            elif isinstance(unit, Kit):
                reason = T.ineligible_reason(unit.item, rules)
                if reason:
                    reject(unit.key, reason)
                elif unit.spec is None:
                    p.outcomes[unit.key] = Outcome(
                        unit.key, SyncStatus.FAILED, "Failed to Save", error="kit has no specification"
                    )
                else:
                    add(T.bundle(unit.item, unit.spec, rules), "StockItem", unit.item)
            elif isinstance(unit, Family):
                reason = T.ineligible_reason(unit.template, rules)
                if reason:
                    reject(unit.key, reason)
                    for variant in unit.variants:
                        reject(variant["InventoryID"], f"template {unit.key}: {reason}")
                    continue
                eligible = []
                for variant in unit.variants:
                    variant_reason = T.ineligible_reason(
                        {**variant, "ItemClass": unit.template.get("ItemClass")}, rules
                    )
                    if variant_reason:
                        reject(variant["InventoryID"], variant_reason)
                    else:
                        eligible.append(variant)
                parent, children = T.variation(unit.template, eligible, rules)
                add(parent, "TemplateItems", unit.template)
                by_sku = {v["InventoryID"]: v for v in eligible}
                for child in children:
                    add(child, "StockItem", by_sku[child.sku])
        except T.TransformError as exc:
            key = unit.key
            p.outcomes[key] = Outcome(key, SyncStatus.FAILED, "Failed to Save", error=str(exc))
    # A product rejected earlier in this pass (e.g. as a variant) must not be written as well.
    p.writes = T.write_order([w for w in {w.sku: w for w in p.writes}.values() if w.sku not in p.outcomes])
    p.untouched -= set(p.outcomes)
    return p


class ProductPipeline:
    def __init__(
        self,
        *,
        acumatica: AcumaticaClient,
        rithum: RithumClient,
        feeds: FeedUploader,
        sessionmaker: async_sessionmaker[AsyncSession],
        feed_lookup_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self.acumatica = acumatica
        self.rithum = rithum
        self.feeds = feeds
        self.sessionmaker = sessionmaker
        self.feed_lookup_margin = feed_lookup_margin
        self._dcs: list[int] | None = None
        self._feed_mark: datetime | None = None  # newest UpdateDateUtc a feed lookup has seen (Rithum's clock)

    async def sync(
        self, units: Sequence[Unit], rules: T.ProductRules, *, feed_threshold: int, job_id: int | None = None
    ) -> tuple[list[Outcome], list[WriteBack]]:
        """Sync the units: one outcome per record key touched, and the CA Product ID write-backs
        due. Neither is saved nor queued here."""
        keys = _keys(units)
        async with self.sessionmaker() as session:
            records = await syncrecords.load(session, ENTITY, keys)
        p = plan(units, rules, records)
        with log_context(entity=ENTITY, job_id=job_id):
            if p.writes:
                try:
                    if len(p.writes) >= feed_threshold:
                        written = await self._write_feed(p.writes, records, job_id)
                    else:
                        written = await self._write_rest(p.writes, records)
                except (RithumError, httpx.HTTPError) as exc:  # outage or limits beyond retries: Failed, retried later
                    log.warning("Rithum unavailable for %d products: %s", len(p.writes), exc)
                    written = {w.sku: _failed(w, f"Rithum unavailable: {exc}") for w in p.writes}
                p.outcomes.update(written)
            if p.unlist:
                try:
                    p.outcomes.update(await self._unlist(p.unlist, records, rules))
                except (RithumError, httpx.HTTPError) as exc:
                    for key, reason in p.unlist:
                        error = f"{reason}; Rithum unavailable: {exc}"
                        p.outcomes[key] = Outcome(key, SyncStatus.FAILED, "Failed to Unlist", error=error)
        if job_id is None:  # in real time a notification was received: say it cost nothing
            for key in p.untouched:
                stored = records[key]
                p.outcomes[key] = Outcome(
                    key, SyncStatus.SKIPPED, "Not Changed", rithum_id=stored.rithum_id, kind=stored.kind
                )
        write_backs = self._write_backs(p, rules, records)
        for key, modified in p.modified.items():
            if key in p.outcomes and modified is not None:
                p.outcomes[key].source_modified_at = modified
        return list(p.outcomes.values()), write_backs

    # -- REST ($batch) --------------------------------------------------------------------------

    async def _write_rest(
        self, products: Sequence[T.RithumProduct], records: dict[str, SyncRecord]
    ) -> dict[str, Outcome]:
        ids = {sku: int(r.rithum_id) for sku, r in records.items() if r.rithum_id and r.status != SyncStatus.DELETED}
        unknown = [p.sku for p in products if p.sku not in ids]
        if unknown:  # after a crash the product may exist though we never recorded its ID
            ids.update(await self.rithum.find_product_ids(unknown))
        outcomes: dict[str, Outcome] = {}
        phases = [
            [p for p in products if p.kind in (T.Kind.STANDALONE, T.Kind.PARENT)],
            [p for p in products if p.kind is T.Kind.CHILD],
            [p for p in products if p.kind is T.Kind.BUNDLE],
        ]
        for phase in phases:
            requests: list[rb.BatchRequest] = []
            sent: list[T.RithumProduct] = []
            for product in phase:
                body = dict(product.body)
                if product.parent_sku:
                    parent_id = ids.get(product.parent_sku)
                    if parent_id is None:
                        reason = f"parent {product.parent_sku} is not on Rithum"
                        outcomes[product.sku] = _failed(product, reason)
                        continue
                    body["ParentProductID"] = parent_id
                if product.sku in ids:
                    body.pop("Sku")
                    requests.append(rb.update_product(ids[product.sku], body))
                else:
                    requests.append(rb.create_product(body))
                sent.append(product)
            if not requests:
                continue
            results = await self.rithum.batch(requests)
            for product, result in zip(sent, results, strict=True):
                if result.ok:
                    created = result.request.method == "POST"
                    if created:
                        ids[product.sku] = int(result.body["ID"])
                    outcomes[product.sku] = Outcome(
                        product.sku,
                        SyncStatus.PROCESSED,
                        "Inserted Externally" if created else "Updated Externally",
                        rithum_id=str(ids[product.sku]),
                        content_hash=product.content_hash,
                        kind=product.kind.value,
                    )
                else:
                    outcomes[product.sku] = _failed(product, f"Rithum {result.status}: {result.message}")
        return outcomes

    # -- FTP feed -------------------------------------------------------------------------------

    async def _write_feed(
        self, products: Sequence[T.RithumProduct], records: dict[str, SyncRecord], job_id: int | None
    ) -> dict[str, Outcome]:
        name = f"products-{job_id or 'rt'}-{uuid.uuid4().hex[:12]}.txt"
        slots = max((len(p.body.get("Attributes", ())) for p in products), default=0)
        started = datetime.now(UTC) - self.feed_lookup_margin
        if self._feed_mark is not None:  # taken before the upload: this feed's rows are processed after it
            started = max(started, self._feed_mark)
        log.info("sending %d products as feed %s", len(products), name)
        result = await self.feeds.publish(name, FeedWriter(attribute_slots=slots).lines(feed_row(p) for p in products))
        if result.file_error:
            return {p.sku: _failed(p, f"feed {name} rejected: {result.file_error}") for p in products}
        by_sku = result.by_sku()
        ok = [p for p in products if p.sku in by_sku and by_sku[p.sku].ok]
        outcomes = {
            p.sku: _failed(p, f"feed {name}: {by_sku[p.sku].message if p.sku in by_sku else 'no result row'}")
            for p in products
            if p not in ok
        }
        ids = await self._ids_changed_since(started, {p.sku for p in ok})
        # Rows the update-time query did not show (its clock, or a feed processed out of order): by SKU.
        unseen = [p.sku for p in ok if p.sku not in ids and not (p.sku in records and records[p.sku].rithum_id)]
        if unseen:
            log.info(
                "feed %s: %d accepted products not in the update-time query; looking them up by SKU", name, len(unseen)
            )
            ids.update(await self.rithum.find_product_ids(unseen))
        for product in ok:
            rithum_id = ids.get(product.sku) or (records[product.sku].rithum_id if product.sku in records else None)
            if rithum_id is None:
                outcomes[product.sku] = _failed(product, f"feed {name}: accepted but not found on Rithum afterwards")
                continue
            known = product.sku in records and records[product.sku].rithum_id
            outcomes[product.sku] = Outcome(
                product.sku,
                SyncStatus.PROCESSED,
                "Updated Externally" if known else "Inserted Externally",
                rithum_id=str(rithum_id),
                content_hash=product.content_hash,
                kind=product.kind.value,
            )
        return outcomes

    async def _ids_changed_since(self, since: datetime, wanted: set[str]) -> dict[str, int]:
        """IDs of products the feed touched: one paged query by update time, not one lookup per SKU.

        Remembering the newest update time seen keeps the next feed's query from paging through
        every product the earlier feeds of a long job wrote (quadratic in the catalogue size).
        """
        found: dict[str, int] = {}
        newest = self._feed_mark
        query = f"UpdateDateUtc ge {odata_datetime(since)}"
        async for row in self.rithum.iterate_products(filter=query, select=("ID", "Sku", "UpdateDateUtc")):
            if row["Sku"] in wanted:
                found[row["Sku"]] = int(row["ID"])
            updated = parse_stamp(row.get("UpdateDateUtc"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        self._feed_mark = newest
        return found

    # -- write-back of the CA Product ID ---------------------------------------------------------

    @staticmethod
    def _write_backs(p: Plan, rules: T.ProductRules, records: dict[str, SyncRecord]) -> list[WriteBack]:
        """The Rithum product ID goes onto every item where it is missing or different: items just
        written, and unchanged ones whose earlier write-back was lost or failed."""
        ref = rules.product_id_field
        wanted: dict[str, str] = {}
        for outcome in p.outcomes.values():
            if outcome.status in (SyncStatus.PROCESSED, SyncStatus.SKIPPED) and outcome.rithum_id:
                wanted[outcome.key] = outcome.rithum_id
        for key in p.untouched:
            if records[key].rithum_id:
                wanted[key] = str(records[key].rithum_id)
        result = []
        for key, rithum_id in wanted.items():
            if key not in p.items:
                continue
            entity, record = p.items[key]
            if str(ref.read(record) or "").strip() != rithum_id:
                result.append(WriteBack.of(entity, key, rithum_id, ref))
        return result

    # -- unlisting ------------------------------------------------------------------------------

    async def _distribution_centers(self) -> list[int]:
        if self._dcs is None:
            self._dcs = [int(dc["ID"]) for dc in await self.rithum.distribution_centers()]
        return self._dcs

    async def _unlist(
        self, keys: Sequence[tuple[str, str]], records: dict[str, SyncRecord], rules: T.ProductRules
    ) -> dict[str, Outcome]:
        """Take products off sale on Rithum: quantity 0 in every DC (and a label), or delete them."""
        requests: list[rb.BatchRequest] = []
        owners: list[tuple[str, str]] = []
        for key, reason in keys:
            rithum_id = int(records[key].rithum_id or 0)
            if rules.on_unlist == "delete":
                requests.append(rb.BatchRequest("DELETE", f"Products({rithum_id})"))
                owners.append((key, reason))
            elif records[key].kind == T.Kind.PARENT.value:
                requests.append(rb.update_product(rithum_id, {"Labels": [{"Name": UNLISTED_LABEL}]}))
                owners.append((key, reason))
            else:
                updates = dict.fromkeys(await self._distribution_centers(), 0)
                requests.append(rb.update_quantity(rithum_id, updates, "Absolute"))
                requests.append(rb.update_product(rithum_id, {"Labels": [{"Name": UNLISTED_LABEL}]}))
                owners += [(key, reason), (key, reason)]
        outcomes: dict[str, Outcome] = {}
        for (key, reason), result in zip(owners, await self.rithum.batch(requests), strict=True):
            previous = outcomes.get(key)
            if result.ok or result.status == 404:
                if previous is None or previous.status is SyncStatus.DELETED:
                    operation = "Deleted Externally" if rules.on_unlist == "delete" else "Unlisted Externally"
                    outcomes[key] = Outcome(key, SyncStatus.DELETED, operation, error=reason)
            else:
                outcomes[key] = Outcome(
                    key,
                    SyncStatus.FAILED,
                    "Failed to Unlist",
                    error=f"{reason}; Rithum {result.status}: {result.message}",
                )
        return outcomes


def feed_row(product: T.RithumProduct) -> FeedRow:
    body = product.body
    return FeedRow(
        sku=product.sku,
        title=body.get("Title"),
        classification=body.get("Classification"),
        relationship_name=body.get("RelationshipName"),
        is_parent=product.kind is T.Kind.PARENT,
        parent_sku=product.parent_sku,
        weight=body.get("Weight"),
        retail_price=body.get("RetailPrice"),
        bundle_components={c["ComponentSku"]: c["Quantity"] for c in body.get("BundleComponents", ())},
        attributes={a["Name"]: a["Value"] for a in body.get("Attributes", ())},
    )


def _failed(product: T.RithumProduct, reason: str) -> Outcome:
    return Outcome(product.sku, SyncStatus.FAILED, "Failed to Save", error=reason, kind=product.kind.value)


def _keys(units: Sequence[Unit]) -> list[str]:
    keys: list[str] = []
    for unit in units:
        keys.append(unit.key)
        if isinstance(unit, Family):
            keys += [v["InventoryID"] for v in unit.variants]
    return keys
