"""The site configuration: run-time knobs kept in the database, validated here.

Consumers re-read it every few seconds, so a changed message queue threshold or batch limit
applies without a restart.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import SiteConfig
from shared.messaging.consumer import ConsumerConfig
from shared.messaging.topology import ENTITIES

DEFAULT_QUERY_MAP: dict[str, str] = {
    "RithumProducts": "product",
    "RithumCategories": "category",
    "RithumAvailability": "inventory",
    "RithumCustomers": "customer",
    "RithumShipments": "shipment",
    "RithumOrderStatus": "order_status",
}


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    acumatica_per_minute: int = Field(600, ge=1)
    acumatica_concurrency: int = Field(4, ge=1, le=64)
    rithum_per_minute: int = Field(2000, ge=1)
    rithum_concurrency: int = Field(5, ge=1, le=64)


class SiteConfigModel(BaseModel):
    """What `GET/PUT /api/v1/config` shows and accepts."""

    model_config = ConfigDict(extra="forbid")
    message_queue_threshold: int = Field(100, ge=1, le=10_000, description="Prefetch of every consumer")
    batch_size: int = Field(100, ge=1, le=1_000, description="Records per handler batch / $batch / transaction")
    batch_window_ms: int = Field(200, ge=0, le=60_000, description="Longest wait to fill a batch")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts before a record is Aborted")
    retry_delays: list[float] = Field([5, 30, 300], min_length=1, max_length=10)
    feed_threshold: int = Field(500, ge=1, description="Records at or above which a batch goes as an FTP feed")
    query_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_QUERY_MAP))
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    options: dict[str, Any] = Field(default_factory=dict, description="Entity-specific options")

    @field_validator("query_map")
    @classmethod
    def _known_entities(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = {q: e for q, e in value.items() if e not in ENTITIES}
        if unknown:
            raise ValueError(f"unknown entities {unknown}; expected one of {list(ENTITIES)}")
        return value

    @field_validator("retry_delays")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(d <= 0 for d in value):
            raise ValueError("retry delays must be positive seconds")
        return value

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            prefetch=self.message_queue_threshold,
            batch_size=self.batch_size,
            batch_window_ms=self.batch_window_ms,
            max_attempts=self.max_attempts,
            retry_delays=tuple(self.retry_delays),
        )


def _from_row(row: SiteConfig) -> SiteConfigModel:
    return SiteConfigModel(
        message_queue_threshold=row.message_queue_threshold,
        batch_size=row.batch_size,
        batch_window_ms=row.batch_window_ms,
        max_attempts=row.max_attempts,
        retry_delays=row.retry_delays.get("seconds", [5, 30, 300]),
        feed_threshold=row.feed_threshold,
        query_map=row.query_map or dict(DEFAULT_QUERY_MAP),
        rate_limits=RateLimits(**(row.rate_limits or {})),
        options=row.options or {},
    )


def _columns(model: SiteConfigModel) -> dict[str, Any]:
    data = model.model_dump()
    data["retry_delays"] = {"seconds": data["retry_delays"]}
    return data


async def load(session: AsyncSession) -> SiteConfigModel:
    row = await session.get(SiteConfig, 1)
    if row is None:
        return SiteConfigModel()
    return _from_row(row)


async def save(session: AsyncSession, model: SiteConfigModel) -> SiteConfigModel:
    values = _columns(model)
    stmt = insert(SiteConfig).values(id=1, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[SiteConfig.id], set_=values))
    return model


async def update(session: AsyncSession, changes: dict[str, Any]) -> SiteConfigModel:
    """Merge a partial change into the stored configuration, validating the result as a whole."""
    await session.execute(select(SiteConfig).where(SiteConfig.id == 1).with_for_update())
    current = await load(session)
    merged = current.model_dump()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "query_map":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return await save(session, SiteConfigModel.model_validate(merged))


class SiteConfigCache:
    """Reads the configuration at most once per `ttl` seconds; consumers poll it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._value: SiteConfigModel | None = None
        self._at = 0.0

    async def get(self) -> SiteConfigModel:
        if self._value is None or time.monotonic() - self._at >= self._ttl:
            async with self._sessionmaker() as session:
                self._value = await load(session)
            self._at = time.monotonic()
        return self._value

    async def consumer_config(self) -> ConsumerConfig:
        return (await self.get()).consumer_config()
