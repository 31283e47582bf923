"""MicroBatcher without a broker: batches close on size or on the window, and can be interrupted."""

from __future__ import annotations

import asyncio
import time

from shared.messaging.batching import MicroBatcher


async def test_a_full_batch_is_handed_out_without_waiting_for_the_window() -> None:
    batcher: MicroBatcher[int] = MicroBatcher()
    for i in range(7):
        batcher.put(i)
    started = time.monotonic()
    assert await batcher.take(3, window=10) == [0, 1, 2]
    assert await batcher.take(3, window=10) == [3, 4, 5]
    assert time.monotonic() - started < 1
    assert len(batcher) == 1


async def test_a_partial_batch_waits_for_the_window_of_its_oldest_item() -> None:
    batcher: MicroBatcher[str] = MicroBatcher()
    batcher.put("a")
    asyncio.get_running_loop().call_later(0.1, batcher.put, "b")
    asyncio.get_running_loop().call_later(0.6, batcher.put, "c")
    started = time.monotonic()
    assert await batcher.take(10, window=0.3) == ["a", "b"]
    assert 0.3 <= time.monotonic() - started < 0.55
    assert await batcher.take(10, window=0.3) == ["c"]


async def test_waiting_for_the_first_item_then_filling_up() -> None:
    batcher: MicroBatcher[int] = MicroBatcher()
    loop = asyncio.get_running_loop()
    for i in range(3):
        loop.call_later(0.05 * (i + 1), batcher.put, i)
    assert await batcher.take(3, window=5) == [0, 1, 2]


async def test_interrupt_returns_an_empty_batch_once() -> None:
    batcher: MicroBatcher[int] = MicroBatcher()
    asyncio.get_running_loop().call_later(0.05, batcher.interrupt)
    assert await batcher.take(5, window=5) == []
    batcher.put(1)
    assert await batcher.take(5, window=0) == [1]
