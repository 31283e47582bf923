"""The CA Product ID write-back: queued off the sync's path, healed when lost, retried when Acumatica
fails, and never re-creating an item that is gone."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from services.consumers.product.transform import FieldRef
from services.consumers.product.writeback import ERROR_PREFIX, WriteBack, envelopes
from shared import syncrecords
from shared.db.models import SyncRecord, SyncStatus
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.syncrecords import Outcome
from tests.product.catalog import attr
from tests.product.conftest import Stack, eventually
from tests.product.test_realtime import acumatica_item, record, rithum_product

CA_ID = FieldRef("attribute", "CAPRODUCTID")


async def publish_write_backs(stack: Stack, items: list[WriteBack]) -> None:
    publisher = Publisher(stack.settings.amqp_url_plain, Topology(stack.settings.amqp_prefix), name="test")
    await publisher.start()
    try:
        await publisher.publish_many(envelopes(items, None))
    finally:
        await publisher.close()


async def listed_item(stack: Stack, clean_db) -> tuple[str, str]:
    """A small catalogue fully synced; one standalone item's SKU and Rithum ID, once written back."""
    stack.reset(items=40)
    assert stack.run_job("full")["status"] == "succeeded"
    stored = await eventually(lambda: _standalone(clean_db), what="a processed standalone record")
    sku, rithum_id = stored.acumatica_key, stored.rithum_id
    await eventually(lambda: attr(acumatica_item(stack, sku), "CAPRODUCTID") == rithum_id, what="write-back")
    return sku, rithum_id


async def _standalone(sessionmaker) -> SyncRecord | None:
    async with sessionmaker() as session:
        return await session.scalar(
            select(SyncRecord).where(SyncRecord.kind == "standalone", SyncRecord.status == "Processed").limit(1)
        )


async def test_lost_write_back_is_healed_by_the_next_sync_of_the_item(fresh: Stack, clean_db) -> None:
    sku, rithum_id = await listed_item(fresh, clean_db)
    # Someone clears the field in Acumatica (or a write-back was lost): the next delta brings the item
    # back, its content is unchanged for Rithum, and the ID is put back all the same.
    cleared = {"Attributes": [{"AttributeID": "CAPRODUCTID", "Value": ""}]}
    with fresh.acu() as acu, fresh.rit() as rit:
        acu.post("/records/StockItem/change", json={"keys": [sku], "set": cleared}).raise_for_status()
        assert not attr(acumatica_item(fresh, sku), "CAPRODUCTID")
        rit.delete("/stats")
    delta = fresh.run_job("delta")
    assert delta["status"] == "succeeded" and delta["counts"]["skipped"] >= 1, delta
    await eventually(lambda: attr(acumatica_item(fresh, sku), "CAPRODUCTID") == rithum_id, what="healed write-back")
    with fresh.rit() as rit:
        assert rit.get("/stats").json()["api_calls"] == 0  # nothing changed for Rithum: no call there
    assert (await record(clean_db, sku)).status == "Processed"


async def test_write_back_for_a_deleted_item_is_noted_and_never_recreates_it(fresh: Stack, clean_db) -> None:
    fresh.reset(items=10)
    async with clean_db() as session, session.begin():
        outcome = Outcome("WB-GONE", SyncStatus.PROCESSED, "Inserted Externally", rithum_id="424242", kind="standalone")
        await syncrecords.save(session, "product", [outcome])
    await publish_write_backs(fresh, [WriteBack.of("StockItem", "WB-GONE", "424242", CA_ID)])
    stored = await eventually(
        lambda: _with_error(clean_db, "WB-GONE"), what="the failed write-back to be noted on the record"
    )
    assert stored.status == "Processed"  # the product is on Rithum; only the cross-reference is missing
    assert stored.last_error.startswith(ERROR_PREFIX) and "412" in stored.last_error
    with fresh.acu() as acu:
        assert acu.get("/records/StockItem/WB-GONE").status_code == 404  # If-Match: no upsert of a ghost


async def _with_error(sessionmaker, key: str) -> SyncRecord | None:
    stored = await record(sessionmaker, key)
    return stored if stored is not None and stored.last_error else None


async def write_back_through_outage(stack: Stack, sku: str, rithum_id: str, value: str, down_seconds: float) -> None:
    """Acumatica fails every call while a write-back of `value` is queued; the item keeps its ID meanwhile
    and gets `value` once Acumatica is back. Each attempt first spends the client's own retries
    (0.5 + 1 + 2 + 4 s at most), so the write-back has to go round the queue's retry tiers."""
    with stack.acu() as acu:
        acu.patch("/faults", json={"error_rate": 1.0}).raise_for_status()
        await publish_write_backs(stack, [WriteBack.of("StockItem", sku, value, CA_ID)])
        await asyncio.sleep(down_seconds)
        assert attr(acumatica_item(stack, sku), "CAPRODUCTID") == rithum_id
        acu.patch("/faults", json={"error_rate": 0.0}).raise_for_status()
    # Only a record still pointing at that Rithum product is stamped; the item gets the queued value.
    await eventually(lambda: attr(acumatica_item(stack, sku), "CAPRODUCTID") == value, what="write-back after outage")


async def test_write_back_waits_out_an_acumatica_outage(fresh: Stack, clean_db) -> None:
    sku, rithum_id = await listed_item(fresh, clean_db)
    product = rithum_product(fresh, sku)
    assert product is not None and str(product["ID"]) == rithum_id
    with fresh.api() as api:
        api.put("/config", json={"retry_delays": [1, 2]}).raise_for_status()
    await write_back_through_outage(fresh, sku, rithum_id, "777", down_seconds=9)


async def test_write_back_outlasts_the_sites_attempts_during_a_long_outage(fresh: Stack, clean_db) -> None:
    """Records give up after the site's `max_attempts`; a write-back keeps trying past them (MIN_ATTEMPTS):
    20 s down is more than the site's two attempts last, after which a record would be dead-lettered."""
    sku, rithum_id = await listed_item(fresh, clean_db)
    with fresh.api() as api:
        api.put("/config", json={"max_attempts": 2, "retry_delays": [0.5]}).raise_for_status()
    await write_back_through_outage(fresh, sku, rithum_id, "888", down_seconds=20)
