"""Leader election on a session-level advisory lock in the real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scheduler.leader import LeaderLock
from shared.settings import Settings

TEST_KEY = 0x7465_7374_6C6F_636B  # not the scheduler's key, so a running scheduler is not disturbed


@pytest.fixture
async def locks(settings: Settings) -> AsyncIterator[tuple[LeaderLock, LeaderLock]]:
    a = LeaderLock(settings.database_url_plain, name="test-leader-a", key=TEST_KEY)
    b = LeaderLock(settings.database_url_plain, name="test-leader-b", key=TEST_KEY)
    yield a, b
    await a.release()
    await b.release()


async def test_one_leader_at_a_time_and_release_hands_over(locks: tuple[LeaderLock, LeaderLock]) -> None:
    a, b = locks
    assert await a.acquire()
    assert not await b.acquire()
    assert await a.confirm()
    assert not await b.confirm()

    await a.release()
    assert await b.acquire()
    assert not await a.acquire()


async def test_dropped_connection_frees_the_lock_and_the_old_leader_notices(
    locks: tuple[LeaderLock, LeaderLock], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = locks
    assert await a.acquire()
    async with sessionmaker() as session, session.begin():
        terminated = await session.scalar(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": "test-leader-a"},
        )
    assert terminated == 1

    deadline = time.monotonic() + 5
    while not await b.acquire():
        assert time.monotonic() < deadline, "the lock of the dropped session was not freed"
        await asyncio.sleep(0.05)
    assert not await a.confirm()
    assert not a.held
