"""Dead letters: list, replay and discard what an entity's DLQ holds, over plain AMQP.

Nothing here needs the management API. Messages are taken with `basic.get` and held unacked while
the operation runs, so each is seen once; the scan stops after the number of messages the queue held
when it started (a passive declare), so a replayed message that fails again and comes back is not met
twice, and the scan cannot loop. What is not settled is requeued at the end (closing the channel
would requeue it too). A replayed message is acked in the DLQ only after the broker confirmed the copy
on the work exchange, so a crash in between leaves a duplicate, never a loss (consumers are idempotent).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from shared.messaging.connection import connect
from shared.messaging.envelope import Envelope, EnvelopeError
from shared.messaging.publisher import CONFIRM_TIMEOUT_SECONDS, PublishError, envelope_message, send_confirmed
from shared.messaging.topology import ENTITIES, Topology

APP_ID = "ops.dlq"
ALIASES = {"order": "sales_order"}
"""DESIGN.md calls the sales-order entity `order`; its queues are named `sales_order`."""


class DlqError(Exception):
    """The DLQ cannot be read (no such queue, broker unreachable)."""


class NoSuchQueue(DlqError):
    """The DLQ was never declared under this prefix."""


def entity_name(name: str) -> str:
    entity = ALIASES.get(name, name)
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {name!r}; expected one of {', '.join(ENTITIES)}")
    return entity


@dataclass(frozen=True)
class DeadLetterInfo:
    """What an operator needs to decide about one dead letter; `envelope_error` set means not replayable."""

    message_id: str | None
    entity: str
    kind: str | None
    op: str | None
    key: str | None
    attempt: int | None
    reason: str | None
    deaths: int
    first_death_at: datetime | None
    original_queue: str | None
    replays: int
    envelope_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["first_death_at"] = self.first_death_at.isoformat() if self.first_death_at else None
        return data


@dataclass
class Result:
    """Outcome of `replay` or `discard`: what was settled, what stayed in the DLQ and why, ids not found."""

    done: list[DeadLetterInfo] = field(default_factory=list)
    kept: list[tuple[DeadLetterInfo, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.kept and not self.missing


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def describe(message: AbstractIncomingMessage, entity: str) -> DeadLetterInfo:
    """Read the envelope and the dead-letter headers of the consumer (`x-reason`) and the broker (`x-death`)."""
    headers = message.headers or {}
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
    times = [d["time"] for d in deaths if isinstance(d.get("time"), datetime)]
    envelope: Envelope | None = None
    error = None
    try:
        envelope = Envelope.from_bytes(message.body)
    except EnvelopeError as exc:
        error = str(exc)
    return DeadLetterInfo(
        message_id=message.message_id or (envelope.message_id if envelope else None),
        entity=entity,
        kind=envelope.kind if envelope else None,
        op=envelope.op if envelope else None,
        key=envelope.key if envelope else _text(headers.get("x-key")),
        attempt=envelope.attempt if envelope else None,
        reason=_text(headers.get("x-reason") or headers.get("x-first-death-reason")),
        deaths=sum(int(d.get("count") or 1) for d in deaths),
        first_death_at=min(times).astimezone(UTC) if times else None,
        original_queue=_text(headers.get("x-original-queue") or headers.get("x-first-death-queue")),
        replays=int(headers.get("x-replayed") or 0),
        envelope_error=error,
    )


@dataclass
class _Session:
    channel: AbstractChannel
    confirm_channel: AbstractChannel
    exchange: AbstractExchange
    queue_name: str
    count: int


@asynccontextmanager
async def _session(amqp_url: str, topology: Topology, entity: str) -> AsyncIterator[_Session]:
    try:
        connection = await connect(amqp_url, APP_ID, robust=False)
    except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
        raise DlqError(f"RabbitMQ is not reachable: {type(exc).__name__}: {exc}") from exc
    async with connection:
        name = topology.dlq(entity)
        channel = await connection.channel()
        try:
            declared = await (await channel.get_underlay_channel()).queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise NoSuchQueue(f"no queue {name!r}: wrong AMQP_PREFIX, or no consumer ever declared it") from exc
        confirm = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await confirm.get_exchange(topology.events_exchange, ensure=False)
        yield _Session(channel, confirm, exchange, name, declared.message_count or 0)


async def _held(session: _Session, limit: int | None = None) -> AsyncIterator[AbstractIncomingMessage]:
    """Up to `limit` (else the starting count) messages, each once, left unacked for the caller to settle."""
    queue = await session.channel.get_queue(session.queue_name, ensure=False)
    for _ in range(session.count if limit is None else min(limit, session.count)):
        message = await queue.get(no_ack=False, fail=False)
        if message is None:  # someone else holds the rest, or they were removed meanwhile
            return
        yield message


async def _requeue(messages: list[AbstractIncomingMessage]) -> None:
    """Give back what was not settled; if the channel is already gone, the broker has requeued it."""
    try:
        for message in messages:
            await message.nack(requeue=True)
    except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
        pass


async def count(amqp_url: str, topology: Topology, entity: str) -> int | None:
    """Messages ready in the entity's DLQ; None when there is no such queue (the entity never ran here)."""
    try:
        async with _session(amqp_url, topology, entity_name(entity)) as session:
            return session.count
    except NoSuchQueue:
        return None


