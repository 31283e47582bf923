"""The FTP feed path at Rithum's pace: a job's file is picked up minutes later, and nothing waits for it.

The Rithum sandbox holds a feed for as long as its `feed_delay` says (here ten minutes, as the real
service takes up to an hour); `POST /_sandbox/feeds/process-pending` then plays the part of those
minutes passing, so the test need not sleep through them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select

from services.consumers.context import ConsumerContext
from services.consumers.product.consumer import ProductConsumer
from shared import syncrecords
from shared.db.models import FeedUpload, SyncRecord, SyncStatus
from shared.settings import Settings
from tests.product.catalog import expected, rithum_products, written_back
from tests.product.conftest import Stack, eventually


async def records(sessionmaker: Any) -> dict[str, SyncRecord]:
    async with sessionmaker() as session:
        return {r.acumatica_key: r for r in await session.scalars(select(SyncRecord))}


def job_status(stack: Stack, job_id: int) -> dict[str, Any]:
    with stack.api() as api:
        return api.get(f"/jobs/{job_id}").raise_for_status().json()


async def test_a_job_finishes_enumeration_at_once_and_confirms_after_a_ten_minute_feed_delay(
    fresh: Stack, clean_db
) -> None:
    fresh.reset(items=300)
    with fresh.rit() as rit, fresh.api() as api:
        rit.patch("/config", json={"feed_delay": 600}).raise_for_status()
        api.put("/config", json={"feed_threshold": 50}).raise_for_status()
    want = expected(fresh)
    fed = want["standalone"] | want["parent"] | set(want["child"])
    eligible = fed | set(want["bundle"])
    assert want["bundle"] and want["child"], "the seeded catalogue has kits and matrix families"

    started = time.monotonic()
    with fresh.api() as api:
        job_id = api.post("/sync/product", json={"mode": "full"}).raise_for_status().json()["job_id"]
    job = await eventually(
        lambda: (j := job_status(fresh, job_id))["status"] in ("confirming", "succeeded", "failed") and j,
        what="enumeration to end",
    )
    enumerated_in = time.monotonic() - started
    assert job["status"] == "confirming", job
    assert job["counts"]["submitted"] == len(fed) and job["counts"]["confirmed"] == 0, job["counts"]
    stored = await records(clean_db)
    assert {k for k, r in stored.items() if r.status == SyncStatus.SUBMITTED} == fed
    assert all(stored[k].feed_id == stored[next(iter(fed))].feed_id for k in fed)  # one file for the job
    # Kits wait for their components, which are in the file: held back, not failed.
    for sku in want["bundle"]:
        assert stored[sku].status == SyncStatus.PENDING and "submitted in a feed" in stored[sku].last_error
    with fresh.rit() as rit:
        pending = rit.get("/feeds/pending").raise_for_status().json()
        assert len(pending) == 1, pending
        rit.delete("/stats").raise_for_status()
    assert rithum_products(fresh) == []

    await asyncio.sleep(3)  # reconciler rounds while Rithum has not picked the file up yet
    with fresh.rit() as rit:
        waiting = rit.get("/stats").json()["by_kind"]
    assert waiting.get("products.get", 0) == 0 and waiting.get("products.list", 0) <= 6, waiting
    assert job_status(fresh, job_id)["status"] == "confirming"

    with fresh.rit() as rit:  # the ten minutes pass
        rit.post("/feeds/process-pending").raise_for_status()
    job = fresh.wait_job(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["counts"]["confirmed"] == len(fed), job["counts"]
    assert job["counts"]["processed"] == len(eligible), job["counts"]
    with fresh.rit() as rit:
        stats = rit.get("/stats").json()["by_kind"]
    # Confirmation cost a paged query, never a call per product (kits are created through the REST API).
    assert stats.get("products.get", 0) == 0, stats
    assert stats.get("products.list", 0) <= len(fed) / 100 + 8, stats

    products = {p["Sku"]: p for p in rithum_products(fresh)}
    assert set(products) == eligible
    stored = await records(clean_db)
    for sku in eligible:
        assert stored[sku].status == SyncStatus.PROCESSED, (sku, stored[sku].status, stored[sku].last_error)
        assert stored[sku].rithum_id == str(products[sku]["ID"])
    for sku, parent in want["child"].items():
        assert products[sku]["ParentProductID"] == products[parent]["ID"]
    for sku, components in want["bundle"].items():
        assert products[sku]["BundleType"] == "BundleItem"
        assert {c["ComponentSku"]: c["Quantity"] for c in products[sku]["BundleComponents"]} == components
    await eventually(lambda: written_back(fresh, clean_db, eligible), what="CA Product IDs written back")
    print(f"enumeration ended after {enumerated_in:.1f} s; confirmation calls: {stats}")


async def test_rows_not_seen_in_time_fail_with_the_reason_and_go_through_the_rest_api(fresh: Stack, clean_db) -> None:
    fresh.reset(items=40)
    with fresh.rit() as rit:
        rit.patch("/config", json={"feed_delay": 600}).raise_for_status()
    skus = sorted(expected(fresh)["standalone"])[:5]
    env = fresh.env
    settings = Settings(
        database_url=env["DATABASE_URL"],
        amqp_prefix=env["AMQP_PREFIX"],
        acumatica_url=env["ACUMATICA_URL"],
        rithum_api_url=env["RITHUM_API_URL"],
        rithum_ftp_url=env["RITHUM_FTP_URL"],
        rithum_feed_confirm_timeout=1,
    )
    ctx = await ConsumerContext.build(settings, "feed-timeout-test")
    try:
        consumer = ProductConsumer(ctx)
        rules, _, _ = await consumer._rules()
        outcomes, _ = await consumer.pipeline.sync(await consumer.source.resolve(skus), rules, feed_threshold=1)
        assert {o.status for o in outcomes} == {SyncStatus.SUBMITTED}
        async with clean_db() as session, session.begin():
            await syncrecords.save(session, "product", outcomes)
        await asyncio.sleep(1.2)  # past the file's deadline, and Rithum has not picked it up
        task = consumer.reconciler_task()  # rounds under the lock, as the stack's own reconciler's
        for _ in range(50):
            if await task.round():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the reconciler lock was never free")
    finally:
        await ctx.close()
    async with clean_db() as session:
        feed = await session.scalar(select(FeedUpload))
    assert (feed.status, feed.failed, feed.confirmed) == ("settled", 5, 0)

    # The retry path sends them through the REST API; the late file then changes nothing twice.
    async def all_listed() -> bool:
        stored = await records(clean_db)
        return all(stored[s].status == SyncStatus.PROCESSED for s in skus)

    await eventually(all_listed, what="timed-out rows listed through the REST API")
    with fresh.rit() as rit:
        rit.post("/feeds/process-pending").raise_for_status()
    products = rithum_products(fresh)
    assert sorted(p["Sku"] for p in products) == skus  # created once, the late file updated them
