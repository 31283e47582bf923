"""Names and declaration of every exchange and queue the connector uses on RabbitMQ 3.10.

Layout for one prefix (e.g. ``connector``):

- ``{prefix}.events``: durable topic exchange; producers publish with the routing key
  ``{entity}.{kind}.{op}``.
- ``{prefix}.{entity}.{kind}`` (kind ``records`` or ``jobs``, and ``writeback`` for entities that write
  a cross-reference back to Acumatica, see `ENTITY_KINDS`): durable quorum work queue bound with
  ``{entity}.{kind}.*``. A message redelivered more than ``x-delivery-limit`` times (a consumer that
  keeps crashing on it) is dead-lettered by the broker to the entity's DLQ, at-least-once.
- ``{prefix}.{entity}.{kind}.retry.{delay}``: one quorum queue per delay tier with ``x-message-ttl``;
  expired messages are dead-lettered back to the work queue through the default exchange (routing key
  = work queue name). Per-queue TTL, not per-message TTL, because RabbitMQ only expires messages at
  the head of a queue. The delay is in the name, so a new delay is a new queue and never conflicts
  with the arguments of an existing one.
- ``{prefix}.{entity}.dlq``: durable quorum queue holding what gave up, for inspection and replay.

The consumer runtime publishes retries and dead letters to those queues through the default exchange
(routing key = queue name), so no extra exchange is needed. `declare` makes the default delay tiers;
each consumer declares the tiers of its own configured and outage delays (60 s to an hour) for its
queue, so the long outage tiers exist only where a consumer runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from aio_pika.abc import AbstractChannel

ENTITIES: tuple[str, ...] = (
    "product",
    "category",
    "inventory",
    "customer",
    "sales_order",
    "shipment",
    "order_status",
)
KINDS: tuple[str, ...] = ("records", "jobs", "writeback")
Kind = Literal["records", "jobs", "writeback"]
ENTITY_KINDS: dict[str, tuple[str, ...]] = {"product": KINDS}
"""Queues per entity: only product writes an ID back (the CA Product ID), so only it has that queue."""


def kinds_of(entity: str) -> tuple[str, ...]:
    return ENTITY_KINDS.get(entity, KINDS[:2])


RETRY_DELAYS: tuple[float, ...] = (5, 30, 300)
"""Default delay tiers in seconds; fractions are allowed (tests use a fraction of a second)."""

DELIVERY_LIMIT = 10


def delay_label(delay: float) -> str:
    """Queue-name suffix of a delay tier: ``5s``, ``300s`` or ``250ms``."""
    ms = delay_ms(delay)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def delay_ms(delay: float) -> int:
    ms = round(delay * 1000)
    if ms < 1:
        raise ValueError(f"retry delay must be at least 1 ms, got {delay!r}")
    return ms


class Topology:
    """Every name under one prefix, plus an idempotent `declare`.

    `entities` narrows the set (tests and benchmarks declare only what they use); services keep
    the default, all of `ENTITIES`.
    """

    def __init__(
        self,
        prefix: str,
        *,
        entities: Iterable[str] = ENTITIES,
        retry_delays: Iterable[float] = RETRY_DELAYS,
        delivery_limit: int = DELIVERY_LIMIT,
    ) -> None:
        if not prefix or any(c in prefix for c in " #*"):
            raise ValueError(f"invalid topology prefix {prefix!r}")
        self.prefix = prefix
        self.entities = tuple(entities)
        unknown = set(self.entities) - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown entities {sorted(unknown)}; expected some of {ENTITIES}")
        self.retry_delays = tuple(retry_delays)
        for delay in self.retry_delays:
            delay_ms(delay)
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.delivery_limit = delivery_limit

    # Names -------------------------------------------------------------------------------------

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    def queue(self, entity: str, kind: str) -> str:
        self._check(entity, kind)
        return f"{self.prefix}.{entity}.{kind}"

    def dlq(self, entity: str) -> str:
        self._check(entity, KINDS[0])
        return f"{self.prefix}.{entity}.dlq"

    def retry_queue(self, entity: str, kind: str, delay: float) -> str:
        return f"{self.queue(entity, kind)}.retry.{delay_label(delay)}"

    @staticmethod
    def routing_key(entity: str, kind: str, op: str) -> str:
        return f"{entity}.{kind}.{op}"

    def parse_queue(self, queue_name: str) -> tuple[str, str]:
        """(entity, kind) of a work queue name; the consumer needs both to find its tiers and DLQ."""
        head, _, rest = queue_name.partition(f"{self.prefix}.")
        entity, _, kind = rest.rpartition(".")
        if head or entity not in self.entities or kind not in kinds_of(entity):
            raise ValueError(f"{queue_name!r} is not a work queue of topology {self.prefix!r}")
        return entity, kind

    def queue_names(self) -> list[str]:
        """Every queue `declare` creates (with the default delay tiers)."""
        names = [self.dlq(e) for e in self.entities]
        for entity in self.entities:
            for kind in kinds_of(entity):
                names.append(self.queue(entity, kind))
                names.extend(self.retry_queue(entity, kind, d) for d in self.retry_delays)
        return names

    def _check(self, entity: str, kind: str) -> None:
        if entity not in self.entities:
            raise ValueError(f"unknown entity {entity!r}; expected one of {self.entities}")
        if kind not in kinds_of(entity):
            raise ValueError(f"unknown kind {kind!r} for {entity}; expected one of {kinds_of(entity)}")

    # Declaration -------------------------------------------------------------------------------

    def _work_arguments(self, entity: str) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dlq(entity),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def _retry_arguments(self, entity: str, kind: str, delay: float) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms(delay),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.queue(entity, kind),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare everything; idempotent, and about one round trip per object when it exists.

        Declares through the underlying aiormq channel: on a robust channel, aio-pika's own
        declare methods would register (and accumulate) objects to re-declare on every reconnect.
        Raises `aio_pika.exceptions.ChannelPreconditionFailed` if a queue exists with other arguments.
        """
        raw = await channel.get_underlay_channel()
        await raw.exchange_declare(self.events_exchange, exchange_type="topic", durable=True)
        for entity in self.entities:
            await raw.queue_declare(self.dlq(entity), durable=True, arguments={"x-queue-type": "quorum"})
            for kind in kinds_of(entity):
                name = self.queue(entity, kind)
                await raw.queue_declare(name, durable=True, arguments=self._work_arguments(entity))
                await raw.queue_bind(name, self.events_exchange, routing_key=f"{entity}.{kind}.*")
                await self.declare_retry_tiers(channel, entity, kind, self.retry_delays)

    async def declare_retry_tiers(
        self, channel: AbstractChannel, entity: str, kind: str, delays: Iterable[float]
    ) -> None:
        """Declare delay tiers beyond the defaults, e.g. when a consumer's configuration changes them."""
        raw = await channel.get_underlay_channel()
        for delay in delays:
            await raw.queue_declare(
                self.retry_queue(entity, kind, delay),
                durable=True,
                arguments=self._retry_arguments(entity, kind, delay),
            )
