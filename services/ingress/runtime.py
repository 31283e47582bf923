"""What the ingress process holds while it runs: database, publisher, outbox relay, Acumatica client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import siteconfig
from shared.acumatica.client import AcumaticaClient
from shared.db.requestlog_sink import DatabaseSink
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay
from shared.requestlog import RequestLog
from shared.settings import Settings

log = logging.getLogger("connector.ingress")
DEFAULT_CONFIG = siteconfig.SiteConfigModel()


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


class LastKnownConfig:
    """The site configuration for the webhook path, which must not fail with the database: it is re-read
    at most every `ttl` seconds by one request at a time (the others go on with the value in hand), and
    when PostgreSQL does not answer within `timeout` the last value read stays in use (the built-in
    defaults if none was ever read), so webhooks are still accepted while the broker is up."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 2.0, timeout: float = 2.0) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._timeout = timeout
        self._value: siteconfig.SiteConfigModel | None = None
        self._due = 0.0
        self._failing = False
        self._lock = asyncio.Lock()

    async def get(self) -> siteconfig.SiteConfigModel:
        # Only a process that never read it waits for a read in progress (not to answer from the defaults).
        if time.monotonic() >= self._due and not (self._lock.locked() and self._value is not None):
            async with self._lock:
                if time.monotonic() >= self._due:
                    await self._read()
        return self._value or DEFAULT_CONFIG

    async def _read(self) -> None:
        try:
            async with asyncio.timeout(self._timeout), self._sessionmaker() as session:
                self._value = await siteconfig.load(session)
        except Exception as exc:
            if not self._failing:
                fallback = "the last one read" if self._value else "the built-in defaults"
                log.warning("site configuration not readable (%s: %s); using %s", type(exc).__name__, exc, fallback)
            self._failing = True
        else:
            if self._failing:
                log.info("site configuration readable again")
            self._failing = False
        self._due = time.monotonic() + self._ttl


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    topology: Topology
    publisher: Publisher
    relay: OutboxRelay
    config: LastKnownConfig
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
