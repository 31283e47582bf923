"""Background delivery workers shared by both sandboxes (push notifications, order webhooks)."""

from __future__ import annotations

import asyncio
import contextlib

import httpx


async def stop_workers(workers: list[asyncio.Task[None]], client: httpx.AsyncClient | None) -> None:
    """Cancel every worker and wait for all of them before closing the client they post with.

    Closing first would fail the deliveries still in flight instead of cancelling them.
    """
    for task in workers:
        task.cancel()
    for task in workers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if client is not None:
        await client.aclose()
