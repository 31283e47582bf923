"""Push notifications: definitions, the documented payload, delivery with retries, resend.

A definition stands for a generic inquiry over one entity (optionally joined with one detail
collection, the only join the ERP recommends). Each committed transaction is turned into one payload
per definition whose rows changed: new rows in `Inserted`, old rows in `Deleted` (an update is in
both), flat values, a new `Id` per transaction and a strictly increasing .NET-ticks `TimeStamp`.
Deliveries run in background workers, up to 5 attempts; what still fails is kept for resending.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.sandbox.workers import stop_workers
from shared.acumatica.values import plain

from .config import Knobs
from .entities import SPECS
from .odata import QueryError, custom_getter, field_getter
from .store import Change

log = logging.getLogger("sandbox.acumatica.push")

MAX_ATTEMPTS = 5
WORKERS = 4
_TICKS_EPOCH = datetime(1, 1, 1, tzinfo=UTC)

Row = dict[str, Any]


class PushDefinition(BaseModel):
    """One push notification (SM302000): a query over an entity, tracked fields, a webhook destination."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="query name sent as `Query`, e.g. RithumProducts")
    entity: str = Field(description="tracked entity, e.g. StockItem")
    fields: list[str] = Field(
        default_factory=list,
        description="columns: entity fields, `Detail/Field` (one detail collection), `AttributeX`, `View.UsrField`",
    )
    track_all: bool = Field(False, description="track every top-level field and attribute instead of `fields`")
    url: str = Field(pattern=r"^https?://", description="webhook destination address")
    header_name: str | None = None
    header_value: str | None = None
    pad_keys: bool = Field(True, description="pad key values with a trailing space, as the ERP sometimes does")
    active: bool = True

    @model_validator(mode="after")
    def _check(self) -> PushDefinition:
        spec = SPECS.get(self.entity)
        if spec is None:
            raise ValueError(f"unknown entity {self.entity!r}; known: {', '.join(sorted(SPECS))}")
        if not self.track_all and not self.fields:
            raise ValueError("give `fields` or set `track_all`")
        details = {f.split("/")[0] for f in self.fields if f.split("/")[0] in spec.details}
        if len(details) > 1:
            raise ValueError(f"a query may join at most one detail collection, got {sorted(details)}")
        try:
            for name in self.fields:
                _column(self.entity, name)
        except QueryError as exc:
            raise ValueError(str(exc)) from exc
        if (self.header_name is None) != (self.header_value is None):
            raise ValueError("give both header_name and header_value, or neither")
        return self


def _column(entity: str, name: str) -> Callable[[dict[str, Any]], Any]:
    spec = SPECS[entity]
    if "." in name:
        return custom_getter(name)
    if name.startswith("Attribute") and len(name) > len("Attribute") and not spec.knows(name):
        return custom_getter(f"Item.{name}")
    head = name.split("/")[0]
    if head in spec.details:
        detail_field = name.split("/")[-1]
        return lambda line: line.get(detail_field)
    return field_getter(spec, name)


def _is_detail(entity: str, name: str) -> bool:
    return "/" in name and name.split("/")[0] in SPECS[entity].details


def rows_of(definition: PushDefinition, record: dict[str, Any] | None) -> list[Row]:
    """The query's result rows for one record (one per detail line when a detail is joined)."""
    if record is None:
        return []
    if definition.track_all:
        row = {k: plain(v) for k, v in record.items() if k not in ("id", "custom") and not isinstance(v, dict | list)}
        for attr in record.get("Attributes") or ():
            row[f"Attribute{attr.get('AttributeID')}"] = attr.get("Value")
        return [row]
    header: Row = {}
    detail_fields: list[str] = []
    for name in definition.fields:
        if _is_detail(definition.entity, name):
            detail_fields.append(name)
        else:
            header[name.split("/")[-1]] = plain(_column(definition.entity, name)(record))
    if not detail_fields:
        return [header]
    lines = record.get(detail_fields[0].split("/")[0]) or [{}]  # a left join keeps a header without lines
    return [
        {**header, **{f.split("/")[-1]: plain(line.get(f.split("/")[-1])) for f in detail_fields}} for line in lines
    ]


@dataclass
class Delivery:
    id: str
    query: str
    url: str
    headers: dict[str, str]
    payload: dict[str, Any]
    attempts: int = 0
    last_error: str | None = None
    failed_at: datetime | None = None
    generation: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "query": self.query,
            "url": self.url,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": plain(self.created_at),
            "failed_at": plain(self.failed_at) if self.failed_at else None,
            "payload": self.payload,
        }