async def list_dead_letters(
    amqp_url: str, topology: Topology, entity: str, *, limit: int | None = None
) -> tuple[list[DeadLetterInfo], int]:
    """The first `limit` dead letters (all by default) and how many the DLQ holds; removes nothing."""
    entity = entity_name(entity)
    async with _session(amqp_url, topology, entity) as session:
        held = [m async for m in _held(session, limit)]
        try:
            return [describe(m, entity) for m in held], session.count
        finally:
            await _requeue(held)


def replay_message(message: AbstractIncomingMessage, replays: int) -> tuple[str, aio_pika.Message]:
    """(routing key, fresh message) with the attempt count reset; broker and retry headers are not carried.

    The body is the original JSON with only `attempt` set to 0, so fields this build does not know survive.
    Raises EnvelopeError for a body that is not an envelope: replaying it would only dead-letter it again.
    """
    envelope = Envelope.from_bytes(message.body).model_copy(update={"attempt": 0})
    out = envelope_message(envelope, APP_ID)
    body = json.loads(message.body)
    body["attempt"] = 0
    out.body = json.dumps(body, separators=(",", ":")).encode()
    out.headers = {**out.headers, "x-replayed": replays + 1}
    return Topology.routing_key(envelope.entity, envelope.kind, envelope.op), out


def _wanted(info: DeadLetterInfo, ids: Collection[str] | None) -> bool:
    return ids is None or info.message_id in ids


async def replay(
    amqp_url: str,
    topology: Topology,
    entity: str,
    *,
    ids: Collection[str] | None = None,
    confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
) -> Result:
    """Put the selected dead letters (all when `ids` is None) back on the work exchange, confirmed, then ack them."""

    async def put_back(session: _Session, message: AbstractIncomingMessage, info: DeadLetterInfo) -> None:
        routing_key, copy = replay_message(message, info.replays)
        await send_confirmed(session.confirm_channel, session.exchange, routing_key, copy, confirm_timeout)

    return await _settle(amqp_url, topology, entity, ids, put_back)


async def discard(amqp_url: str, topology: Topology, entity: str, *, ids: Collection[str] | None = None) -> Result:
    """Remove the selected dead letters (all when `ids` is None) for good."""

    async def drop(_session: _Session, _message: AbstractIncomingMessage, _info: DeadLetterInfo) -> None:
        """Nothing to do before the ack removes it."""

    return await _settle(amqp_url, topology, entity, ids, drop)


async def _settle(
    amqp_url: str,
    topology: Topology,
    entity: str,
    ids: Collection[str] | None,
    act: Callable[[_Session, AbstractIncomingMessage, DeadLetterInfo], Awaitable[None]],
) -> Result:
    """Ack each selected dead letter once `act` succeeded on it; everything else goes back to the DLQ."""
    entity = entity_name(entity)
    result = Result()
    seen: set[str] = set()
    unsettled: list[AbstractIncomingMessage] = []
    async with _session(amqp_url, topology, entity) as session:
        try:
            async for message in _held(session):
                info = describe(message, entity)
                if not _wanted(info, ids):
                    unsettled.append(message)
                    continue
                seen.add(info.message_id or "")
                try:
                    await act(session, message, info)
                except (EnvelopeError, PublishError) as exc:
                    unsettled.append(message)
                    result.kept.append((info, str(exc)))
                    continue
                await message.ack()
                result.done.append(info)
        finally:
            await _requeue(unsettled)
    result.missing = sorted(set(ids or ()) - seen)
    return result
