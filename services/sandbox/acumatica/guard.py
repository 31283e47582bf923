"""What stands in front of the API: request counting, injected faults, and the license limits.

License behaviour follows the License Monitoring Console documentation: every request except
logout enters a queue served by as many "cores" as the concurrent-request limit; at most
`queue_limit` requests may wait (more are declined); once half of the per-minute budget is used,
each request is delayed by remaining-window-time / remaining-requests; an exhausted budget is
declined. Declined requests get 429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from .entities import SPECS
from .errors import ApiError

if TYPE_CHECKING:
    from .state import Sandbox

LICENSE_MESSAGE = "The number of requests has exceeded the limit imposed by the license."
LOGOUT_PATH = "/entity/auth/logout"


class Declined(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(LICENSE_MESSAGE)
        self.retry_after = retry_after


class Cores:
    """A semaphore whose size can change at run time and whose waiting line is bounded."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, queue_limit: int, timeout: float) -> None:
        if self.active < self._limit() and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= queue_limit:
            raise Declined(1)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done():  # granted just as we gave up: hand the core on
                self.release()
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Declined(1) from exc
            raise

    def release(self) -> None:
        self.active -= 1
        self.wake()

    def wake(self) -> None:
        while self._waiters and self.active < self._limit():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


class MinuteBudget:
    """The per-minute request budget of the license, as fixed windows."""

    def __init__(self) -> None:
        self.window_start = 0.0
        self.used = 0

    def admit(self, limit: int, window: float) -> float:
        """Seconds to delay this request; raises Declined when the window's budget is spent."""
        if limit <= 0:
            return 0.0
        now = time.monotonic()
        if now - self.window_start >= window:
            self.window_start, self.used = now, 0
        remaining_time = self.window_start + window - now
        if self.used >= limit:
            raise Declined(max(1, math.ceil(remaining_time)))
        self.used += 1
        if self.used <= limit / 2:
            return 0.0
        return remaining_time / (limit - self.used + 1)


class Stats:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.declined = 0
        self.injected_errors = 0

    def reset(self) -> None:
        self.requests.clear()
        self.declined = 0
        self.injected_errors = 0


def request_label(method: str, path: str) -> str | None:
    """`GET StockItem`, `POST SalesOrder/CancelSalesOrder`, `POST auth/login`...; None outside the API."""
    if path.startswith("/identity/"):
        return f"{method} identity/{path.rsplit('/', 1)[-1]}"
    if path == "/entity" or path == "/entity/":
        return f"{method} entity"
    if not path.startswith("/entity/"):
        return None
    parts = [p for p in path.split("/") if p][1:]
    if parts[:1] == ["auth"]:
        return f"{method} {'/'.join(parts)}"
    if len(parts) < 3:
        return f"{method} {'/'.join(parts)}"
    entity = parts[2]
    spec = SPECS.get(entity)
    if spec is not None and len(parts) > 3 and parts[3] in spec.actions:
        return f"{method} {entity}/{parts[3]}"
    return f"{method} {entity}"


class Guard:
    """ASGI middleware over `/entity` and `/identity`; the admin API passes straight through."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        label = request_label(scope["method"], scope["path"])
        if label is None:
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        sandbox.stats.requests[label] += 1
        if scope["path"] == LOGOUT_PATH:
            await self.app(scope, receive, send)
            return
        knobs = sandbox.knobs
        try:
            if knobs.burst_429 > 0:
                knobs.burst_429 -= 1
                raise Declined(knobs.retry_after)
            delay = sandbox.budget.admit(knobs.requests_per_minute, knobs.window_seconds)
            if delay:
                await asyncio.sleep(delay)
            await sandbox.cores.acquire(knobs.queue_limit, knobs.queue_timeout)
        except Declined as declined:
            sandbox.stats.declined += 1
            response = ApiError(
                429, LICENSE_MESSAGE, "PX.Api.ApiLicenseLimitException", {"Retry-After": str(declined.retry_after)}
            )
            await response.response()(scope, receive, send)
            return
        try:
            if knobs.latency_ms:
                await asyncio.sleep(knobs.latency_ms / 1000)
            if knobs.error_rate and random.random() < knobs.error_rate:
                sandbox.stats.injected_errors += 1
                await ApiError(500, "Injected fault: internal server error.", "System.Exception").response()(
                    scope, receive, send
                )
                return
            await self.app(scope, receive, send)
        finally:
            sandbox.cores.release()
