"""An Acumatica outage longer than a record's retry span dead-letters nothing: it is waited out.

Maintenance windows last hours; a record's own retries (here two, a second apart) are for record
errors. A change notified while Acumatica answers nothing but 500s is retried on the outage schedule
(here every 1-2 s, without spending attempts) and processed once Acumatica is back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from shared.db.models import SyncRecord, SyncStatus
from shared.messaging.topology import Topology
from tests.product.catalog import expected
from tests.product.conftest import Stack, eventually

STACK_ENV = {"OUTAGE_RETRY_DELAYS": "[1, 2]", "ACUMATICA_MAX_ATTEMPTS": "1"}


def queue_depth(stack: Stack, queue: str) -> int:
    response = httpx.get(f"http://127.0.0.1:15672/api/queues/%2F/{queue}", auth=("guest", "guest"), timeout=10)
    return int(response.raise_for_status().json().get("messages", 0))


async def records(sessionmaker: Any, keys: list[str]) -> dict[str, SyncRecord]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(SyncRecord).where(SyncRecord.acumatica_key.in_(keys)))
        return {r.acumatica_key: r for r in rows}


async def test_changes_during_a_long_acumatica_outage_are_processed_after_it(fresh: Stack, clean_db) -> None:
    fresh.reset(items=40)
    keys = sorted(expected(fresh)["standalone"])[:5]
    with fresh.api() as api:
        api.put("/config", json={"retry_delays": [1], "max_attempts": 2}).raise_for_status()
    with fresh.acu() as acu:
        acu.patch("/faults", json={"error_rate": 1.0}).raise_for_status()  # every API call answers 500
        for n, key in enumerate(keys):  # the ERP's own screens still work and still notify
            acu.post("/records/StockItem/change", json={"keys": [key], "set": {"Description": f"During {n}"}})
    try:
        await asyncio.sleep(15)  # five times the records' own retry span
        dlq = Topology(fresh.settings.amqp_prefix).dlq("product")
        assert queue_depth(fresh, dlq) == 0
        assert not any(r.status == SyncStatus.ABORTED for r in (await records(clean_db, keys)).values())
    finally:
        with fresh.acu() as acu:
            acu.patch("/faults", json={"error_rate": 0.0}).raise_for_status()

    async def all_processed() -> bool:
        found = await records(clean_db, keys)
        return len(found) == len(keys) and all(r.status == SyncStatus.PROCESSED for r in found.values())

    await eventually(all_processed, timeout=120, what="the changes processed after the outage")
    with fresh.rit() as rit:
        titles = {k: rit.get("/products", params={"sku": k}).json()["value"][0]["Title"] for k in keys}
    assert titles == {k: f"During {n}" for n, k in enumerate(keys)}
    assert queue_depth(fresh, Topology(fresh.settings.amqp_prefix).dlq("product")) == 0
