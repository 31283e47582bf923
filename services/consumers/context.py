"""What a consumer process holds: settings, database, site configuration, API clients, publisher."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.acumatica.client import AcumaticaClient
from shared.db.engine import make_engine, make_sessionmaker
from shared.db.requestlog_sink import DatabaseSink
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.requestlog import RequestLog
from shared.rithum.client import RithumClient
from shared.rithum.ftp import FeedUploader
from shared.settings import Settings
from shared.siteconfig import SiteConfigCache

REQUEUE_CHUNK = 500


@dataclass
class ConsumerContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    config: SiteConfigCache
    topology: Topology
    publisher: Publisher
    request_log: RequestLog
    acumatica: AcumaticaClient
    rithum: RithumClient
    feeds: FeedUploader

    @classmethod
    async def build(cls, settings: Settings, service: str) -> ConsumerContext:
        engine = make_engine(settings.database_url_plain)
        sessionmaker = make_sessionmaker(engine)
        request_log = RequestLog(
            DatabaseSink(sessionmaker),
            secrets=settings.secret_values(),
            excerpt_chars=settings.request_log_excerpt_chars,
            retention=timedelta(days=settings.request_log_retention_days),
        )
        await request_log.start()
        topology = Topology(settings.amqp_prefix)
        publisher = Publisher(settings.amqp_url_plain, topology, name=service)
        await publisher.start()
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            config=SiteConfigCache(sessionmaker),
            topology=topology,
            publisher=publisher,
            request_log=request_log,
            acumatica=AcumaticaClient(settings, request_log=request_log),
            rithum=RithumClient.from_settings(settings, request_log),
            feeds=FeedUploader.from_settings(settings, request_log),
        )

    async def requeue(self, entity: str, keys: list[str], job_id: int | None) -> None:
        """Hand records back to the real-time path, which retries them with its delays and limits."""
        for start in range(0, len(keys), REQUEUE_CHUNK):  # thousands at once would outlast the confirm timeout
            await self.publisher.publish_many(
                Envelope(entity=entity, kind="records", op="retry", key=key, source="job", payload={"job_id": job_id})
                for key in keys[start : start + REQUEUE_CHUNK]
            )

    async def close(self) -> None:
        await self.acumatica.aclose()
        await self.rithum.aclose()
        await self.publisher.close()
        await self.request_log.close()
        await self.engine.dispose()
