"""Per-queue and per-entity figures: depth and consumers over plain AMQP, the management API only as an extra.

Depth (ready messages) and consumer counts come from passive queue declares (`queue.declare-ok` carries
both), so `GET /api/v1/queues`, the console and `/metrics` work on a bare RabbitMQ. When the management
API answers (within `MANAGEMENT_TIMEOUT`), its unacked counts and publish/deliver/ack rates are added;
when it does not, those figures are `None` and the reason is in `management`.

The queues are every work queue, retry tier and DLQ of `shared.messaging.topology`. Retry tiers are
named after their delays, and consumers declare the tiers of their own configuration and of
`OUTAGE_RETRY_DELAYS`, so the candidates are the defaults, the site configuration's `retry_delays` and the
outage delays; a tier that was never declared is simply absent. Figures are cached for `CACHE_SECONDS` so
an auto-refreshing console and a Prometheus scrape do not each open a connection per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiormq.exceptions
import httpx
from prometheus_client import Gauge

from shared.messaging.connection import connect
from shared.messaging.topology import ENTITIES, Topology, kinds_of
from shared.settings import Settings

CACHE_SECONDS = 1.0
MANAGEMENT_TIMEOUT = 2.0
AMQP_TIMEOUT = 5.0

QUEUE_MESSAGES = Gauge(
    "connector_queue_messages_ready",
    "Messages ready in a queue (passive declare over AMQP)",
    ["queue", "entity", "kind"],
)
QUEUE_CONSUMERS = Gauge("connector_queue_consumers", "Consumers of a queue", ["queue", "entity", "kind"])
DLQ_MESSAGES = Gauge("connector_dlq_messages", "Dead letters waiting in an entity's DLQ", ["entity"])


class QueuesUnavailable(Exception):
    """RabbitMQ itself (AMQP) cannot be reached: there are no figures at all."""


@dataclass
class QueueFigure:
    name: str
    entity: str
    kind: str  # records | jobs | writeback | retry | dlq
    work_kind: str | None  # the work queue a retry tier belongs to
    ready: int
    consumers: int
    unacked: int | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None
    ack_rate: float | None = None


@dataclass
class Figures:
    queues: list[QueueFigure]
    management: str  # "ok", or why its extra figures are missing
    taken_at: float

    def entities(self) -> dict[str, dict[str, int | None]]:
        """Per entity: the work queues' ready, unacked and consumers, the retry tiers' and the DLQ's messages."""
        rows: dict[str, dict[str, int | None]] = {}
        for entity in ENTITIES:
            mine = [q for q in self.queues if q.entity == entity]
            work = [q for q in mine if q.kind not in ("retry", "dlq")]
            unacked = [q.unacked for q in work]
            rows[entity] = {
                "ready": sum(q.ready for q in work),
                "unacked": None if any(u is None for u in unacked) else sum(u or 0 for u in unacked),
                "consumers": sum(q.consumers for q in work),
                "retrying": sum(q.ready + (q.unacked or 0) for q in mine if q.kind == "retry"),
                "dead_lettered": sum(q.ready + (q.unacked or 0) for q in mine if q.kind == "dlq"),
            }
        return rows

    def by_kind(self) -> dict[str, dict[str, dict[str, Any]]]:
        """entity → work kind → {ready, unacked, consumers, retrying, queue}, and "dlq" → its figures."""
        out: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in ENTITIES}
        for q in self.queues:
            if q.kind in ("retry", "dlq"):
                continue
            out[q.entity][q.kind] = {**asdict(q), "retrying": 0}
        for q in self.queues:
            if q.kind == "retry" and q.work_kind in out[q.entity]:
                out[q.entity][q.work_kind]["retrying"] += q.ready + (q.unacked or 0)
            elif q.kind == "dlq":
                out[q.entity]["dlq"] = asdict(q)
        return out


def candidate_queues(topology: Topology, retry_delays: Iterable[float]) -> list[tuple[str, str, str, str | None]]:
    """(name, entity, kind, work kind) of every queue that may exist: work queues, retry tiers, DLQs."""
    delays = sorted(set(topology.retry_delays) | set(retry_delays))
    names: list[tuple[str, str, str, str | None]] = []
    for entity in topology.entities:
        for kind in kinds_of(entity):
            names.append((topology.queue(entity, kind), entity, kind, None))
            names.extend((topology.retry_queue(entity, kind, d), entity, "retry", kind) for d in delays)
        names.append((topology.dlq(entity), entity, "dlq", None))
    return names


