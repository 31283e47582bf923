"""Failure recovery with real processes and a real broker: a killed consumer, a restarted broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from asyncio.subprocess import Process

import pytest
from aio_pika.abc import AbstractChannel
from prometheus_client import REGISTRY

from shared.messaging.consumer import BatchConsumer, ConsumerConfig, Delivery
from shared.messaging.publisher import Publisher, PublishError
from shared.messaging.topology import Topology
from tests.messaging.helpers import ConfigHolder, Recorder, drain, envelope, eventually, running
from tests.support.processes import ROOT


async def start_consumer_process(amqp_url: str, topology: Topology, batch_size: int, mode: str) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.messaging.consumer_proc", topology.prefix, str(batch_size), mode,
        cwd=ROOT, env={**os.environ, "AMQP_URL": amqp_url}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def first_batch(proc: Process) -> list[str]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    return json.loads(line)["batch"]


async def successor_receives(amqp_url: str, topology: Topology, count: int) -> list[Delivery]:
    """What a fresh in-process consumer gets from the queue (waiting for `count`, then a little more)."""
    recorder = Recorder()
    source = ConfigHolder(ConsumerConfig(prefetch=10, batch_size=10, batch_window_ms=100, max_attempts=3))
    queue = topology.queue("product", "records")
    async with running(BatchConsumer(amqp_url, topology, queue, recorder, source, name="successor")):
        await eventually(lambda: len(recorder.deliveries) >= count, what=f"{count} deliveries")
        await asyncio.sleep(0.3)
    return recorder.deliveries


async def test_batch_of_a_killed_consumer_is_redelivered_to_the_next(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    sent = [envelope(f"k{i}") for i in range(4)]
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many(sent)

    proc = await start_consumer_process(amqp_url, topology, 4, "hang")
    try:
        assert sorted(await first_batch(proc)) == sorted(e.message_id for e in sent)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    received = await successor_receives(amqp_url, topology, 4)
    assert sorted(d.message_id for d in received) == sorted(e.message_id for e in sent)
    assert all(d.redelivered for d in received)
    assert await drain(channel, topology.queue("product", "records")) == []  # the successor acked them


async def test_sigterm_finishes_and_acks_the_batch_in_hand(amqp_url: str, topology: Topology) -> None:
    sent = [envelope(f"k{i}") for i in range(6)]
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many(sent)

    proc = await start_consumer_process(amqp_url, topology, 3, "slow")
    try:
        in_hand = await first_batch(proc)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert len(in_hand) == 3
    # The batch in hand was acked; the prefetched rest went back to the queue, nothing was lost.
    received = await successor_receives(amqp_url, topology, 3)
    assert sorted(d.message_id for d in received) == sorted({e.message_id for e in sent} - set(in_hand))


async def rabbitmqctl(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    if proc.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {stderr.decode()}")


@pytest.mark.timeout(120)
async def test_consumption_and_publishing_resume_after_a_broker_restart(amqp_url: str, topology: Topology) -> None:
    recorder = Recorder()
    queue = topology.queue("product", "records")
    source = ConfigHolder(ConsumerConfig(prefetch=10, batch_size=5, batch_window_ms=50, max_attempts=3))
    consumer = BatchConsumer(amqp_url, topology, queue, recorder, source, name="survivor", max_backoff=1.0)
    labels = {"entity": "product", "queue": queue}
    restarts_before = REGISTRY.get_sample_value("messaging_consumer_restarts_total", labels) or 0

    async with Publisher(amqp_url, topology, confirm_timeout=1.0) as publisher, running(consumer):
        await publisher.publish(envelope("before"))
        await eventually(lambda: recorder.keys == ["before"], what="the first message")
        try:
            await rabbitmqctl("stop_app")
            with pytest.raises(PublishError):  # bounded by the confirm timeout, not hanging
                await publisher.publish(envelope("while-down"))
        finally:
            await rabbitmqctl("start_app")
            await rabbitmqctl("await_startup")

        async def published() -> bool:
            try:
                await publisher.publish_many([envelope("after-1"), envelope("after-2")])
            except PublishError:
                return False
            return True

        await eventually(published, timeout=30, what="the publisher to reconnect")
        await eventually(lambda: {"after-1", "after-2"} <= set(recorder.keys), timeout=30, what="consumption")

    restarts = REGISTRY.get_sample_value("messaging_consumer_restarts_total", labels)
    assert restarts is not None and restarts > restarts_before
