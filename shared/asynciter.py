"""Helpers for async iterators."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def read_ahead(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Yield each item while the next is already being fetched: a batch job reads Acumatica's next page
    while the current one is written to Rithum, instead of one waiting for the other. At most one item
    is fetched ahead, and the source is still advanced by one task at a time."""
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(items))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(items))
            yield item
    finally:
        pending.cancel()  # nothing when it is done already
        with contextlib.suppress(asyncio.CancelledError, Exception):  # its item or error is not wanted now
            await pending
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
