"""A seeded catalogue of ~1,000 mixed items, fully synced, then a delta of ten changes."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from shared.db.models import SyncRecord
from tests.product.catalog import expected, rithum_products, written_back
from tests.product.conftest import Stack, eventually


async def records(sessionmaker) -> dict[str, SyncRecord]:
    async with sessionmaker() as session:
        return {r.acumatica_key: r for r in await session.scalars(select(SyncRecord))}


async def test_full_then_delta_sync(fresh: Stack, clean_db) -> None:
    fresh.reset(items=1000)
    with fresh.api() as api:  # a small feed threshold: templates go through $batch, item pages as FTP feeds
        api.put("/config", json={"feed_threshold": 300}).raise_for_status()
    want = expected(fresh)
    job = fresh.run_job("full")
    assert job["status"] == "succeeded", job

    products = rithum_products(fresh)
    skus = Counter(p["Sku"] for p in products)
    assert [s for s, n in skus.items() if n > 1] == []  # no SKU twice
    by_sku = {p["Sku"]: p for p in products}
    eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])
    assert set(by_sku) == eligible
    for sku in want["parent"]:
        assert by_sku[sku]["IsParent"] is True
    for sku, parent in want["child"].items():
        assert by_sku[sku]["ParentProductID"] == by_sku[parent]["ID"]
        assert by_sku[sku]["RelationshipName"] == by_sku[parent]["RelationshipName"] == "Color-Size"
        assert {a["Name"] for a in by_sku[sku]["Attributes"]} >= {"COLOR", "SIZE"}
    for sku, components in want["bundle"].items():
        got = {c["ComponentSku"]: c["Quantity"] for c in by_sku[sku]["BundleComponents"]}
        assert got == components
    for sku in want["standalone"]:
        assert not by_sku[sku]["IsInRelationship"] and by_sku[sku].get("BundleType") in (None, "None")

    stored = await records(clean_db)
    for sku in want["ineligible"]:
        assert stored[sku].status == "Filtered", (sku, stored[sku].status)
        assert "not mapped" in stored[sku].last_error or "Active on Rithum" in stored[sku].last_error
    for sku in eligible:
        assert stored[sku].status == "Processed", (sku, stored[sku].status, stored[sku].last_error)
        assert stored[sku].rithum_id == str(by_sku[sku]["ID"])
    # The Rithum product ID is written back onto every exported Acumatica item (off the sync's path).
    await eventually(lambda: written_back(fresh, clean_db, eligible), what="CA Product IDs written back")
    assert job["counts"]["found"] == len(eligible) + len(want["ineligible"])
    assert job["counts"]["processed"] == len(eligible)
    assert job["counts"]["filtered"] == len(want["ineligible"])

    # Delta: ten changed simple items, and nothing else, are touched. Push notifications are switched
    # off first, so that the delta job, not the real-time path, is what picks the changes up.
    changed = sorted(want["standalone"])[:10]
    with fresh.acu() as acu, fresh.rit() as rit:
        for definition in acu.get("/push/definitions").json():
            acu.delete(f"/push/definitions/{definition['query']}").raise_for_status()
        for n, sku in enumerate(changed):
            acu.post("/records/StockItem/change", json={"keys": [sku], "set": {"Description": f"Changed {n}"}})
        rit.delete("/stats")
    delta = fresh.run_job("delta")
    assert delta["status"] == "succeeded"
    assert delta["counts"]["found"] == 10 and delta["counts"]["processed"] == 10, delta
    after = {p["Sku"]: p for p in rithum_products(fresh)}
    assert {s for s in after if after[s]["Title"].startswith("Changed")} == set(changed)
    with fresh.rit() as rit:
        stats = rit.get("/stats").json()
    assert stats["by_kind"].get("products.create", 0) == 0