class Push:
    def __init__(self, tenant: str, knobs: Callable[[], Knobs]) -> None:
        self.tenant = tenant
        self._knobs = knobs
        self.definitions: dict[str, PushDefinition] = {}
        self.failed: dict[str, Delivery] = {}
        self.delivered = 0
        self.pending = 0
        self._last_ticks = 0
        self._generation = 0  # bumped by reset(), so retries scheduled before it are dropped
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    # -- producing -----------------------------------------------------------------------------

    def on_changes(self, changes: list[Change]) -> None:
        """Store listener: one payload per definition whose rows changed in this transaction."""
        started = datetime.now(UTC)
        for definition in self.definitions.values():
            if not definition.active:
                continue
            inserted: list[Row] = []
            deleted: list[Row] = []
            for change in changes:
                if change.entity != definition.entity:
                    continue
                new_rows = rows_of(definition, change.new)
                old_rows = rows_of(definition, change.old)
                inserted += [r for r in new_rows if r not in old_rows]
                deleted += [r for r in old_rows if r not in new_rows]
            if inserted or deleted:
                self._enqueue(definition, self._payload(definition, inserted, deleted, started))

    def _payload(
        self, definition: PushDefinition, inserted: list[Row], deleted: list[Row], started: datetime
    ) -> dict[str, Any]:
        keys = set(SPECS[definition.entity].keys) if definition.pad_keys else set()

        def pad(row: Row) -> Row:
            return {k: f"{v} " if k in keys and isinstance(v, str) else v for k, v in row.items()}

        return {
            "Inserted": [pad(r) for r in inserted],
            "Deleted": [pad(r) for r in deleted],
            "Query": definition.query,
            "CompanyId": self.tenant,
            "Id": str(uuid.uuid4()),
            "TimeStamp": self._timestamp(),
            "AdditionalInfo": {"PXPerformanceInfoStartTime": started.strftime("%m/%d/%Y %H:%M:%S")},
        }

    def _timestamp(self) -> int:
        delta = datetime.now(UTC) - _TICKS_EPOCH
        ticks = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
        self._last_ticks = max(ticks, self._last_ticks + 1)
        return self._last_ticks

    def _enqueue(self, definition: PushDefinition, payload: dict[str, Any]) -> None:
        headers = {"Accept": "application/json"}
        if definition.header_name and definition.header_value is not None:
            headers[definition.header_name] = definition.header_value
        delivery = Delivery(
            payload["Id"], definition.query, definition.url, headers, payload, generation=self._generation
        )
        self.pending += 1
        self._queue.put_nowait(delivery)

    # -- delivering ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10.0)
        self._workers = [asyncio.create_task(self._work(), name=f"push-{i}") for i in range(WORKERS)]

    async def stop(self) -> None:
        await stop_workers(self._workers, self._client)

    def resend(self, ids: list[str] | None) -> int:
        chosen = [self.failed.pop(i) for i in (ids if ids is not None else list(self.failed)) if i in self.failed]
        for delivery in chosen:
            delivery.attempts, delivery.failed_at = 0, None
            self.pending += 1
            self._queue.put_nowait(delivery)
        return len(chosen)

    def reset(self) -> None:
        self.definitions.clear()
        self.failed.clear()
        self.delivered = self.pending = 0
        self._generation += 1
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            if delivery.generation != self._generation:
                continue
            try:
                await self._attempt(delivery)
            except Exception:  # a worker must survive anything one delivery does
                log.exception("push delivery %s crashed", delivery.id)
                self.pending -= 1

    async def _attempt(self, delivery: Delivery) -> None:
        assert self._client is not None
        delivery.attempts += 1
        try:
            reply = await self._client.post(delivery.url, json=delivery.payload, headers=delivery.headers)
            error = None if reply.is_success else f"HTTP {reply.status_code}: {reply.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if delivery.generation != self._generation:
            return
        if error is None:
            self.delivered += 1
            self.pending -= 1
            return
        delivery.last_error = error
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.failed_at = datetime.now(UTC)
            self.failed[delivery.id] = delivery
            self.pending -= 1
            log.warning(
                "push %s to %s failed after %d attempts: %s", delivery.id, delivery.url, delivery.attempts, error
            )
            return
        delay = self._knobs().push_retry_delay_ms / 1000 * 2 ** (delivery.attempts - 1)
        asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, delivery)
