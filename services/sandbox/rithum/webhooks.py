"""Posts new orders, as full order JSON, to the configured webhook URL, retrying a few times."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from services.sandbox.workers import stop_workers

from .state import Sandbox

log = logging.getLogger(__name__)
ATTEMPTS = 4
WORKERS = 4


class WebhookSender:
    def __init__(self, sandbox: Sandbox, backoff: float = 0.5) -> None:
        self.sandbox = sandbox
        self.backoff = backoff
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10.0)
        self._workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    async def close(self) -> None:
        await stop_workers(self._workers, self._client)

    def enqueue(self, order: dict[str, Any]) -> None:
        if self.sandbox.config.webhook_url:
            self.sandbox.stats.webhooks["queued"] += 1
            self.queue.put_nowait(order)

    async def _work(self) -> None:
        assert self._client is not None
        while True:
            order = await self.queue.get()
            try:
                await self._deliver(self._client, order)
            finally:
                self.queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, order: dict[str, Any]) -> None:
        stats = self.sandbox.stats.webhooks
        for attempt in range(1, ATTEMPTS + 1):
            url, headers = self.sandbox.config.webhook_url, self.sandbox.config.webhook_headers
            if not url:
                stats["dropped"] += 1
                return
            try:
                response = await client.post(url, json=order, headers=headers)
                if response.is_success:
                    stats["delivered"] += 1
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            stats["failed_attempts"] += 1
            log.warning("webhook for order %s failed (attempt %d): %s", order.get("ID"), attempt, problem)
            if attempt < ATTEMPTS:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        stats["gave_up"] += 1