async def amqp_figures(amqp_url: str, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(ready, consumers) of each queue that exists, by passive declare; a missing queue is left out.

    A passive declare of a missing queue closes its channel (404), so a fresh channel follows each miss."""
    try:
        async with asyncio.timeout(AMQP_TIMEOUT * 2):
            return await _declare_all(amqp_url, names)
    except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
        raise QueuesUnavailable(f"RabbitMQ is not reachable: {type(exc).__name__}") from exc


async def _declare_all(amqp_url: str, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    connection = await connect(amqp_url, "ingress.queues", robust=False, timeout=AMQP_TIMEOUT)
    found: dict[str, tuple[int, int]] = {}
    async with connection:
        channel = await connection.channel()
        raw = await channel.get_underlay_channel()
        for name in names:
            try:
                ok = await raw.queue_declare(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()
                raw = await channel.get_underlay_channel()
                continue
            found[name] = (ok.message_count or 0, ok.consumer_count or 0)
    return found


async def management_figures(settings: Settings) -> tuple[dict[str, dict[str, Any]], str]:
    """Queue rows of the management API by name, and "ok" or why there are none (never raises)."""
    amqp = urlsplit(settings.amqp_url_plain)
    vhost = quote(amqp.path.lstrip("/") or "/", safe="")
    auth = (amqp.username or "guest", amqp.password or "guest")
    url = f"{settings.rabbitmq_management_url.rstrip('/')}/api/queues/{vhost}"
    params = {"columns": "name,messages_unacknowledged,message_stats"}
    try:
        async with httpx.AsyncClient(timeout=MANAGEMENT_TIMEOUT, auth=auth) as client:
            response = await client.get(url, params=params)
            response.raise_for_status()
            rows = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {}, f"unavailable: {type(exc).__name__}"
    return {q["name"]: q for q in rows if isinstance(q, dict) and "name" in q}, "ok"


def _rate(stats: dict[str, Any], key: str) -> float | None:
    details = stats.get(f"{key}_details")
    return float(details["rate"]) if isinstance(details, dict) and "rate" in details else None


async def collect(settings: Settings, topology: Topology, retry_delays: Iterable[float] = ()) -> Figures:
    candidates = candidate_queues(topology, [*retry_delays, *settings.outage_retry_delays])
    (found, (management, state)) = await asyncio.gather(
        amqp_figures(settings.amqp_url_plain, [c[0] for c in candidates]), management_figures(settings)
    )
    queues: list[QueueFigure] = []
    for name, entity, kind, work_kind in candidates:
        if name not in found:
            continue
        ready, consumers = found[name]
        figure = QueueFigure(name, entity, kind, work_kind, ready, consumers)
        if state == "ok":
            row = management.get(name, {})
            stats = row.get("message_stats") or {}
            figure.unacked = int(row.get("messages_unacknowledged") or 0)
            figure.publish_rate = _rate(stats, "publish")
            figure.deliver_rate = _rate(stats, "deliver_get")
            figure.ack_rate = _rate(stats, "ack")
        queues.append(figure)
    figures = Figures(queues, state, time.time())
    export(figures)
    return figures


def export(figures: Figures) -> None:
    """Set the per-queue gauges of `/metrics`."""
    for q in figures.queues:
        if q.kind == "dlq":
            DLQ_MESSAGES.labels(q.entity).set(q.ready + (q.unacked or 0))
        if q.kind != "retry":
            QUEUE_MESSAGES.labels(q.name, q.entity, q.kind).set(q.ready)
            QUEUE_CONSUMERS.labels(q.name, q.entity, q.kind).set(q.consumers)


class QueueFigures:
    """Cached `collect`: one broker round per `CACHE_SECONDS` whoever asks (API, console, /metrics)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._last: Figures | None = None

    async def get(self, settings: Settings, topology: Topology, retry_delays: Iterable[float] = ()) -> Figures:
        async with self._lock:
            if self._last is None or time.time() - self._last.taken_at >= CACHE_SECONDS:
                self._last = await collect(settings, topology, retry_delays)
            return self._last


async def figures_of(app_state: Any, settings: Settings, topology: Topology, retry_delays: Iterable[float]) -> Figures:
    cache = getattr(app_state, "queue_figures", None)
    if cache is None:
        cache = app_state.queue_figures = QueueFigures()
    return await cache.get(settings, topology, retry_delays)
