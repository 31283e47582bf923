"""Long jobs: no delivery held while they run, resumed from a checkpoint after a kill, cancellable.

RabbitMQ closes a channel whose delivery stays unacked past its `consumer_timeout` and redelivers the
message, which would run a long job twice. Here the run message is acked at once and the job is
claimed from the database; the broker checks the timeout only about once a minute, so the tests
assert what makes the timeout moot (nothing unacked on the jobs queue while a job runs) rather
than wait it out.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import httpx

from shared.db.models import SyncJob
from shared.messaging.topology import Topology
from tests.product.catalog import expected, rithum_products
from tests.product.conftest import Stack, eventually

# Small pages and files, so a 600-item job takes many checkpoints.
STACK_ENV = {"ACUMATICA_PAGE_SIZE": "50", "RITHUM_FEED_FILE_ROWS": "100"}


async def job_row(sessionmaker: Any, job_id: int) -> SyncJob:
    async with sessionmaker() as session:
        return await session.get(SyncJob, job_id)


def start_full_job(stack: Stack) -> int:
    with stack.api() as api:
        return api.post("/sync/product", json={"mode": "full"}).raise_for_status().json()["job_id"]


def job_status(stack: Stack, job_id: int) -> str:
    with stack.api() as api:
        return api.get(f"/jobs/{job_id}").raise_for_status().json()["status"]


def unacked_jobs(stack: Stack) -> int:
    queue = Topology(stack.settings.amqp_prefix).queue("product", "jobs")
    response = httpx.get(f"http://127.0.0.1:15672/api/queues/%2F/{queue}", auth=("guest", "guest"), timeout=10)
    return int(response.raise_for_status().json().get("messages_unacknowledged", 0))


async def test_a_killed_job_resumes_from_its_checkpoint_with_exact_counts(fresh: Stack, clean_db) -> None:
    fresh.reset(items=600)
    with fresh.api() as api, fresh.acu() as acu:
        api.put("/config", json={"feed_threshold": 50}).raise_for_status()
        acu.patch("/faults", json={"latency_ms": 150}).raise_for_status()  # a job of several seconds
    want = expected(fresh)
    eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])
    job_id = start_full_job(fresh)

    async def past_a_checkpoint() -> SyncJob | None:
        job = await job_row(clean_db, job_id)
        return job if job.checkpoint and job.checkpoint["position"][0] >= 1 else None

    job = await eventually(past_a_checkpoint, what="a checkpoint in the stock items")
    assert unacked_jobs(fresh) == 0  # the run message is not held while the job runs
    started, position = job.started_at, job.checkpoint["position"]
    fresh.kill_consumer(signal.SIGKILL)
    with fresh.acu() as acu:
        acu.patch("/faults", json={"latency_ms": 0}).raise_for_status()
    fresh.start_consumer()  # takes the job over once its heartbeat is stale, and resumes it

    done = await asyncio.to_thread(fresh.wait_job, job_id, 180)
    assert done["status"] == "succeeded", done
    resumed = await job_row(clean_db, job_id)
    assert resumed.started_at == started  # resumed, not started again
    assert resumed.checkpoint["position"] > position
    counts = done["counts"]
    assert counts["found"] == len(eligible) + len(want["ineligible"]), counts
    assert counts["processed"] == len(eligible) and counts["filtered"] == len(want["ineligible"]), counts
    skus = Counter(p["Sku"] for p in rithum_products(fresh))
    assert set(skus) == eligible and max(skus.values()) == 1


async def test_a_running_job_can_be_cancelled(fresh: Stack, clean_db) -> None:
    fresh.reset(items=600)
    with fresh.acu() as acu:
        acu.patch("/faults", json={"latency_ms": 150}).raise_for_status()
    try:
        job_id = start_full_job(fresh)
        await eventually(lambda: job_row(clean_db, job_id), what="the job row")
        await eventually(lambda: job_status(fresh, job_id) == "running", what="the job running")
        with fresh.api() as api:
            cancelled = api.post(f"/jobs/{job_id}/cancel").raise_for_status().json()
            assert cancelled["status"] == "cancelled"
        await asyncio.sleep(3)  # past the runner's next heartbeat: it has stopped
        found = (await job_row(clean_db, job_id)).found
        await asyncio.sleep(2)
        job = await job_row(clean_db, job_id)
        assert job.status == "cancelled" and job.found == found, (job.status, job.found, found)
    finally:
        with fresh.acu() as acu:
            acu.patch("/faults", json={"latency_ms": 0}).raise_for_status()
    # The process is free again: the next job runs, and a job that ended cannot be cancelled.
    after = fresh.run_job("full", timeout=180)
    assert after["status"] == "succeeded"
    with fresh.api() as api:
        assert api.post(f"/jobs/{after['job_id']}/cancel").status_code == 409
        assert api.post("/jobs/999999/cancel").status_code == 404
    assert (await job_row(clean_db, job_id)).status == "cancelled"
