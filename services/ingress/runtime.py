"""What the ingress process holds while it runs: database, publisher, outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.siteconfig import SiteConfigCache


class RecentIds:
    """Notification Ids accepted lately; a resend of one of them publishes nothing again."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add(self, key: str) -> None:
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    topology: Topology
    publisher: Publisher
    relay: OutboxRelay
    config: SiteConfigCache
    recent: RecentIds = field(default_factory=RecentIds)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.publisher.close()
        await self.engine.dispose()
