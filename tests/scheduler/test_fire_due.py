"""Turning due schedules into jobs against the real database: once per due run, missed runs collapsed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.schedules import fire_due
from tests.scheduler.helpers import add_schedule, get_schedule, jobs_of, staged_envelopes

NOW = datetime(2030, 3, 15, 10, 7, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


async def fire(sessionmaker: Sessions, now: datetime = NOW) -> int:
    async with sessionmaker() as session, session.begin():
        return len(await fire_due(session, now))


async def test_due_schedule_starts_one_job_with_its_run_message(clean_db: Sessions) -> None:
    sid = await add_schedule(clean_db, cron="*/15 * * * *", mode="full", next_run_at=NOW - timedelta(seconds=30))

    assert await fire(clean_db) == 1

    [job] = await jobs_of(clean_db, sid)
    assert (job.entity, job.mode, job.source, job.status) == ("product", "full", "scheduler", "queued")
    schedule = await get_schedule(clean_db, sid)
    assert schedule.last_job_id == job.id
    assert schedule.last_run_at == NOW
    assert schedule.next_run_at == datetime(2030, 3, 15, 10, 15, tzinfo=UTC)
    [envelope] = await staged_envelopes(clean_db)
    assert (envelope["entity"], envelope["kind"], envelope["op"]) == ("product", "jobs", "run")
    assert envelope["payload"] == {"job_id": job.id, "mode": "full"}
    # The same moment again finds nothing due.
    assert await fire(clean_db) == 0


async def test_missed_runs_collapse_into_one(clean_db: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    sid = await add_schedule(clean_db, cron="0 * * * *", next_run_at=NOW - timedelta(hours=5))

    with caplog.at_level(logging.WARNING, "connector.schedules"):
        assert await fire(clean_db) == 1

    assert len(await jobs_of(clean_db, sid)) == 1
    assert (await get_schedule(clean_db, sid)).next_run_at == datetime(2030, 3, 15, 11, 0, tzinfo=UTC)
    assert "missed since then are collapsed into this one" in caplog.text


async def test_not_due_and_inactive_schedules_wait(clean_db: Sessions) -> None:
    later = await add_schedule(clean_db, next_run_at=NOW + timedelta(seconds=1))
    paused = await add_schedule(clean_db, active=False, next_run_at=NOW - timedelta(minutes=1))

    assert await fire(clean_db) == 0
    assert await jobs_of(clean_db, later) == []
    assert await jobs_of(clean_db, paused) == []


async def test_a_broken_row_is_deactivated_without_blocking_others(
    clean_db: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    broken = await add_schedule(clean_db, cron="every night", next_run_at=NOW - timedelta(minutes=2))
    fine = await add_schedule(clean_db, next_run_at=NOW - timedelta(minutes=1))

    with caplog.at_level(logging.ERROR, "connector.schedules"):
        assert await fire(clean_db) == 1

    assert len(await jobs_of(clean_db, fine)) == 1
    assert await jobs_of(clean_db, broken) == []
    parked = await get_schedule(clean_db, broken)
    assert (parked.active, parked.next_run_at) == (False, None)
    assert f"schedule {broken} (nightly products) deactivated: cron expression needs 5 fields" in caplog.text


async def test_concurrent_scheduler_skips_rows_another_is_firing(clean_db: Sessions) -> None:
    sid = await add_schedule(clean_db, next_run_at=NOW - timedelta(minutes=1))

    async with clean_db() as first, first.begin():
        assert len(await fire_due(first, NOW)) == 1
        # While the first transaction holds the row, a second scheduler neither waits for it nor fires it.
        async with asyncio.timeout(5), clean_db() as second, second.begin():
            assert await fire_due(second, NOW) == []

    assert await fire(clean_db) == 0
    assert len(await jobs_of(clean_db, sid)) == 1
