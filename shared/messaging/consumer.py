"""The batch consumer runtime every entity consumer runs on.

Guarantees, in order of importance:

- A delivery is acked only after its outcome is durable: the handler made its effects durable before
  returning; a retry or dead letter is re-published and confirmed by the broker before the ack.
- Every delivery ends acked (Ack), delayed and retried (Retry, through the entity's TTL tier queues),
  or in the entity's DLQ with the reason (DeadLetter, exhausted retries, or a body that is not a valid
  envelope). If that re-publish fails, the delivery is requeued; the quorum queue's delivery limit
  stops it looping for ever.
- One bad record never sinks its batch: when the handler raises for several deliveries, it is run again
  on halves of the batch, down to single deliveries, so the good ones complete and only a delivery whose
  own call raises is retried, with the exception named.
- A target outage is not the record's fault: `Retry(outage=True)` (or a handler raising
  `TargetUnavailable`) waits on a schedule of its own spanning hours and spends none of `max_attempts`.
- Recovery is owned here rather than left to aio-pika's RobustConnection, whose consumer restore has
  known gaps: each "session" is one plain connection with its own channels; any loss (connection or
  channel closed, consumer cancelled by the broker) ends the session, and a new one is made with
  backoff (re-declare topology, set qos, consume). A delivery can only be acked on the channel it came
  from, so nothing of an old session is ever acked on a new one: it is redelivered instead.
- Configuration (prefetch = the site's message queue threshold, batch size and window, attempts,
  delays) is polled and applied between batches without a restart. basic.qos only affects consumers
  started after it, so a new prefetch means cancel, qos, consume on the same channel. Messages already
  delivered to the cancelled consumer stay in the buffer and are handled and acked normally: nothing
  is requeued and no delivery count is spent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from prometheus_client import Counter as MetricCounter

from shared.messaging import metrics
from shared.messaging.batching import MicroBatcher
from shared.messaging.connection import connect
from shared.messaging.envelope import Envelope, EnvelopeError
from shared.messaging.publisher import CONFIRM_TIMEOUT_SECONDS, PublishError, send_confirmed
from shared.messaging.topology import RETRY_DELAYS, Topology, delay_ms
from shared.outbound import TargetUnavailable
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

REASON_MAX_CHARS = 1000
_CHANNEL_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError)
# Broker or network trouble raised through a handler: no part of the batch would fare better alone.
_CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    PublishError,
    ConnectionError,
)
OUTAGE_RETRIES_HEADER = "x-outage-retries"
OUTAGE_SINCE_HEADER = "x-outage-since"

HANDLER_ERRORS = MetricCounter(
    "messaging_handler_errors_total",
    "Handler calls that raised (the batch is then handled in halves, or retried whole on connection errors)",
    ["entity", "queue"],
)


@dataclass(frozen=True)
class ConsumerConfig:
    prefetch: int
    batch_size: int
    batch_window_ms: int
    max_attempts: int
    retry_delays: tuple[float, ...] = RETRY_DELAYS

    def __post_init__(self) -> None:
        problems = []
        if self.prefetch < 1:
            problems.append(f"prefetch must be at least 1, got {self.prefetch}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if self.batch_window_ms < 0:
            problems.append(f"batch_window_ms must not be negative, got {self.batch_window_ms}")
        if self.max_attempts < 1:
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.retry_delays:
            problems.append("retry_delays must name at least one delay")
        for delay in self.retry_delays:
            try:
                delay_ms(delay)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("invalid consumer configuration: " + "; ".join(problems))

    @property
    def batch_limit(self) -> int:
        """Messages per batch: never above the prefetch, as more could never be in hand at once."""
        return min(self.batch_size, self.prefetch)


@dataclass(frozen=True)
class OutageSchedule:
    """How records wait out a target outage: `delays` between outage retries (the last repeats), and
    how long an outage may last (`max_seconds`, from the first outage retry) before the record is
    dead-lettered. Outage retries leave the envelope's `attempt` alone."""

    delays: tuple[float, ...]
    max_seconds: float

    def __post_init__(self) -> None:
        if not self.delays or self.max_seconds <= 0:
            raise ValueError(f"invalid outage schedule {self}: needs a delay and a positive maximum")
        for delay in self.delays:
            delay_ms(delay)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutageSchedule:
        return cls(tuple(settings.outage_retry_delays), settings.outage_max_hours * 3600)

    def delay(self, retry: int) -> float:
        return self.delays[min(retry, len(self.delays)) - 1]


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the message again after the next delay tier; `payload`, when given, replaces the
    envelope's payload, so a message carrying many parts retries only the parts still to do.
    `outage=True`: the target system is down, not the record wrong; the outage schedule applies
    and the record's attempts are not spent."""

    reason: str
    payload: dict[str, Any] | None = None
    outage: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str


