"""BatchConsumer against the real broker: micro-batches, outcomes, retries through the delay tiers, DLQ."""

from __future__ import annotations

import asyncio

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel

from shared.messaging.consumer import (
    Ack,
    BatchConsumer,
    ConsumerConfig,
    DeadLetter,
    Delivery,
    Handler,
    OutageSchedule,
    Outcome,
    Retry,
)
from shared.messaging.publisher import Publisher, PublishError
from shared.messaging.topology import Topology
from tests.messaging.helpers import ConfigHolder, Recorder, drain, envelope, eventually, running


def config(**changes: object) -> ConsumerConfig:
    values: dict = dict(prefetch=10, batch_size=5, batch_window_ms=200, max_attempts=3, retry_delays=(0.2, 0.4))
    values.update(changes)
    return ConsumerConfig(**values)


def consumer(
    amqp_url: str,
    topology: Topology,
    handler: Handler,
    source: ConfigHolder,
    outage: OutageSchedule = OutageSchedule((0.2, 0.4), 60),
) -> BatchConsumer:
    return BatchConsumer(
        amqp_url,
        topology,
        topology.queue("product", "records"),
        handler,
        source,
        name="test-consumer",
        config_poll_seconds=0.2,
        outage=outage,
    )


async def test_batches_close_on_size(amqp_url: str, topology: Topology) -> None:
    recorder = Recorder()
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many([envelope(f"k{i}") for i in range(7)])
        async with running(consumer(amqp_url, topology, recorder, ConfigHolder(config(batch_size=3)))):
            await eventually(lambda: len(recorder.deliveries) == 7, what="7 deliveries")
    assert [len(b) for b in recorder.batches] == [3, 3, 1]
    assert recorder.keys == [f"k{i}" for i in range(7)]


async def test_batches_close_on_the_window(amqp_url: str, topology: Topology) -> None:
    recorder = Recorder()
    source = ConfigHolder(config(batch_size=10, batch_window_ms=400))
    async with Publisher(amqp_url, topology) as publisher, running(consumer(amqp_url, topology, recorder, source)):
        await publisher.publish(envelope("a"))
        await asyncio.sleep(0.1)
        await publisher.publish(envelope("b"))
        await eventually(lambda: len(recorder.batches) == 1, what="the first window to close")
        await publisher.publish(envelope("c"))
        await eventually(lambda: len(recorder.batches) == 2, what="the second window to close")
    assert [[d.envelope.key for d in b] for b in recorder.batches] == [["a", "b"], ["c"]]


async def test_poison_message_is_retried_through_the_delay_tiers_then_dead_lettered(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    def decide(delivery: Delivery) -> Outcome:
        return Retry("price is not a number") if delivery.envelope.key == "poison" else Ack()

    recorder = Recorder(decide)
    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, recorder, ConfigHolder(config(retry_delays=(0.2, 0.5))))),
    ):
        poison = envelope("poison")
        await publisher.publish_many([envelope("good"), poison])
        await eventually(lambda: recorder.keys.count("poison") == 3, what="three attempts")
        dead = []

        async def dead_lettered() -> bool:
            dead.extend(await drain(channel, topology.dlq("product")))
            return bool(dead)

        await eventually(dead_lettered, what="the poison message in the DLQ")

    tries = [
        (d, t) for b, t in zip(recorder.batches, recorder.times, strict=True) for d in b if d.envelope.key == "poison"
    ]
    assert [d.attempt for d, _ in tries] == [0, 1, 2]
    assert all(d.message_id == poison.message_id for d, _ in tries)
    assert tries[1][1] - tries[0][1] >= 0.2  # first tier
    assert tries[2][1] - tries[1][1] >= 0.5  # second tier
    assert tries[1][0].raw.headers["x-reason"] == "price is not a number"
    assert recorder.keys.count("good") == 1

    [message] = dead
    assert message.message_id == poison.message_id
    assert message.headers["x-reason"] == "gave up after 3 attempts: price is not a number"
    assert message.headers["x-original-queue"] == topology.queue("product", "records")
    assert await drain(channel, topology.queue("product", "records")) == []


