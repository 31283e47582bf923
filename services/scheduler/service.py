"""The scheduler's main loop: lead or stand by, fire due schedules, publish their run messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from services.scheduler.leader import LeaderLock
from shared.db.engine import make_engine, make_sessionmaker
from shared.messaging.connection import connection_name
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay, start_publisher
from shared.schedules import fire_due
from shared.settings import Settings

log = logging.getLogger("connector.scheduler")


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as a stop was requested."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine = make_engine(settings.database_url_plain, pool_size=2)
        self._sessionmaker = make_sessionmaker(self._engine)
        self._publisher = Publisher(settings.amqp_url_plain, Topology(settings.amqp_prefix), name="scheduler")
        self._relay = OutboxRelay(self._sessionmaker, self._publisher)
        self._lock = LeaderLock(settings.database_url_plain, name=connection_name("scheduler"))
        self._standing_by = False
        self._database_reached = False

    def health(self) -> dict[str, bool]:
        """For /healthz: the last round reached the database (to lead or stand by), the publisher is connected
        (without it, due runs wait in the outbox)."""
        return {"database": self._database_reached, "broker": self._publisher.is_connected}

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then release the lock so a standby takes over at once.

        Schedules fire even while the broker is unreachable: their run messages wait in the outbox
        until the publisher connects and the relay sends them.
        """
        publishing = asyncio.create_task(start_publisher(self._publisher, self._relay), name="publisher")
        try:
            while not await sleep_unless_stopped(stop, await self._step()):
                pass
        finally:
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing
            await self._lock.release()
            await self._publisher.close()
            await self._engine.dispose()
            log.info("scheduler stopped")

    async def _step(self) -> float:
        """One round; returns the seconds to wait before the next."""
        if not self._lock.held and not await self._try_to_lead():
            return self._settings.scheduler_standby_seconds
        if not await self._lock.confirm():
            self._database_reached = False
            log.warning("no longer the scheduler leader; standing by")
            return self._settings.scheduler_standby_seconds
        try:
            async with self._sessionmaker() as session, session.begin():
                envelopes = await fire_due(session, datetime.now(UTC))
            if envelopes:
                # The relay publishes them now (or once the publisher is up). A direct `relay_once`
                # here could run while the publisher is still declaring the topology at start-up.
                self._relay.wake()
        except Exception:
            log.exception("firing due schedules failed; retrying on the next tick")
        return self._settings.scheduler_tick_seconds

    async def _try_to_lead(self) -> bool:
        try:
            leading = await self._lock.acquire()
        except Exception as exc:
            log.warning("cannot reach the database for leader election (%s: %s)", type(exc).__name__, exc)
            await self._lock.release()
            self._database_reached = False
            return False
        self._database_reached = True
        if leading:
            log.info("this process is now the scheduler leader")
            self._standing_by = False
        elif not self._standing_by:
            log.info("another scheduler leads; standing by")
            self._standing_by = True
        return leading