Outcome = Ack | Retry | DeadLetter


@dataclass(frozen=True, slots=True)
class Delivery:
    envelope: Envelope
    raw: AbstractIncomingMessage

    @property
    def message_id(self) -> str:
        return self.envelope.message_id

    @property
    def redelivered(self) -> bool:
        return bool(self.raw.redelivered)

    @property
    def attempt(self) -> int:
        return self.envelope.attempt


Handler = Callable[[list[Delivery]], Awaitable[list[Outcome]]]
ConfigSource = Callable[[], Awaitable[ConsumerConfig]]


@dataclass(eq=False)
class _Session:
    """One connection's worth of consumption; its deliveries can only be settled on its own channel."""

    batcher: MicroBatcher[AbstractIncomingMessage] = field(default_factory=MicroBatcher)
    lost: str | None = None
    consuming: bool = False
    # Multiple-ack is used only while the delivery tags settled so far are exactly 1..acked_upto.
    acked_upto: int = 0
    multiple_ack: bool = True
    consume_channel: AbstractChannel | None = None
    publish_channel: AbstractChannel | None = None
    queue: AbstractQueue | None = None
    tag: str | None = None

    def lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
        self.batcher.interrupt()

    async def deliver(self, message: AbstractIncomingMessage) -> None:
        self.batcher.put(message)

    @property
    def default_exchange(self) -> AbstractExchange:
        assert self.publish_channel is not None
        return self.publish_channel.default_exchange


