"""Push notifications end to end, a consumer killed mid-run, and a Rithum outage during a sync."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from shared.db.models import RequestLogRow, SyncRecord
from tests.product.catalog import attr, expected, rithum_products
from tests.product.conftest import SECRET, Stack, eventually


def rithum_product(stack: Stack, sku: str) -> dict[str, Any] | None:
    with stack.rit() as rit:
        found = rit.get("/products", params={"sku": sku}).json()["value"]
    return found[0] if found else None


def acumatica_item(stack: Stack, sku: str) -> dict[str, Any]:
    with stack.acu() as acu:
        return acu.get(f"/records/StockItem/{sku}").raise_for_status().json()


async def record(sessionmaker, key: str) -> SyncRecord | None:
    async with sessionmaker() as session:
        return await session.scalar(select(SyncRecord).where(SyncRecord.acumatica_key == key))


def new_item(sku: str, active: str = "1") -> dict[str, Any]:
    return {
        "InventoryID": sku,
        "Description": "Wooden train set",
        "ItemClass": "TOYS",
        "DefaultPrice": 24.5,
        "Attributes": [{"AttributeID": "ACTIVERITHUM", "Value": active}, {"AttributeID": "ALLOWFBA", "Value": "1"}],
    }


async def test_create_update_and_flag_off_take_effect(fresh: Stack, clean_db) -> None:
    fresh.reset(items=40)
    with fresh.acu() as acu:
        acu.post("/records/StockItem", json={"records": [new_item("RT-TRAIN")]}).raise_for_status()
    product = await eventually(lambda: rithum_product(fresh, "RT-TRAIN"), what="RT-TRAIN on Rithum")
    assert product["Title"] == "Wooden train set" and product["Classification"]
    assert {(a["Name"], a["Value"]) for a in product["Attributes"]} >= {("AllowedForFBA", "true")}
    await eventually(
        lambda: attr(acumatica_item(fresh, "RT-TRAIN"), "CAPRODUCTID") == str(product["ID"]), what="write-back"
    )

    with fresh.acu() as acu:
        acu.post("/records/StockItem/change", json={"keys": ["RT-TRAIN"], "set": {"Description": "Steam train"}})
    await eventually(lambda: rithum_product(fresh, "RT-TRAIN")["Title"] == "Steam train", what="title update")

    # Only what changed, and only the product's own properties: Rithum refuses collections in a PATCH.
    async def patches() -> list[str]:
        async with clean_db() as session:
            sent = await session.scalars(
                select(RequestLogRow.request_excerpt).where(
                    RequestLogRow.system == "rithum", RequestLogRow.url.like("%$batch%")
                )
            )
            return [line for body in sent for line in (body or "").splitlines() if "Steam train" in line]

    assert await eventually(patches, what="the PATCH in the request log") == ['{"Title": "Steam train"}']

    flag_off = {"Attributes": [{"AttributeID": "ACTIVERITHUM", "Value": "0"}]}
    with fresh.acu() as acu:
        acu.post("/records/StockItem/change", json={"keys": ["RT-TRAIN"], "set": flag_off}).raise_for_status()
    await eventually(
        lambda: "Unlisted" in {label["Name"] for label in rithum_product(fresh, "RT-TRAIN").get("Labels") or []},
        what="unlisting",
    )
    unlisted = rithum_product(fresh, "RT-TRAIN")
    with fresh.rit() as rit:
        external = {dc["ID"] for dc in rit.get("/distribution-centers").json() if dc["Type"] == "ExternallyManaged"}
    assert external, "the sandbox has an externally managed (FBA) distribution centre"
    quantities = {dc["DistributionCenterID"]: dc["AvailableQuantity"] for dc in unlisted.get("DCQuantities") or []}
    assert quantities and set(quantities.values()) == {0} and not external & set(quantities), quantities
    stored = await record(clean_db, "RT-TRAIN")
    assert stored.status == "Deleted" and "Active on Rithum" in stored.last_error

    # A new item without the flag is Filtered with its reason, and never reaches Rithum.
    with fresh.acu() as acu:
        acu.post("/records/StockItem", json={"records": [new_item("RT-HIDDEN", active="0")]}).raise_for_status()
    stored = await eventually(lambda: record(clean_db, "RT-HIDDEN"), what="RT-HIDDEN to be recorded")
    assert stored.status == "Filtered"
    assert rithum_product(fresh, "RT-HIDDEN") is None


def notification(sku: str, description: str, notification_id: str) -> dict[str, Any]:
    row = {"InventoryID": f"{sku} ", "Description": description, "ItemClass": "TOYS"}
    return {
        "Inserted": [row],
        "Deleted": [{**row, "Description": "before"}],
        "Query": "RithumProducts",
        "CompanyId": "Company",
        "Id": notification_id,
        "TimeStamp": 638465233453014192,
        "AdditionalInfo": {},
    }


async def test_duplicated_notification_causes_one_write(fresh: Stack, clean_db) -> None:
    fresh.reset(items=10)
    with fresh.acu() as acu:
        for definition in acu.get("/push/definitions").json():  # only our own notifications below
            acu.delete(f"/push/definitions/{definition['query']}")
        acu.post("/records/StockItem", json={"records": [new_item("RT-DUP")]}).raise_for_status()
    webhook = f"{fresh.ingress}/webhooks/acumatica"
    first = notification("RT-DUP", "Wooden train set", str(uuid.uuid4()))
    assert httpx.post(webhook, json=first, headers={"Authorization": SECRET}).status_code == 202
    await eventually(lambda: rithum_product(fresh, "RT-DUP"), what="RT-DUP on Rithum")
    await eventually(lambda: attr(acumatica_item(fresh, "RT-DUP"), "CAPRODUCTID"), what="write-back")
    with fresh.rit() as rit:
        rit.delete("/stats")
    # The same notification again, and a resend under a new Id for the same unchanged item.
    second = notification("RT-DUP", "Wooden train set", str(uuid.uuid4()))
    for body in (first, first, second):
        assert httpx.post(webhook, json=body, headers={"Authorization": SECRET}).status_code == 202

    async def resend_handled() -> bool:
        stored = await record(clean_db, "RT-DUP")
        return stored is not None and stored.last_operation == "Not Changed"

    await eventually(resend_handled, timeout=20, what="the resend to be handled")
    with fresh.rit() as rit:
        writes = {k: v for k, v in rit.get("/stats").json()["by_kind"].items() if k.startswith("products.")}
    assert writes.get("products.create", 0) == 0 and writes.get("products.update", 0) == 0, writes
    assert Counter(p["Sku"] for p in rithum_products(fresh))["RT-DUP"] == 1


async def test_consumer_killed_mid_run_completes_without_duplicates(fresh: Stack, clean_db) -> None:
    fresh.reset(items=400)
    with fresh.api() as api:
        api.put("/config", json={"feed_threshold": 100_000, "batch_size": 20}).raise_for_status()
        job_id = api.post("/sync/product", json={"mode": "full"}).raise_for_status().json()["job_id"]
        await eventually(lambda: api.get(f"/jobs/{job_id}").json()["counts"]["processed"] > 0, what="the job to start")
    fresh.kill_consumer(signal.SIGKILL)
    fresh.start_consumer()
    job = fresh.wait_job(job_id)
    assert job["status"] == "succeeded"
    want = expected(fresh)
    eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])
    skus = Counter(p["Sku"] for p in rithum_products(fresh))
    assert set(skus) == eligible
    assert max(skus.values()) == 1


async def test_rithum_outage_and_429_bursts_during_a_sync(fresh: Stack, clean_db) -> None:
    fresh.reset(items=150)
    with fresh.api() as api, fresh.rit() as rit:
        api.put("/config", json={"feed_threshold": 100_000, "retry_delays": [1, 2], "max_attempts": 20})
        rit.patch("/faults", json={"outage": True}).raise_for_status()
        job_id = api.post("/sync/product", json={"mode": "full"}).raise_for_status().json()["job_id"]
        job = fresh.wait_job(job_id)
        rit.patch("/faults", json={"outage": False, "burst_429": 15, "retry_after": 1}).raise_for_status()
    assert job["status"] == "succeeded" and job["counts"]["failed"] > 0  # handed to the retry path
    want = expected(fresh)
    eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])

    async def all_processed() -> bool:
        async with clean_db() as session:
            rows = (await session.scalars(select(SyncRecord).where(SyncRecord.acumatica_key.in_(eligible)))).all()
        return len(rows) == len(eligible) and all(r.status == "Processed" for r in rows)

    await eventually(all_processed, timeout=120, what="every record Processed after Rithum came back")

    def job_settled() -> bool:  # the records the job counted as failed move to processed as they recover
        with fresh.api() as api:
            counts = api.get(f"/jobs/{job_id}").json()["counts"]
        return counts["failed"] == 0 and counts["processed"] == len(eligible)

    await eventually(job_settled, timeout=30, what="the job's counts to settle")
    skus = Counter(p["Sku"] for p in rithum_products(fresh))
    assert set(skus) == eligible and max(skus.values()) == 1


async def test_a_mapping_change_reaches_the_running_consumer(fresh: Stack, clean_db) -> None:
    """No restart: once TOYS is no longer mapped, the next change of a TOYS item unlists its product."""
    fresh.reset(items=10)
    with fresh.acu() as acu:
        acu.post("/records/StockItem", json={"records": [new_item("RT-MAPPED")]}).raise_for_status()
    await eventually(lambda: rithum_product(fresh, "RT-MAPPED"), what="RT-MAPPED on Rithum")
    with fresh.api() as api:
        mapped = api.get("/mappings/item_class").raise_for_status().json()["items"]
        kept = [m for m in mapped if m["source"] != "TOYS"]
        assert len(kept) == len(mapped) - 1
        api.put("/mappings/item_class", json=kept).raise_for_status()

    changes = 0

    async def unlisted() -> bool:
        nonlocal changes
        stored = await record(clean_db, "RT-MAPPED")
        if stored is not None and stored.status == "Deleted":
            return True
        changes += 1  # a change the consumer may still have handled with the old mappings: change again
        with fresh.acu() as acu:
            body = {"keys": ["RT-MAPPED"], "set": {"Description": f"Train set, take {changes}"}}
            acu.post("/records/StockItem/change", json=body).raise_for_status()
        return False

    await eventually(unlisted, timeout=30, what="the unmapped class to unlist the product")
    stored = await record(clean_db, "RT-MAPPED")
    assert "TOYS" in stored.last_error and "not mapped" in stored.last_error, stored.last_error
    labels = {label["Name"] for label in rithum_product(fresh, "RT-MAPPED").get("Labels") or []}
    assert "Unlisted" in labels