async def test_dead_letter_outcome_and_invalid_bodies_go_to_the_dlq_with_their_reason(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    def decide(delivery: Delivery) -> Outcome:
        return DeadLetter("item class not mapped") if delivery.envelope.key == "unmapped" else Ack()

    recorder = Recorder(decide)
    queue = topology.queue("product", "records")
    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, recorder, ConfigHolder(config()))),
    ):
        await publisher.publish_many([envelope("unmapped"), envelope("ok")])
        garbage = aio_pika.Message(b"{oops", message_id="garbage-1")
        await channel.default_exchange.publish(garbage, routing_key=queue)
        dead: list = []

        async def both_dead() -> bool:
            dead.extend(await drain(channel, topology.dlq("product")))
            return len(dead) == 2

        await eventually(both_dead, what="two dead letters")

    reasons = {m.message_id: m.headers["x-reason"] for m in dead}
    [unmapped] = [d for d in recorder.deliveries if d.envelope.key == "unmapped"]
    assert reasons[unmapped.message_id] == "item class not mapped"
    assert reasons["garbage-1"].startswith("body is not valid JSON")
    assert sorted(recorder.keys) == ["ok", "unmapped"]  # the handler never saw the garbage
    assert all(m.headers["x-original-queue"] == queue for m in dead)


async def test_a_connection_error_in_the_handler_retries_the_whole_batch(amqp_url: str, topology: Topology) -> None:
    """Broker trouble is no record's fault: the batch is retried as it is, not handled in parts."""
    calls = Recorder()
    failures = iter([PublishError("broker did not confirm")])

    async def flaky(batch: list[Delivery]) -> list[Outcome]:
        await calls(batch)
        if (error := next(failures, None)) is not None:
            raise error
        return [Ack()] * len(batch)

    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, flaky, ConfigHolder(config(batch_window_ms=300)))),
    ):
        await publisher.publish_many([envelope("x"), envelope("y")])
        await eventually(lambda: len(calls.deliveries) == 4, what="the batch to come back")

    first, *rest = calls.batches
    assert sorted(d.envelope.key for d in first) == ["x", "y"]
    retried = [d for b in rest for d in b]
    assert sorted(d.envelope.key for d in retried) == ["x", "y"]
    assert {d.attempt for d in retried} == {1}
    assert {d.raw.headers["x-reason"] for d in retried} == {"PublishError: broker did not confirm"}


async def test_a_retry_can_narrow_the_payload_to_what_is_left(amqp_url: str, topology: Topology) -> None:
    """A message with many parts retries only the parts still to do (e.g. write-backs that failed)."""

    def decide(delivery: Delivery) -> Outcome:
        parts = delivery.envelope.payload["parts"]
        return Retry("b failed", payload={"parts": parts[1:]}) if len(parts) > 1 else Ack()

    recorder = Recorder(decide)
    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, recorder, ConfigHolder(config(retry_delays=(0.2,))))),
    ):
        await publisher.publish_many([envelope("multi", payload={"parts": ["a", "b"]})])
        await eventually(lambda: len(recorder.deliveries) == 2, what="the narrowed retry")

    first, second = recorder.deliveries
    assert first.envelope.payload == {"parts": ["a", "b"]} and first.attempt == 0
    assert second.envelope.payload == {"parts": ["b"]} and second.attempt == 1
    assert second.message_id == first.message_id


async def _consumers_of(management: httpx.AsyncClient, queue: str) -> list[dict]:
    consumers = (await management.get("/api/consumers/%2F")).json()
    return [c for c in consumers if c["queue"]["name"] == queue]


async def test_threshold_change_applies_new_prefetch_and_batch_size_without_restart(
    amqp_url: str, topology: Topology, management: httpx.AsyncClient
) -> None:
    queue = topology.queue("product", "records")
    source = ConfigHolder(config(prefetch=4, batch_size=2, batch_window_ms=1000))
    recorder = Recorder()
    observed: list[dict] = []

    async def prefetch_is(count: int) -> bool:
        observed[:] = await _consumers_of(management, queue)
        return [c["prefetch_count"] for c in observed] == [count]

    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, recorder, source)) as batch_consumer,
    ):
        await eventually(lambda: prefetch_is(4), timeout=15, what="prefetch 4 in the management API")
        connection_before = observed[0]["channel_details"]["connection_name"]
        await publisher.publish_many([envelope(f"a{i}") for i in range(4)])
        await eventually(lambda: len(recorder.deliveries) == 4, what="4 deliveries")

        source.value = config(prefetch=7, batch_size=5, batch_window_ms=1000)
        await eventually(lambda: batch_consumer.config == source.value, what="the new configuration")
        await eventually(lambda: prefetch_is(7), timeout=15, what="prefetch 7 in the management API")
        await publisher.publish_many([envelope(f"b{i}") for i in range(10)])
        await eventually(lambda: len(recorder.deliveries) == 14, what="14 deliveries")

    assert [len(b) for b in recorder.batches] == [2, 2, 5, 5]
    assert observed[0]["channel_details"]["connection_name"] == connection_before
