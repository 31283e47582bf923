"""Confirmed, mandatory, bounded publishing.

A publish returns only after the broker confirmed it; anything else (returned as unroutable, nacked,
no confirm in time, connection down) raises `PublishError`, so callers such as the webhook ingress
can answer 503 and let the sender retry instead of losing the message. The timeout matters: on a
dropped RobustConnection aio-pika waits for the reconnect before sending (aio-pika #636).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import aio_pika
import aiormq.exceptions
from aio_pika import RobustConnection
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from shared.messaging.connection import connect
from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 5.0


class PublishError(Exception):
    """The broker did not take responsibility for the message; it may or may not have it."""


class Unroutable(PublishError):
    """The broker returned a mandatory message: no queue is bound for its routing key."""


async def send_confirmed(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    routing_key: str,
    message: aio_pika.Message,
    timeout: float,
) -> None:
    """Publish on a confirm channel opened with `on_return_raises=True`; map every failure to PublishError."""
    try:
        async with asyncio.timeout(timeout):
            await exchange.publish(message, routing_key, mandatory=True)
    except aiormq.exceptions.PublishError as exc:
        raise Unroutable(
            f"no queue bound for routing key {routing_key!r} on exchange {exchange.name or '(default)'!r}"
        ) from exc
    except aiormq.exceptions.DeliveryError as exc:
        raise PublishError(f"broker refused {routing_key!r} (nack; is the queue full?)") from exc
    except TimeoutError as exc:
        raise PublishError(f"broker did not confirm {routing_key!r} within {timeout:g}s") from exc
    except (aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError) as exc:
        state = "closed" if channel.is_closed else "open"
        raise PublishError(f"broker unavailable ({type(exc).__name__}, channel {state})") from exc


def envelope_message(envelope: Envelope, app_id: str) -> aio_pika.Message:
    headers: dict[str, str | int] = {
        "x-envelope-version": envelope.version,
        "x-source": envelope.source,
        "x-attempt": envelope.attempt,
    }
    if envelope.key is not None:
        headers["x-key"] = envelope.key
    return aio_pika.Message(
        envelope.to_bytes(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=envelope.message_id,
        correlation_id=envelope.correlation_id,
        type=Topology.routing_key(envelope.entity, envelope.kind, envelope.op),
        timestamp=datetime.now(UTC),
        app_id=app_id,
        headers=headers,
    )


class Publisher:
    """Publishes envelopes to the events exchange; safe to share between many asyncio tasks.

    One confirm channel carries all publishes: aiormq matches confirms by delivery tag, so
    concurrent publishes pipeline instead of waiting for each other.
    """

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        *,
        name: str = "publisher",
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
        declare: bool = True,
    ) -> None:
        self._url = amqp_url
        self.topology = topology
        self.name = name
        self.confirm_timeout = confirm_timeout
        self._declare = declare
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self.on_reconnect: list[Callable[[], None]] = []  # called once the robust connection is restored

    async def start(self) -> None:
        """Connect, and declare the topology unless told not to. Raises PublishError if the broker is down.

        Does nothing when already started, so callers may simply retry it until it succeeds.
        """
        if self._connection is not None:
            return
        try:
            self._connection = await connect(self._url, self.name, robust=True)
            if isinstance(self._connection, RobustConnection):
                self._connection.reconnect_callbacks.add(self._reconnected)
            self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            if self._declare:
                await self.topology.declare(self._channel)
            self._exchange = await self._channel.get_exchange(self.topology.events_exchange, ensure=False)
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
            await self.close()
            raise PublishError(f"publisher could not start: {type(exc).__name__}: {exc}") from exc

    def _reconnected(self, *_: object) -> None:
        log.info("%s: connection to the broker restored", self.name)
        for callback in self.on_reconnect:
            callback()

    async def close(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None:
            await connection.close()

    @property
    def is_connected(self) -> bool:
        """Started and the channel open (a robust connection may be reconnecting meanwhile)."""
        return self._channel is not None and not self._channel.is_closed

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def publish(self, envelope: Envelope) -> None:
        if self._channel is None or self._exchange is None:
            raise PublishError("publisher is not started")
        routing_key = self.topology.routing_key(envelope.entity, envelope.kind, envelope.op)
        message = envelope_message(envelope, self.name)
        await send_confirmed(self._channel, self._exchange, routing_key, message, self.confirm_timeout)

    async def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        """Publish all concurrently; raise PublishError if any was not confirmed.

        Some may have been confirmed when it raises: retrying the whole lot is safe because
        consumers are idempotent (delivery is at-least-once anyway).
        """
        envelopes = list(envelopes)
        results = await asyncio.gather(*(self.publish(e) for e in envelopes), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, PublishError):
                raise failure
        if failures:
            error_class = Unroutable if all(isinstance(f, Unroutable) for f in failures) else PublishError
            raise error_class(f"{len(failures)} of {len(envelopes)} messages not confirmed: {failures[0]}") from (
                failures[0]
            )
