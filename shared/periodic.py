"""A task that runs every few seconds in one process of the deployment at a time.

Replicas of a consumer each run it; a PostgreSQL advisory lock taken per round lets only one of
them work at once, so two reconcilers never confirm the same rows twice. A round that fails (the
database or a target is down) is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("connector.periodic")


class Periodic:
    def __init__(
        self, name: str, tick: Callable[[], Awaitable[None]], interval: float, engine: AsyncEngine, lock_key: int
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.engine = engine
        self.lock_key = lock_key
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.round()
            except Exception:
                log.exception("%s: round failed; trying again in %.0f s", self.name, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def round(self) -> bool:
        """One tick if this process holds the lock; False if another one does."""
        async with self.engine.connect() as conn:
            if not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key}):
                return False
            try:
                await self.tick()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.lock_key})
                await conn.commit()
        return True

    async def stop(self) -> None:
        self._stop.set()
