"""A full sync repairs what Rithum lost; a forced one re-sends everything; an update meeting a 404 re-creates.

Products deleted on Rithum behind the connector's back (by a person, a new profile, a restore) are
what a merchant runs a full sync for: the content-hash skip must not turn it into a no-op.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import SyncRecord, SyncStatus
from shared.rithum.client import RithumClient
from shared.settings import Settings
from shared.syncrecords import FORCED, RECREATED
from tests.product.catalog import expected, rithum_products, written_back
from tests.product.conftest import Stack, eventually


async def records(sessionmaker: Any) -> dict[str, SyncRecord]:
    async with sessionmaker() as session:
        return {r.acumatica_key: r for r in await session.scalars(select(SyncRecord))}


async def delete_on_rithum(stack: Stack, ids: list[int]) -> None:
    settings = Settings(rithum_api_url=stack.env["RITHUM_API_URL"], database_url=stack.env["DATABASE_URL"])
    rithum = RithumClient.from_settings(settings, None)
    try:
        for product_id in ids:
            await rithum.delete_product(product_id)
    finally:
        await rithum.aclose()


def rithum_stats(stack: Stack) -> dict[str, int]:
    with stack.rit() as rit:
        return rit.get("/stats").json()["by_kind"]


async def test_full_sync_recreates_what_rithum_lost_and_a_forced_one_resends_everything(fresh: Stack, clean_db) -> None:
    fresh.reset(items=300)
    with fresh.api() as api:
        api.put("/config", json={"feed_threshold": 100_000}).raise_for_status()
    want = expected(fresh)
    eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])
    assert fresh.run_job("full")["status"] == "succeeded"
    before = {p["Sku"]: p["ID"] for p in rithum_products(fresh)}
    assert set(before) == eligible

    # 50 products vanish from Rithum; the connector still believes them listed.
    components = {c for parts in want["bundle"].values() for c in parts}
    lost = sorted(want["standalone"] - components)[:50]  # Rithum refuses to delete a bundle's component
    assert len(lost) == 50
    await delete_on_rithum(fresh, [before[sku] for sku in lost])
    with fresh.rit() as rit:
        rit.delete("/stats").raise_for_status()
    job = fresh.run_job("full")
    assert job["status"] == "succeeded", job
    assert job["counts"]["recreated"] == 50 and job["counts"]["processed"] == 50, job["counts"]
    after = {p["Sku"]: p["ID"] for p in rithum_products(fresh)}
    assert set(after) == eligible
    assert all(after[sku] != before[sku] for sku in lost)
    assert all(after[sku] == before[sku] for sku in eligible - set(lost))
    stats = rithum_stats(fresh)
    assert stats.get("products.create", 0) == 50 and stats.get("products.update", 0) == 0, stats
    # The check cost one listing page per 100 products (plus the SKU lookups of the 50 before creating).
    assert stats.get("products.list", 0) <= len(eligible) / 100 + 1 + 50 / 20 + 1, stats
    stored = await records(clean_db)
    assert {sku for sku in lost if stored[sku].last_operation == RECREATED} == set(lost)
    assert all(stored[sku].rithum_id == str(after[sku]) for sku in lost)
    await eventually(lambda: written_back(fresh, clean_db, set(lost)), what="new IDs written back")

    # Forced: every record is sent again, although nothing changed.
    with fresh.api() as api, fresh.rit() as rit:
        rit.delete("/stats").raise_for_status()
        job_id = api.post("/sync/product", json={"mode": "full", "force": True}).raise_for_status().json()["job_id"]
    forced = fresh.wait_job(job_id)
    assert forced["status"] == "succeeded" and forced["force"] is True, forced
    assert forced["counts"]["forced"] == len(eligible) and forced["counts"]["processed"] == len(eligible), forced
    stats = rithum_stats(fresh)
    assert stats.get("products.update", 0) >= len(eligible), stats  # a full PATCH of each one
    stored = await records(clean_db)
    assert {sku for sku in eligible if stored[sku].last_operation == FORCED} == eligible


async def test_an_update_meeting_a_deleted_product_creates_it_again(fresh: Stack, clean_db) -> None:
    fresh.reset(items=40)
    want = expected(fresh)
    sku = sorted(want["standalone"] - {c for parts in want["bundle"].values() for c in parts})[0]
    assert fresh.run_job("full")["status"] == "succeeded"
    old = {p["Sku"]: p["ID"] for p in rithum_products(fresh)}[sku]
    await delete_on_rithum(fresh, [old])
    with fresh.acu() as acu:  # a real-time change: the connector PATCHes the ID it knows, Rithum says 404
        acu.post("/records/StockItem/change", json={"keys": [sku], "set": {"Description": "Back again"}})

    async def recreated() -> SyncRecord | None:
        stored = (await records(clean_db)).get(sku)
        return stored if stored is not None and stored.last_operation == RECREATED else None

    stored = await eventually(recreated, what="the product created again")
    assert stored.status == SyncStatus.PROCESSED
    now = {p["Sku"]: p for p in rithum_products(fresh)}[sku]
    assert now["Title"] == "Back again" and str(now["ID"]) == stored.rithum_id != str(old)
    await eventually(lambda: written_back(fresh, clean_db, {sku}), what="the new ID written back")
