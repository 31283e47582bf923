"""Database and broker helpers of the scheduler tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aio_pika
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import OutboxMessage, Schedule, SyncJob
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge


async def add_schedule(
    sessionmaker: async_sessionmaker[AsyncSession], *, next_run_at: datetime | None, **fields: Any
) -> int:
    """Insert a row directly (bypassing the API), e.g. one already due."""
    values = {"name": "nightly products", "entity": "product", "mode": "delta", "cron": "0 0 1 1 *", "active": True}
    async with sessionmaker() as session, session.begin():
        schedule = Schedule(**{**values, **fields}, next_run_at=next_run_at)
        session.add(schedule)
        await session.flush()
        return schedule.id


async def get_schedule(sessionmaker: async_sessionmaker[AsyncSession], schedule_id: int) -> Schedule:
    async with sessionmaker() as session:
        schedule = await session.get(Schedule, schedule_id)
    assert schedule is not None
    return schedule


async def jobs_of(sessionmaker: async_sessionmaker[AsyncSession], schedule_id: int) -> list[SyncJob]:
    async with sessionmaker() as session:
        query = select(SyncJob).where(SyncJob.schedule_id == schedule_id).order_by(SyncJob.id)
        return list((await session.scalars(query)).all())


async def staged_envelopes(sessionmaker: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        return [row.envelope for row in (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))]


async def empty_jobs_queue(settings: Settings, entity: str) -> str:
    """Declare the entity's queues (as the services do, idempotent) and empty its jobs queue; returns its name."""
    topology = Topology(settings.amqp_prefix, entities=(entity,))
    connection = await aio_pika.connect(settings.amqp_url_plain, timeout=10)
    async with connection:
        await topology.declare(await connection.channel())
    name = topology.queue(entity, "jobs")
    await purge(settings.amqp_url_plain, [name])
    return name
