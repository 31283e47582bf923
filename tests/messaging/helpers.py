"""Helpers shared by the messaging tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel

from shared.messaging.consumer import Ack, BatchConsumer, ConsumerConfig, Delivery, Outcome
from shared.messaging.envelope import Envelope


def envelope(key: str, **fields: object) -> Envelope:
    return Envelope(entity="product", kind="records", op="upsert", key=key, source="test", **fields)


class ConfigHolder:
    """A config source whose answer the test changes while the consumer runs."""

    def __init__(self, config: ConsumerConfig) -> None:
        self.value = config

    async def __call__(self) -> ConsumerConfig:
        return self.value


class Recorder:
    """A handler that records every batch and answers through `decide` (Ack by default)."""

    def __init__(self, decide: Callable[[Delivery], Outcome] | None = None) -> None:
        self.batches: list[list[Delivery]] = []
        self.times: list[float] = []
        self._decide = decide

    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        self.batches.append(batch)
        self.times.append(time.monotonic())
        return [self._decide(d) if self._decide else Ack() for d in batch]

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for batch in self.batches for d in batch]

    @property
    def keys(self) -> list[str | None]:
        return [d.envelope.key for d in self.deliveries]


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(consumer: BatchConsumer) -> AsyncIterator[BatchConsumer]:
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        await consumer.stop()
        await task


async def drain(channel: AbstractChannel, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message now ready in a queue, acked."""
    queue = await channel.get_queue(queue_name, ensure=False)
    messages = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        messages.append(message)
    return messages
