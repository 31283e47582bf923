"""read_ahead: the next item is fetched while the current one is in hand, in order, and nothing leaks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.asynciter import read_ahead


class Source:
    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.started: list[int] = []
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                self.started.append(i)
                await asyncio.sleep(0.01)
                if i == self.fail_at:
                    raise ValueError(f"page {i} unreadable")
                yield i
        finally:
            self.closed = True


async def test_items_come_in_order_and_the_next_is_fetched_meanwhile() -> None:
    source = Source(4)
    seen: list[tuple[int, list[int]]] = []
    async for item in read_ahead(source.items()):
        await asyncio.sleep(0.05)  # while this item is worked on, the next one is read
        seen.append((item, list(source.started)))
    assert [item for item, _ in seen] == [0, 1, 2, 3]
    assert seen[0][1] == [0, 1]  # item 1 was fetched while item 0 was in hand, not later
    assert seen[2][1] == [0, 1, 2, 3]


async def test_a_source_error_reaches_the_reader_after_the_items_before_it() -> None:
    source = Source(5, fail_at=2)
    got: list[int] = []
    with pytest.raises(ValueError, match="page 2 unreadable"):
        async for item in read_ahead(source.items()):
            got.append(item)
    assert got == [0, 1]
    assert source.closed


async def test_stopping_early_cancels_the_fetch_in_flight_and_closes_the_source() -> None:
    source = Source(10)
    async for item in (reader := read_ahead(source.items())):
        if item == 1:
            break
    await reader.aclose()
    assert source.closed
    assert max(source.started) <= 2  # at most one item past the last one used was started
