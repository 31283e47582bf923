"""The product pipeline: units in, Rithum products written, outcomes and ID write-backs decided.

Shared by the real-time path (push notifications, micro-batches) and batch jobs (pages). Writes go
through the REST API in `$batch` requests, or as an FTP feed file: a job spools its rows and sends
one file when its enumeration ends (if it has at least the site's feed threshold of them), and a
micro-batch that large goes as a file of its own. Rithum picks a file up within the hour and reports
nothing back on the FTP server, so fed records are *Submitted* and the feed reconciler
(`feeds.py`) confirms them later. Only documented payloads are sent: a PATCH carries the product's
own properties that changed since the last write, attributes go through `UpdateAttributes`, labels
and bundle components through their own URIs; bundles never go in a feed (the default layout has no
bundle columns). Parents go before children and components before bundles; a child or bundle whose
parent or components are still in a feed waits (*Pending*) and is sent once they are confirmed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.consumers.product import transform as T
from services.consumers.product.source import Family, Gone, Kit, Simple, Unit, changed_at
from services.consumers.product.spool import FeedSpool, Spooled
from services.consumers.product.writeback import WriteBack
from shared import syncrecords
from shared.db.models import FeedUpload, SyncRecord, SyncStatus
from shared.requestlog import log_context
from shared.rithum import batch as rb
from shared.rithum.client import RithumClient
from shared.rithum.errors import RithumError
from shared.rithum.feed import FeedRow, FeedWriter
from shared.rithum.ftp import FeedUploader
from shared.syncrecords import FORCED, RECREATED, Outcome

log = logging.getLogger("connector.product")
ENTITY = "product"
UNLISTED_LABEL = "Unlisted"
WAITING = "Waiting for Rithum"  # last operation of a Pending record held back for its parent or components


@dataclass
class Plan:
    """What one pass will do: products to write, and outcomes already decided."""

    writes: list[Spooled] = field(default_factory=list)
    unlist: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    modified: dict[str, datetime | None] = field(default_factory=dict)
    current_ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # sku → (Acumatica entity, ID it holds)
    untouched: set[str] = field(default_factory=set)


def plan(
    units: Sequence[Unit],
    rules: T.ProductRules,
    records: dict[str, SyncRecord],
    *,
    on_rithum: Mapping[str, int] | None = None,
    force: bool = False,
) -> Plan:
    """Apply the rules and the transform (pure): what to write, unlist, filter or skip.

    `on_rithum` (a full job's look at the target: SKU → ID) turns an unchanged record whose product
    Rithum no longer has into a write that re-creates it; `force` writes unchanged records too."""
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
        modified = changed_at(record)
        current_id = str(rules.product_id_field.read(record) or "").strip()
        p.modified[product.sku] = modified
        p.current_ids[product.sku] = (entity, current_id)
        stored = records.get(product.sku)
        lost = bool(
            on_rithum is not None
            and stored is not None
            and stored.rithum_id
            and stored.status in (SyncStatus.PROCESSED, SyncStatus.SUBMITTED)
            and on_rithum.get(product.sku) != int(stored.rithum_id)
        )
        if (
            stored is not None
            and stored.rithum_id
            and stored.content_hash == product.content_hash
            and stored.status == SyncStatus.PROCESSED
            and not lost
        ):
            if force:
                p.writes.append(Spooled(product, entity, current_id, modified, forced=True))
                return
            if stored.source_modified_at is not None and stored.source_modified_at == modified:
                p.untouched.add(product.sku)  # not changed since our own last write: not even counted
                return
            p.outcomes[product.sku] = Outcome(
                product.sku, SyncStatus.SKIPPED, "Not Changed", kind=product.kind.value, rithum_id=stored.rithum_id
            )
        else:
            p.writes.append(Spooled(product, entity, current_id, modified, lost=lost))

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
    unique = {w.product.sku: w for w in p.writes if w.product.sku not in p.outcomes}
    order = {w.sku: i for i, w in enumerate(T.write_order([w.product for w in unique.values()]))}
    p.writes = sorted(unique.values(), key=lambda w: order[w.product.sku])
    p.untouched -= set(p.outcomes)
    return p


@dataclass
class _Write:
    """The parts one product needs in a `$batch` round, and what it becomes when they succeed."""

    entry: Spooled
    parts: list[rb.BatchRequest]
    sent: dict[str, Any]
    created: bool
    lost: bool = False  # created again: Rithum no longer had the product the connector listed


class ProductPipeline:
    def __init__(
        self,
        *,
        rithum: RithumClient,
        feeds: FeedUploader,
        sessionmaker: async_sessionmaker[AsyncSession],
        confirm_timeout: timedelta = timedelta(hours=2),
    ) -> None:
        self.rithum = rithum
        self.feeds = feeds
        self.sessionmaker = sessionmaker
        self.confirm_timeout = confirm_timeout
        self._dcs: list[int] | None = None

    async def sync(
        self,
        units: Sequence[Unit],
        rules: T.ProductRules,
        *,
        feed_threshold: int,
        job_id: int | None = None,
        spool: FeedSpool | None = None,
        on_rithum: Mapping[str, int] | None = None,
        force: bool = False,
        unchanged: dict[str, str] | None = None,
    ) -> tuple[list[Outcome], list[WriteBack]]:
        """Sync the units: one outcome per record key touched, and the CA Product ID write-backs due.
        Neither is saved nor queued here. With a `spool` (a job), feedable writes go into it instead
        and get their outcomes from `flush`. `on_rithum` and `force`: see `plan`; `unchanged` collects
        SKU → Rithum ID of the records left alone as unchanged (a full job checks them afterwards)."""
        keys = _keys(units)
        async with self.sessionmaker() as session:
            records = await syncrecords.load(session, ENTITY, keys)
        p = plan(units, rules, records, on_rithum=on_rithum, force=force)
        with log_context(entity=ENTITY, job_id=job_id):
            bundles = [w for w in p.writes if w.product.kind is T.Kind.BUNDLE]
            feedable = [w for w in p.writes if w.product.kind is not T.Kind.BUNDLE]
            fed: set[str] = set()
            if spool is not None:
                for entry in feedable:
                    spool.add(entry)
                fed, rest = spool.skus, bundles
            elif len(feedable) >= feed_threshold:
                p.outcomes.update(await self.submit_feed(feedable, len(feedable), job_id))
                fed, rest = {w.product.sku for w in feedable}, bundles
            else:
                rest = p.writes
            if rest:
                p.outcomes.update(await self._write_rest_safely(rest, rules, records, fed))
            if p.unlist:
                try:
                    p.outcomes.update(await self._unlist(p.unlist, records, rules))
                except (RithumError, httpx.HTTPError) as exc:
                    for key, reason in p.unlist:
                        error = f"{reason}; Rithum unavailable: {exc}"
                        p.outcomes[key] = Outcome(key, SyncStatus.FAILED, "Failed to Unlist", error=error, outage=True)
        if unchanged is not None:
            unchanged.update({k: str(records[k].rithum_id) for k in p.untouched})
            unchanged.update(
                {o.key: str(o.rithum_id) for o in p.outcomes.values() if o.status is SyncStatus.SKIPPED and o.rithum_id}
            )
        if job_id is None:  # in real time a notification was received: say it cost nothing
            for key in p.untouched:
                stored = records[key]
                p.outcomes[key] = Outcome(
                    key, SyncStatus.SKIPPED, "Not Changed", rithum_id=stored.rithum_id, kind=stored.kind
                )
        write_backs = _write_backs(p.outcomes.values(), p.current_ids, rules)
        write_backs += [
            WriteBack.of(p.current_ids[k][0], k, str(records[k].rithum_id), rules.product_id_field)
            for k in p.untouched
            if records[k].rithum_id and p.current_ids[k][1] != str(records[k].rithum_id)
        ]
        for key, modified in p.modified.items():
            if key in p.outcomes and modified is not None:
                p.outcomes[key].source_modified_at = modified
        return list(p.outcomes.values()), write_backs

    async def flush(
        self, spool: FeedSpool, rules: T.ProductRules, *, feed_threshold: int, job_id: int | None
    ) -> tuple[list[Outcome], list[WriteBack]]:
        """A job's spooled rows: one feed file if there are enough of them, else `$batch` writes."""
        if not len(spool):
            return [], []
        with log_context(entity=ENTITY, job_id=job_id):
            if len(spool) >= feed_threshold:
                return list((await self.submit_feed(spool, len(spool), job_id, spool.attribute_slots)).values()), []
            entries = list(spool)
            async with self.sessionmaker() as session:
                records = await syncrecords.load(session, ENTITY, [e.product.sku for e in entries])
            outcomes = await self._write_rest_safely(entries, rules, records, set())
        for entry in entries:
            if entry.product.sku in outcomes and entry.modified is not None:
                outcomes[entry.product.sku].source_modified_at = entry.modified
        current = {e.product.sku: (e.entity, e.current_id) for e in entries}
        return list(outcomes.values()), _write_backs(outcomes.values(), current, rules)

    async def on_rithum(self) -> dict[str, int]:
        """SKU → ID of every product on Rithum: what a full job checks its unchanged records against.
        One paged listing, about one call per 100 products (CA advises ProductExport above ~250k)."""
        return {row["Sku"]: int(row["ID"]) async for row in self.rithum.iterate_products(select=("ID", "Sku"))}

    # -- FTP feed -------------------------------------------------------------------------------

    async def submit_feed(
        self, entries: Iterable[Spooled], count: int, job_id: int | None, attribute_slots: int | None = None
    ) -> dict[str, Outcome]:
        """Upload one feed file and record it; its rows are Submitted until the reconciler sees them."""
        name = f"products-{job_id or 'rt'}-{uuid.uuid4().hex[:12]}.txt"
        if attribute_slots is None:
            entries = list(entries)
            attribute_slots = max((len(e.product.body.get("Attributes", ())) for e in entries), default=0)
        products: list[tuple[str, str, str, dict[str, Any], bool]] = []  # sku, kind, hash, body, forced

        def rows() -> Iterable[FeedRow]:
            for entry in entries:
                product = entry.product
                products.append((product.sku, product.kind.value, product.content_hash, product.body, entry.forced))
                yield feed_row(product)

        log.info("sending %d products as feed %s", count, name)
        try:
            await self.feeds.upload(name, FeedWriter(attribute_slots=attribute_slots).lines(rows()))
        except RithumError as exc:
            log.warning("feed %s not uploaded: %s", name, exc)
            error = f"feed {name} not uploaded: {exc}"
            return {
                sku: Outcome(sku, SyncStatus.FAILED, "Failed to Save", error=error, kind=kind, outage=True)
                for sku, kind, _, _, _ in products
            }
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            upload = FeedUpload(
                entity=ENTITY,
                name=name,
                job_id=job_id,
                rows=len(products),
                confirmed=0,
                failed=0,
                status="uploaded",  # "submitted" (seen by the reconciler) only together with its rows
                uploaded_at=now,
                confirm_by=now + self.confirm_timeout,
            )
            session.add(upload)
            await session.flush()
            feed_id = upload.id
        operation = f"Submitted in feed {name}"[:64]
        return {
            sku: Outcome(
                sku,
                SyncStatus.SUBMITTED,
                operation,
                content_hash=digest,
                kind=kind,
                sent=body,
                feed_id=feed_id,
                forced=forced,
            )
            for sku, kind, digest, body, forced in products
        }

    # -- REST ($batch) --------------------------------------------------------------------------

    async def _write_rest_safely(
        self, entries: Sequence[Spooled], rules: T.ProductRules, records: dict[str, SyncRecord], fed: set[str]
    ) -> dict[str, Outcome]:
        try:
            return await self._write_rest(entries, rules, records, fed)
        except (RithumError, httpx.HTTPError) as exc:  # outage or limits beyond retries: Failed, retried later
            log.warning("Rithum unavailable for %d products: %s", len(entries), exc)
            return {e.product.sku: _failed(e.product, f"Rithum unavailable: {exc}", outage=True) for e in entries}

    async def _write_rest(
        self, entries: Sequence[Spooled], rules: T.ProductRules, records: dict[str, SyncRecord], fed: set[str]
    ) -> dict[str, Outcome]:
        """Phases (standalone and parents, children, bundles), then the attributes of new products."""
        related = {s for e in entries for s in _related(e.product, records.get(e.product.sku))}
        async with self.sessionmaker() as session:
            records = {**await syncrecords.load(session, ENTITY, related - set(records)), **records}
        lost = {e.product.sku for e in entries if e.lost}  # their stored ID is gone from Rithum: look up by SKU
        ids = {
            sku: int(r.rithum_id)
            for sku, r in records.items()
            if r.rithum_id and r.status != SyncStatus.DELETED and sku not in lost
        }
        wanted = {e.product.sku for e in entries} | related
        unknown = [s for s in wanted if s not in ids and s not in fed]
        if unknown:  # after a crash the product may exist though we never recorded its ID
            ids.update(await self.rithum.find_product_ids(unknown))
        outcomes: dict[str, Outcome] = {}
        created: list[_Write] = []
        for kinds in ((T.Kind.STANDALONE, T.Kind.PARENT), (T.Kind.CHILD,), (T.Kind.BUNDLE,)):
            writes: list[_Write] = []
            for entry in (e for e in entries if e.product.kind in kinds):
                product = entry.product
                missing = [s for s in (product.parent_sku, *product.component_skus) if s and s not in ids]
                if missing:
                    outcomes[product.sku] = self._held_back(product, missing, records, fed)
                    continue
                stored = records.get(product.sku)
                if product.sku in ids:
                    writes.append(_update(entry, ids, stored, rules))
                else:
                    writes.append(_create(entry, ids))
            results = await self._send(writes)
            # An update that meets a product Rithum no longer has (404) creates it again, once.
            gone = [w for w in writes if not w.created and any(_gone(r) for r in results[w.entry.product.sku])]
            for write in gone:
                ids.pop(write.entry.product.sku, None)
            again = [_create(w.entry, ids, lost=True) for w in gone]
            results.update(await self._send(again))
            writes = [w for w in writes if w not in gone] + again
            for write in writes:
                sku = write.entry.product.sku
                failed = next((r for r in results[sku] if not r.ok and not _benign(r)), None)
                if write.created and results[sku] and results[sku][0].ok:
                    ids[sku] = int(results[sku][0].body["ID"])
                if failed is not None:
                    outcomes[sku] = _failed(write.entry.product, f"Rithum {failed.status}: {failed.message}")
                    if sku in ids:
                        outcomes[sku].rithum_id = str(ids[sku])  # created: never create it twice
                    continue
                outcomes[sku] = Outcome(
                    sku,
                    SyncStatus.PROCESSED,
                    _operation(write),
                    rithum_id=str(ids[sku]),
                    content_hash=write.entry.product.content_hash,
                    kind=write.entry.product.kind.value,
                    sent=write.sent,
                    forced=write.entry.forced,
                )
                if write.created and T.attributes_of(write.entry.product.body):
                    created.append(write)
        # New products get their attributes once they have an ID (a POST carries the product's own fields).
        attributes = [
            _Write(w.entry, [rb.update_attributes(ids[w.entry.product.sku], T.attributes_of(w.sent))], w.sent, False)
            for w in created
        ]
        results = await self._send(attributes)
        for write in attributes:
            sku = write.entry.product.sku
            failed = next((r for r in results[sku] if not r.ok), None)
            if failed is not None:
                outcome = _failed(write.entry.product, f"attributes: Rithum {failed.status}: {failed.message}")
                outcome.rithum_id = str(ids[sku])
                outcome.sent = T.scalars(write.sent)  # what Rithum has: the next attempt sends the attributes
                outcomes[sku] = outcome
        return outcomes

    async def _send(self, writes: Sequence[_Write]) -> dict[str, list[rb.BatchResult]]:
        requests = [(w.entry.product.sku, part) for w in writes for part in w.parts]
        results: dict[str, list[rb.BatchResult]] = {w.entry.product.sku: [] for w in writes}
        if requests:
            for (sku, _), result in zip(requests, await self.rithum.batch([r for _, r in requests]), strict=True):
                results[sku].append(result)
        return results

    @staticmethod
    def _held_back(
        product: T.RithumProduct, missing: list[str], records: dict[str, SyncRecord], fed: set[str]
    ) -> Outcome:
        """A child without its parent, a bundle without its components: Pending while they are in a feed
        (the reconciler sends it on once they are confirmed), Failed when they are not on their way."""
        what = "parent" if product.kind is T.Kind.CHILD else "components"
        coming = [s for s in missing if s in fed or (s in records and records[s].status == SyncStatus.SUBMITTED)]
        if len(coming) == len(missing):
            reason = f"{what} {', '.join(missing)} submitted in a feed, not yet on Rithum"
            return Outcome(product.sku, SyncStatus.PENDING, WAITING, error=reason, kind=product.kind.value)
        return _failed(product, f"{what} {', '.join(s for s in missing if s not in coming)} not on Rithum")

    # -- unlisting ------------------------------------------------------------------------------

    async def _distribution_centers(self) -> list[int]:
        """The DCs whose quantity the merchant manages: externally managed ones (FBA) refuse writes."""
        if self._dcs is None:
            self._dcs = [
                int(dc["ID"])
                for dc in await self.rithum.distribution_centers()
                if not dc.get("IsExternallyManaged") and dc.get("Type") != "ExternallyManaged"
            ]
        return self._dcs

    async def _unlist(
        self, keys: Sequence[tuple[str, str]], records: dict[str, SyncRecord], rules: T.ProductRules
    ) -> dict[str, Outcome]:
        """Take products off sale on Rithum: quantity 0 in the merchant's DCs and a label, or delete them."""
        requests: list[rb.BatchRequest] = []
        owners: list[tuple[str, str]] = []
        for key, reason in keys:
            rithum_id = int(records[key].rithum_id or 0)
            if rules.on_unlist == "delete":
                parts = [rb.BatchRequest("DELETE", f"Products({rithum_id})")]
            else:
                parts = [rb.add_label(rithum_id, UNLISTED_LABEL)]
                dcs = await self._distribution_centers()
                if records[key].kind != T.Kind.PARENT.value and dcs:
                    parts.insert(0, rb.update_quantity(rithum_id, dict.fromkeys(dcs, 0), "Absolute"))
            requests += parts
            owners += [(key, reason)] * len(parts)
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


def _related(product: T.RithumProduct, stored: SyncRecord | None) -> set[str]:
    """SKUs whose Rithum IDs a write needs: the parent, the components now and those last sent."""
    return {s for s in (product.parent_sku, *product.component_skus) if s} | set(
        T.components_of(stored.sent if stored else None)
    )


def _create(entry: Spooled, ids: dict[str, int], *, lost: bool = False) -> _Write:
    product = entry.product
    body = T.scalars(product.body)
    if product.parent_sku:
        body["ParentProductID"] = ids[product.parent_sku]
    if product.kind is T.Kind.BUNDLE:  # documented on create (CA's create-a-bundle example)
        body["BundleComponents"] = product.body["BundleComponents"]
    sent = {**product.body, **({"ParentProductID": body["ParentProductID"]} if product.parent_sku else {})}
    return _Write(entry, [rb.create_product(body)], sent, True, lost=lost or entry.lost)


def _update(entry: Spooled, ids: dict[str, int], stored: SyncRecord | None, rules: T.ProductRules) -> _Write:
    """Only what changed since the last write: own properties in a PATCH, attributes through
    UpdateAttributes, bundle components one by one. Without a record of the last write, everything."""
    product = entry.product
    product_id = ids[product.sku]
    # A forced sync sends everything, as does one without a record of the last write.
    last = stored.sent if stored is not None and stored.status != SyncStatus.DELETED and not entry.forced else None
    new = T.scalars(product.body)
    new.pop("Sku")
    if product.parent_sku:
        new["ParentProductID"] = ids[product.parent_sku]
    old = T.scalars(last) if last else {}
    changed = {k: v for k, v in new.items() if last is None or old.get(k) != v}
    parts = [rb.update_product(product_id, changed)] if changed else []
    old_attributes = T.attributes_of(last)
    attributes = {k: v for k, v in T.attributes_of(product.body).items() if old_attributes.get(k) != v}
    if attributes:
        parts.append(rb.update_attributes(product_id, attributes))
    if product.kind is T.Kind.BUNDLE:
        old_components, components = T.components_of(last), T.components_of(product.body)
        parts += [
            rb.set_bundle_component(product_id, ids[sku], qty)
            for sku, qty in components.items()
            if old_components.get(sku) != qty
        ]
        removed = [s for s in old_components.keys() - components if s in ids]
        parts += [rb.remove_bundle_component(product_id, ids[s]) for s in removed]
    if stored is not None and stored.status == SyncStatus.DELETED and rules.on_unlist == "zero_quantity":
        parts.append(rb.remove_label(product_id, UNLISTED_LABEL))  # listed again
    sent = {**product.body, **({"ParentProductID": new["ParentProductID"]} if product.parent_sku else {})}
    return _Write(entry, parts, sent, False)


def _operation(write: _Write) -> str:
    if write.created:
        return RECREATED if write.lost else "Inserted Externally"
    return FORCED if write.entry.forced else "Updated Externally"


def _gone(result: rb.BatchResult) -> bool:
    """A 404 for the product itself (not for a label or component of it)."""
    return result.status == 404 and result.request.path.startswith("Products(")


def _benign(result: rb.BatchResult) -> bool:
    """Taking off a label the product no longer has is done already."""
    return result.status == 404 and result.request.method == "DELETE" and "ProductLabels" in result.request.path


def _write_backs(
    outcomes: Iterable[Outcome], current_ids: dict[str, tuple[str, str]], rules: T.ProductRules
) -> list[WriteBack]:
    """The Rithum product ID goes onto every item where it is missing or different."""
    return [
        WriteBack.of(current_ids[o.key][0], o.key, o.rithum_id, rules.product_id_field)
        for o in outcomes
        if o.status in (SyncStatus.PROCESSED, SyncStatus.SKIPPED)
        and o.rithum_id
        and o.key in current_ids
        and current_ids[o.key][1] != o.rithum_id
    ]


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
        attributes={a["Name"]: a["Value"] for a in body.get("Attributes", ())},
    )


def _failed(product: T.RithumProduct, reason: str, *, outage: bool = False) -> Outcome:
    return Outcome(
        product.sku, SyncStatus.FAILED, "Failed to Save", error=reason, kind=product.kind.value, outage=outage
    )


def _keys(units: Sequence[Unit]) -> list[str]:
    keys: list[str] = []
    for unit in units:
        keys.append(unit.key)
        if isinstance(unit, Family):
            keys += [v["InventoryID"] for v in unit.variants]
    return keys
