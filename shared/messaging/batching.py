"""Micro-batching of deliveries: hand out up to N items, or whatever arrived within a window."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """A buffer filled by the delivery callback and drained one batch at a time by the consumer loop.

    The window runs from the arrival of the oldest buffered item, so a message that waited while the
    previous batch was being handled is not delayed again. Adding an item costs an append and a
    comparison; the waiting side is woken only when its batch can be complete.
    """

    def __init__(self) -> None:
        self._items: deque[tuple[float, T]] = deque()
        self._ready = asyncio.Event()
        self._want = 1
        self._interrupted = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        self._items.append((time.monotonic(), item))
        if len(self._items) >= self._want:
            self._ready.set()

    def interrupt(self) -> None:
        """Make the pending (or next) `take` return [] at once, so the caller re-checks its state."""
        self._interrupted = True
        self._ready.set()

    async def take(self, size: int, window: float) -> list[T]:
        """Up to `size` items, once `size` are buffered or `window` seconds after the oldest arrived."""
        items = self._items
        while True:
            if self._interrupted:
                self._interrupted = False
                return []
            timeout: float | None = None
            if items:
                if len(items) >= size:
                    break
                timeout = items[0][0] + window - time.monotonic()
                if timeout <= 0:
                    break
            self._want = size if items else 1
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                pass
        return [items.popleft()[1] for _ in range(min(size, len(items)))]
