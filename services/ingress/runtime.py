"""What the ingress process holds while it runs: database, publisher, outbox relay, Acumatica client."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.acumatica.client import AcumaticaClient
from shared.db.requestlog_sink import DatabaseSink
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay
from shared.requestlog import RequestLog
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
    request_log: RequestLog | None = None
    _acumatica: AcumaticaClient | None = field(default=None, repr=False)

    async def acumatica(self) -> AcumaticaClient:
        """The Acumatica client, made on first use: an ingress that never lists live records signs in to
        nothing, so it does not hold one of the license's API-user sessions. Its calls go to the request
        log like every other outbound call (the consumers purge old entries, so no retention here)."""
        if self._acumatica is None:
            request_log = self.request_log or RequestLog(
                DatabaseSink(self.sessionmaker),
                secrets=self.settings.secret_values(),
                excerpt_chars=self.settings.request_log_excerpt_chars,
            )
            self.request_log = request_log
            self._acumatica = AcumaticaClient(self.settings, request_log=request_log)  # set before any await
            await request_log.start()
        return self._acumatica

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.publisher.close()
        if self._acumatica is not None:
            await self._acumatica.aclose()  # signs out: the session would otherwise hold an API user
        if self.request_log is not None:
            await self.request_log.close()  # final flush, before the engine goes
        await self.engine.dispose()