class BatchConsumer:
    """Consumes one work queue in micro-batches until `stop()`; see the module docstring."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        queue_name: str,
        handler: Handler,
        config_source: ConfigSource,
        *,
        name: str,
        config_poll_seconds: float = 2.0,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
        max_backoff: float = 10.0,
        outage: OutageSchedule | None = None,
    ) -> None:
        """`outage`: the schedule of `Retry(outage=True)`; by default OUTAGE_RETRY_DELAYS / OUTAGE_MAX_HOURS."""
        self.entity, self.kind = topology.parse_queue(queue_name)
        self.topology = topology
        self.queue_name = queue_name
        self.name = name
        self._url = amqp_url
        self._handler = handler
        self._config_source = config_source
        self.config_poll_seconds = config_poll_seconds
        self.confirm_timeout = confirm_timeout
        self.max_backoff = max_backoff
        self.outage = outage or OutageSchedule.from_settings(get_settings())
        self._config: ConsumerConfig | None = None
        self._pending: ConsumerConfig | None = None
        self._session: _Session | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        labels = {"entity": self.entity, "queue": queue_name}
        self._handled = {
            outcome: metrics.MESSAGES_HANDLED.labels(**labels, outcome=outcome)
            for outcome in ("ack", "retry", "outage_retry", "dead_letter", "requeued")
        }
        self._handler_errors = HANDLER_ERRORS.labels(**labels)
        self._batch_size = metrics.BATCH_SIZE.labels(**labels)
        self._handler_seconds = metrics.HANDLER_SECONDS.labels(**labels)
        self._restarts = metrics.CONSUMER_RESTARTS.labels(**labels)

    @property
    def config(self) -> ConsumerConfig | None:
        """The configuration in force (None before `run` fetched the first one)."""
        return self._config

    @property
    def connected(self) -> bool:
        """Consuming right now: a session is open and nothing has ended it (for /healthz)."""
        session = self._session
        return session is not None and session.consuming and session.lost is None

    # Lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()`. Raises only if the first configuration cannot be obtained."""
        if self._running:
            raise RuntimeError(f"consumer {self.name} is already running")
        self._running = True
        self._done.clear()
        try:
            self._config = await self._config_source()
            poller = asyncio.create_task(self._poll_config(), name=f"{self.name}-config")
            try:
                await self._supervise()
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        finally:
            self._running = False
            self._done.set()

    async def stop(self) -> None:
        """Stop taking batches, finish and settle the batch in hand, close; returns when `run` ended.

        Messages prefetched but not yet handed to the handler are released by closing the channel.
        """
        self._stopping = True
        self._stop_requested.set()
        if self._session is not None:
            self._session.batcher.interrupt()
        if self._running:
            await self._done.wait()

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            session = _Session()
            self._session = session
            try:
                await self._consume(session)
            except (*_CHANNEL_ERRORS, TimeoutError) as exc:
                session.lose(f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                # A bug or an unexpected broker answer: a fresh session is the best recovery there is.
                log.exception("%s: unexpected error while consuming %s", self.name, self.queue_name)
                session.lose(f"{type(exc).__name__}: {exc}")
            finally:
                self._session = None
            if self._stopping:
                return
            if session.consuming:
                backoff = 0.5
            log.warning(
                "%s: consumption of %s interrupted (%s); reconnecting in %.1fs",
                self.name,
                self.queue_name,
                session.lost,
                backoff,
            )
            self._restarts.inc()
            try:
                await asyncio.wait_for(self._stop_requested.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff)

    async def _consume(self, session: _Session) -> None:
        connection = await connect(self._url, self.name, robust=False)
        try:
            await self._open(session, connection)
            while session.lost is None:
                config = self._current_config()
                batch = await session.batcher.take(config.batch_limit, config.batch_window_ms / 1000)
                if batch:
                    await self._process(session, batch)
                if self._stopping:
                    return
                if self._pending is not None and session.lost is None:
                    await self._apply_pending(session)
        finally:
            await connection.close()

    async def _open(self, session: _Session, connection: AbstractConnection) -> None:
        config = self._current_config()
        connection.close_callbacks.add(lambda _c, exc: session.lose(f"connection closed ({exc!r})"))
        session.publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        session.consume_channel = await connection.channel(publisher_confirms=False)
        for channel in (session.publish_channel, session.consume_channel):
            channel.close_callbacks.add(lambda _c, exc: session.lose(f"channel closed ({exc!r})"))
        raw = await session.consume_channel.get_underlay_channel()
        raw.on_consumer_cancel_callbacks.add(lambda _frame: session.lose("consumer cancelled by the broker"))
        await self.topology.declare(session.publish_channel)
        await self._declare_tiers(session.publish_channel, config)
        session.queue = await session.consume_channel.get_queue(self.queue_name, ensure=False)
        await session.consume_channel.set_qos(prefetch_count=config.prefetch)
        session.tag = await session.queue.consume(session.deliver)
        session.consuming = True
        log.info(
            "%s: consuming %s (prefetch %d, batch %d / %d ms)",
            self.name,
            self.queue_name,
            config.prefetch,
            config.batch_limit,
            config.batch_window_ms,
        )

    def _current_config(self) -> ConsumerConfig:
        assert self._config is not None, "run() sets the configuration first"
        return self._config

    async def _declare_tiers(self, channel: AbstractChannel, config: ConsumerConfig) -> None:
        """Tiers of the configured and the outage delays that the topology does not declare itself."""
        known = {delay_ms(d) for d in self.topology.retry_delays}
        extra = {delay_ms(d): d for d in (*config.retry_delays, *self.outage.delays) if delay_ms(d) not in known}
        if extra:
            await self.topology.declare_retry_tiers(channel, self.entity, self.kind, extra.values())

    # Configuration -----------------------------------------------------------------------------

    async def _poll_config(self) -> None:
        while True:
            await asyncio.sleep(self.config_poll_seconds)
            try:
                config = await self._config_source()
            except Exception:
                log.warning("%s: configuration source failed; keeping the current one", self.name, exc_info=True)
                continue
            if config != (self._pending or self._config):
                self._pending = config
                if self._session is not None:
                    self._session.batcher.interrupt()

    async def _apply_pending(self, session: _Session) -> None:
        new, self._pending = self._pending, None
        old = self._current_config()
        assert new is not None and session.queue is not None and session.consume_channel is not None
        self._config = new  # set first: if applying fails, the next session starts with it
        if new.retry_delays != old.retry_delays:
            assert session.publish_channel is not None
            await self._declare_tiers(session.publish_channel, new)
        if new.prefetch != old.prefetch and session.tag is not None:
            await session.queue.cancel(session.tag)
            await session.consume_channel.set_qos(prefetch_count=new.prefetch)
            session.tag = await session.queue.consume(session.deliver)
        log.info("%s: configuration applied without restart: %s", self.name, new)

    # Batches -----------------------------------------------------------------------------------

    async def _process(self, session: _Session, messages: list[AbstractIncomingMessage]) -> None:
        self._batch_size.observe(len(messages))
        deliveries: list[Delivery] = []
        invalid: list[tuple[AbstractIncomingMessage, str]] = []
        for message in messages:
            try:
                deliveries.append(Delivery(Envelope.from_bytes(message.body), message))
            except EnvelopeError as exc:
                invalid.append((message, str(exc)))
        outcomes = await self._handle(session, deliveries) if deliveries else []

        config = self._current_config()
        plans: list[tuple[AbstractIncomingMessage, str, tuple[str, aio_pika.Message] | None]] = [
            (delivery.raw, *self._plan(delivery, outcome, config))
            for delivery, outcome in zip(deliveries, outcomes, strict=True)
        ]
        for message, reason in invalid:
            plans.append((message, "dead_letter", self._dead_letter_message(message, reason)))
        await self._settle(session, plans)

    async def _handle(self, session: _Session, deliveries: list[Delivery]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            return await self._isolate(session, deliveries)
        finally:
            self._handler_seconds.observe(time.perf_counter() - started)

    async def _isolate(self, session: _Session, deliveries: list[Delivery]) -> list[Outcome]:
        """The handler's outcomes. If it raises on several deliveries, each half is handled on its own
        (down to single deliveries), so one bad record costs a few calls, not its batch's attempts."""
        try:
            return await self._call_handler(deliveries)
        except Exception as exc:
            self._handler_errors.inc()
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, TargetUnavailable):
                log.warning("%s: %s; the batch of %d waits out the outage", self.name, reason, len(deliveries))
                return [Retry(reason, outage=True)] * len(deliveries)
            if session.lost is not None or isinstance(exc, _CONNECTION_ERRORS):
                log.warning("%s: handler failed (%s); retrying its batch of %d", self.name, reason, len(deliveries))
                return [Retry(reason)] * len(deliveries)
            if len(deliveries) == 1:
                [delivery] = deliveries
                log.error(
                    "%s: handler failed on message %s (key %s)",
                    self.name,
                    delivery.message_id,
                    delivery.envelope.key,
                    exc_info=exc,
                )
                return [Retry(reason)]
            log.warning(
                "%s: handler failed (%s) on %d messages; handling each half apart", self.name, reason, len(deliveries)
            )
            half = len(deliveries) // 2
            return await self._isolate(session, deliveries[:half]) + await self._isolate(session, deliveries[half:])

    async def _call_handler(self, deliveries: list[Delivery]) -> list[Outcome]:
        outcomes = list(await self._handler(deliveries))
        if len(outcomes) != len(deliveries):
            raise TypeError(f"handler returned {len(outcomes)} outcomes for {len(deliveries)} deliveries")
        for outcome in outcomes:
            if not isinstance(outcome, Ack | Retry | DeadLetter):
                raise TypeError(f"handler returned {outcome!r}, not Ack, Retry or DeadLetter")
        return outcomes

    def _plan(
        self, delivery: Delivery, outcome: Outcome, config: ConsumerConfig
    ) -> tuple[str, tuple[str, aio_pika.Message] | None]:
        """(metric outcome, where to re-publish the message first) for one delivery's outcome."""
        if isinstance(outcome, Ack):
            return "ack", None
        if isinstance(outcome, DeadLetter):
            return "dead_letter", self._dead_letter_message(delivery.raw, outcome.reason)
        if outcome.outage:
            return self._outage_plan(delivery, outcome)
        attempt = delivery.attempt + 1
        if attempt >= config.max_attempts:
            reason = f"gave up after {attempt} attempts: {outcome.reason}"
            return "dead_letter", self._dead_letter_message(delivery.raw, reason)
        delay = config.retry_delays[min(attempt, len(config.retry_delays)) - 1]
        headers = {"x-attempt": attempt, "x-reason": outcome.reason[:REASON_MAX_CHARS]}
        return "retry", self._retry_message(delivery, outcome, delay, attempt, headers)

    def _outage_plan(self, delivery: Delivery, retry: Retry) -> tuple[str, tuple[str, aio_pika.Message] | None]:
        """Retry on the outage schedule, counting in headers how long the outage has lasted for this message."""
        now = datetime.now(UTC)
        since = _since(delivery.raw.headers.get(OUTAGE_SINCE_HEADER)) or now
        retries = count if isinstance(count := delivery.raw.headers.get(OUTAGE_RETRIES_HEADER), int) else 0
        waited = (now - since).total_seconds()
        if waited >= self.outage.max_seconds:
            reason = f"gave up after {waited / 3600:.1f} h of target outage ({retries} outage retries): {retry.reason}"
            return "dead_letter", self._dead_letter_message(delivery.raw, reason)
        headers: dict[str, str | int] = {
            "x-reason": retry.reason[:REASON_MAX_CHARS],
            OUTAGE_RETRIES_HEADER: retries + 1,
            OUTAGE_SINCE_HEADER: since.isoformat(),
        }
        delay = self.outage.delay(retries + 1)
        return "outage_retry", self._retry_message(delivery, retry, delay, delivery.attempt, headers)

    def _retry_message(
        self, delivery: Delivery, retry: Retry, delay: float, attempt: int, headers: dict[str, str | int]
    ) -> tuple[str, aio_pika.Message]:
        update: dict[str, Any] = {"attempt": attempt}
        if retry.payload is not None:
            update["payload"] = retry.payload
        body = delivery.envelope.model_copy(update=update).to_bytes()
        # An ordinary retry ends an outage streak: the target answered, the record failed on its own.
        drop = () if retry.outage else (OUTAGE_RETRIES_HEADER, OUTAGE_SINCE_HEADER)
        message = _copy_message(delivery.raw, body, {**headers, "x-original-queue": self.queue_name}, drop)
        return self.topology.retry_queue(self.entity, self.kind, delay), message

    def _dead_letter_message(self, raw: AbstractIncomingMessage, reason: str) -> tuple[str, aio_pika.Message]:
        headers = {"x-reason": reason[:REASON_MAX_CHARS], "x-original-queue": self.queue_name}
        return self.topology.dlq(self.entity), _copy_message(raw, raw.body, headers)

    async def _settle(
        self,
        session: _Session,
        plans: list[tuple[AbstractIncomingMessage, str, tuple[str, aio_pika.Message] | None]],
    ) -> None:
        """Re-publish what must move (confirmed), then ack; requeue what could not be moved."""
        moves = [(message, route) for message, _, route in plans if route is not None]
        results = await asyncio.gather(
            *(
                send_confirmed(session.publish_channel, session.default_exchange, key, copy, self.confirm_timeout)
                for _, (key, copy) in moves
            ),
            return_exceptions=True,
        )
        failed: set[int] = set()
        for (message, (key, _)), result in zip(moves, results, strict=True):
            if isinstance(result, PublishError):
                log.warning("%s: could not move message %s to %s: %s", self.name, message.message_id, key, result)
                failed.add(id(message))
            elif isinstance(result, BaseException):
                raise result

        tags = sorted(message.delivery_tag or 0 for message, _, _ in plans)
        contiguous = tags[0] == session.acked_upto + 1 and tags[-1] - tags[0] == len(tags) - 1
        if session.multiple_ack and not contiguous:
            log.warning("%s: delivery tags not contiguous; acking one by one on this channel", self.name)
            session.multiple_ack = False
        try:
            if session.multiple_ack and not failed:
                last = max(plans, key=lambda plan: plan[0].delivery_tag or 0)[0]
                await last.ack(multiple=True)
            else:
                for message, _, _ in plans:
                    if id(message) in failed:
                        await message.nack(requeue=True)
                    else:
                        await message.ack()
        except _CHANNEL_ERRORS as exc:
            # The channel is gone: the broker redelivers the whole batch to the next session.
            session.lose(f"could not ack ({type(exc).__name__})")
            return
        session.acked_upto = tags[-1]
        counts = Counter("requeued" if id(message) in failed else outcome for message, outcome, _ in plans)
        for outcome, count in counts.items():
            self._handled[outcome].inc(count)


def _since(value: object) -> datetime | None:
    """The start of an outage streak from its header; None when absent or unreadable (it starts now)."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _copy_message(
    raw: AbstractIncomingMessage, body: bytes, extra_headers: dict[str, str | int], drop: Sequence[str] = ()
) -> aio_pika.Message:
    headers = {k: v for k, v in raw.headers.items() if k != "x-delivery-count" and k not in drop}
    headers.update(extra_headers)
    return aio_pika.Message(
        body,
        headers=headers,
        content_type=raw.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=raw.message_id,
        correlation_id=raw.correlation_id,
        type=raw.type,
        app_id=raw.app_id,
        timestamp=raw.timestamp,
    )


class Service(Protocol):
    """What `run_until_signal` runs: a consumer, or a periodic task such as the feed reconciler."""

    name: str

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signal(
    *consumers: Service, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Run consumers until SIGTERM/SIGINT (for service mains), then stop them gracefully.

    Returns when all stopped; re-raises if a consumer's `run` failed (e.g. no configuration at start).
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop_requested.set)
    runs = [asyncio.create_task(consumer.run(), name=consumer.name) for consumer in consumers]
    waiter = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait([waiter, *runs], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        waiter.cancel()
        await asyncio.gather(*(consumer.stop() for consumer in consumers))
        results = await asyncio.gather(*runs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
