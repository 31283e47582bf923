"""Two real scheduler processes on one database and broker: each due run becomes one job and one message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scheduler.leader import LOCK_KEY
from shared.db.models import Schedule, SyncJob
from shared.messaging.envelope import Envelope
from shared.settings import Settings
from tests.scheduler.helpers import add_schedule, empty_jobs_queue, get_schedule, jobs_of, staged_envelopes
from tests.support.broker import drain
from tests.support.processes import free_port, service, stop

Sessions = async_sessionmaker[AsyncSession]

LEADER = text(
    """
    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = :key
    """
)


async def leader_pid(sessionmaker: Sessions) -> int | None:
    """Process id of the scheduler holding the lock, from its connection name `scheduler@host:pid`."""
    async with sessionmaker() as session:
        name = await session.scalar(LEADER, {"key": LOCK_KEY})
    return int(name.rsplit(":", 1)[1]) if name else None


async def wait_for_jobs(sessionmaker: Sessions, schedule_id: int, count: int, timeout: float = 15) -> list[SyncJob]:
    deadline = time.monotonic() + timeout
    while len(jobs := await jobs_of(sessionmaker, schedule_id)) < count:
        assert time.monotonic() < deadline, f"schedule {schedule_id} has {len(jobs)} jobs, expected {count}"
        await asyncio.sleep(0.1)
    return jobs


async def run_messages(settings: Settings, queue: str) -> list[Envelope]:
    """The run messages that reach a jobs queue: the first one, then any duplicate within 1.5 s."""
    first = await drain(settings.amqp_url_plain, queue, expect=1)
    later = await drain(settings.amqp_url_plain, queue, idle=1.5)
    return [Envelope.from_bytes(m.body) for m in first + later]


async def test_two_schedulers_fire_each_due_run_once_and_fail_over(clean_db: Sessions, settings: Settings) -> None:
    queue = await empty_jobs_queue(settings, "product")
    # A yearly cron: after the due run, no other run falls within the test.
    sid = await add_schedule(clean_db, cron="0 0 1 1 *", next_run_at=datetime.now(UTC) - timedelta(minutes=1))
    env = {
        "DATABASE_URL": settings.database_url_plain,
        "AMQP_PREFIX": settings.amqp_prefix,
        "SCHEDULER_TICK_SECONDS": "0.2",
        "SCHEDULER_STANDBY_SECONDS": "0.5",
    }
    with service(["services.scheduler"], env=env) as one, service(["services.scheduler"], env=env) as two:
        [job] = await wait_for_jobs(clean_db, sid, 1)
        [message] = await run_messages(settings, queue)
        assert (message.source, message.payload) == ("scheduler", {"job_id": job.id, "mode": "delta"})
        schedule = await get_schedule(clean_db, sid)
        assert schedule.last_job_id == job.id
        assert schedule.next_run_at == datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
        assert len(await jobs_of(clean_db, sid)) == 1

        leader_id = await leader_pid(clean_db)
        processes: dict[int | None, subprocess.Popen] = {one.pid: one, two.pid: two}
        assert leader_id in processes
        leader = processes.pop(leader_id)
        [standby] = processes.values()
        assert standby.poll() is None

        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(5)
        async with clean_db() as session, session.begin():
            await session.execute(
                update(Schedule).where(Schedule.id == sid).values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
            )

        jobs = await wait_for_jobs(clean_db, sid, 2)
        [message] = await run_messages(settings, queue)
        assert message.payload["job_id"] == jobs[1].id
        assert len(await jobs_of(clean_db, sid)) == 2
        assert await leader_pid(clean_db) == standby.pid

        stop(standby)
        assert standby.returncode == 0, "SIGTERM should stop the scheduler cleanly"
        deadline = time.monotonic() + 5
        while await leader_pid(clean_db) is not None:
            assert time.monotonic() < deadline, "the stopped scheduler kept the leader lock"
            await asyncio.sleep(0.05)


async def test_schedules_fire_while_the_broker_is_unreachable(clean_db: Sessions, settings: Settings) -> None:
    sid = await add_schedule(clean_db, next_run_at=datetime.now(UTC) - timedelta(minutes=1))
    env = {
        "DATABASE_URL": settings.database_url_plain,
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",  # nothing listens there
        "AMQP_PREFIX": settings.amqp_prefix,
        "SCHEDULER_TICK_SECONDS": "0.2",
    }
    with service(["services.scheduler"], env=env) as scheduler:
        [job] = await wait_for_jobs(clean_db, sid, 1)
        # The run message waits in the outbox for the relay.
        [envelope] = await staged_envelopes(clean_db)
        assert envelope["payload"] == {"job_id": job.id, "mode": "delta"}
        stop(scheduler)
        assert scheduler.returncode == 0
