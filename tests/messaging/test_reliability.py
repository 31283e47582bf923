"""The runtime against the real broker when records or targets fail: a handler that raises is narrowed down to
the delivery at fault, and target outages wait on a schedule of their own without spending attempts."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from prometheus_client import REGISTRY

from shared.messaging.consumer import Ack, Delivery, OutageSchedule, Outcome, Retry
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.rithum.errors import RithumTargetUnavailable
from tests.messaging.helpers import ConfigHolder, drain, envelope, eventually, running
from tests.messaging.test_consumer import config, consumer


class Raising:
    """A handler that raises for every call holding a key `fails` says is bad, and records its calls."""

    def __init__(self, fails: object) -> None:
        self.fails = fails
        self.calls: list[list[Delivery]] = []
        self.completed: Counter[str] = Counter()

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        self.calls.append(batch)
        bad = [d.envelope.key for d in batch if self.fails(d)]
        if bad:
            raise ValueError(f"price is not a number for {bad[0]}")
        self.completed.update(d.envelope.key or "" for d in batch)
        return [Ack()] * len(batch)


async def dead_letters(channel: AbstractChannel, topology: Topology, count: int) -> list[AbstractIncomingMessage]:
    dead: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        dead.extend(await drain(channel, topology.dlq("product")))
        return len(dead) >= count

    await eventually(arrived, timeout=20, what=f"{count} dead letters")
    return dead


def handled(topology: Topology, outcome: str) -> float:
    labels = {"entity": "product", "queue": topology.queue("product", "records"), "outcome": outcome}
    return REGISTRY.get_sample_value("messaging_messages_handled_total", labels) or 0


async def test_one_poisoned_record_never_sinks_its_batch_of_100(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    handler = Raising(lambda d: d.envelope.key == "poison")
    sent = [envelope(f"k{i:03}") for i in range(99)]
    sent.insert(42, poison := envelope("poison"))
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many(sent)
    source = ConfigHolder(config(prefetch=100, batch_size=100, batch_window_ms=1000, max_attempts=3))
    async with running(consumer(amqp_url, topology, handler, source)):
        [dead] = await dead_letters(channel, topology, 1)

    assert len(handler.calls[0]) == 100  # one batch, narrowed down by halves
    assert handler.completed == Counter(f"k{i:03}" for i in range(99))  # each good record handled once
    assert handled(topology, "ack") == 99 and handled(topology, "dead_letter") == 1
    tries = [d for call in handler.calls for d in call if d.envelope.key == "poison"]
    assert sorted({d.attempt for d in tries}) == [0, 1, 2]
    assert [len(call) for call in handler.calls if call[0].attempt > 0] == [1, 1]  # retried alone
    assert dead.message_id == poison.message_id
    assert dead.headers["x-reason"] == "gave up after 3 attempts: ValueError: price is not a number for poison"
    assert len(handler.calls) <= 2 * 7 + 3  # about two calls per halving, not one per record
    assert await drain(channel, topology.queue("product", "records")) == []


async def test_a_handler_raising_for_everything_dead_letters_each_message_on_its_own(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    handler = Raising(lambda d: True)
    sent = [envelope(f"k{i}") for i in range(6)]
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many(sent)
    source = ConfigHolder(config(prefetch=6, batch_size=6, batch_window_ms=1000, max_attempts=2))
    async with running(consumer(amqp_url, topology, handler, source)):
        dead = await dead_letters(channel, topology, 6)

    assert sorted(m.message_id for m in dead) == sorted(e.message_id for e in sent)
    for message, key in ((m, m.headers["x-key"]) for m in dead):
        assert message.headers["x-reason"] == f"gave up after 2 attempts: ValueError: price is not a number for {key}"
    assert not handler.completed


async def test_outage_retries_follow_their_own_schedule_and_spend_no_attempt(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    """max_attempts is 2, yet the record waits out four outage retries, then recovers; an ordinary retry
    afterwards spends an attempt and ends the outage streak."""
    seen: list[tuple[Delivery, float]] = []

    async def handler(batch: list[Delivery]) -> list[Outcome]:
        seen.extend((d, time.monotonic()) for d in batch)
        if len(seen) <= 4:
            return [Retry("Rithum unavailable: 503", outage=True)] * len(batch)
        return [Retry("price is not a number")] if len(seen) == 5 else [Ack()]

    source = ConfigHolder(config(max_attempts=2))
    outage = OutageSchedule((0.3, 0.6), max_seconds=60)
    async with (
        Publisher(amqp_url, topology) as publisher,
        running(consumer(amqp_url, topology, handler, source, outage)),
    ):
        await publisher.publish(sent := envelope("k"))
        await eventually(lambda: len(seen) == 6, timeout=15, what="six tries")

    deliveries = [d for d, _ in seen]
    assert all(d.message_id == sent.message_id for d in deliveries)
    assert [d.attempt for d in deliveries] == [0, 0, 0, 0, 0, 1]
    assert [d.raw.headers.get("x-outage-retries") for d in deliveries] == [None, 1, 2, 3, 4, None]
    assert deliveries[1].raw.headers["x-reason"] == "Rithum unavailable: 503"
    started = datetime.fromisoformat(deliveries[1].raw.headers["x-outage-since"])
    assert {d.raw.headers["x-outage-since"] for d in deliveries[1:5]} == {started.isoformat()}
    assert abs((datetime.now(UTC) - started).total_seconds()) < 10
    gaps = [later - earlier for (_, earlier), (_, later) in pairwise(seen)]
    assert gaps[0] >= 0.3 and all(gap >= 0.6 for gap in gaps[1:4])  # the last outage delay repeats
    assert handled(topology, "outage_retry") == 4 and handled(topology, "retry") == 1
    assert await drain(channel, topology.dlq("product")) == []


async def test_an_outage_outlasting_its_maximum_ends_in_the_dlq_with_the_reason(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    async def handler(batch: list[Delivery]) -> list[Outcome]:
        return [Retry("Acumatica unavailable", outage=True)] * len(batch)

    outage = OutageSchedule((0.2,), max_seconds=1.0)
    async with running(consumer(amqp_url, topology, handler, ConfigHolder(config(max_attempts=1)), outage)):
        async with Publisher(amqp_url, topology) as publisher:
            await publisher.publish(envelope("k"))
        [dead] = await dead_letters(channel, topology, 1)
    reason = dead.headers["x-reason"]
    assert reason.startswith("gave up after 0.0 h of target outage (") and reason.endswith("): Acumatica unavailable")
    assert dead.headers["x-outage-retries"] >= 3


async def test_a_handler_raising_target_unavailable_waits_out_the_outage_with_its_batch(
    amqp_url: str, topology: Topology
) -> None:
    """An open circuit raised through the handler is nobody's record fault: the whole batch, unsplit,
    goes on the outage schedule."""
    seen: list[list[Delivery]] = []

    async def handler(batch: list[Delivery]) -> list[Outcome]:
        seen.append(batch)
        if len(seen) == 1:
            raise RithumTargetUnavailable("rithum", datetime.now(UTC))
        return [Ack()] * len(batch)

    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many([envelope("a"), envelope("b")])
    source = ConfigHolder(config(batch_window_ms=500, max_attempts=1))
    async with running(consumer(amqp_url, topology, handler, source)):
        await eventually(lambda: sum(map(len, seen)) == 4, what="the batch to come back")

    first, *rest = seen
    assert len(first) == 2
    retried = [d for call in rest for d in call]  # each on the outage schedule: none was handled in parts
    assert sorted(d.envelope.key for d in retried) == ["a", "b"]
    assert {(d.attempt, d.raw.headers["x-outage-retries"]) for d in retried} == {(0, 1)}
    assert {d.raw.headers["x-reason"].split(":")[0] for d in retried} == {"RithumTargetUnavailable"}
