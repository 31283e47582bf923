"""The one path every outbound HTTP call takes: rate limit, retries, request log, metrics.

Both external systems publish limits (Rithum: requests/minute per profile and concurrent requests;
Acumatica: the license's requests/minute and concurrency) and both answer 429 with `Retry-After`
when they are exceeded, so the policy lives here once and the clients only add authentication.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from prometheus_client import Counter, Histogram

from shared.redaction import Redactor
from shared.requestlog import RequestLog

log = logging.getLogger("connector.outbound")

CALLS = Counter("connector_outbound_requests_total", "Outbound HTTP calls", ["system", "status"])
RETRIES = Counter("connector_outbound_retries_total", "Outbound HTTP retries", ["system", "reason"])
LATENCY = Histogram("connector_outbound_request_seconds", "Outbound HTTP call duration", ["system"])

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_ts = now if now is not None else datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - now_ts)


def minute_limiter(per_minute: int, burst_seconds: float = 3.0) -> AsyncLimiter:
    """A leaky bucket that never exceeds `per_minute` in any 60 s window.

    A bucket of capacity c draining at r/s admits c + 60r per minute, so the drain rate is lowered
    by the burst allowance to keep the sum at the published limit.
    """
    burst = max(1.0, per_minute * burst_seconds / 60.0)
    drain_per_minute = max(1.0, per_minute - burst)
    return AsyncLimiter(burst, burst * 60.0 / drain_per_minute)


class OutboundHTTP:
    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        request_log: RequestLog | None = None,
        rate_per_minute: int | None = None,
        concurrency: int | None = None,
        max_attempts: int = 5,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        secrets: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.system = system
        self.request_log = request_log
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._limiter = minute_limiter(rate_per_minute) if rate_per_minute else None
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._redactor = request_log.redactor if request_log else Redactor(secrets)
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=dict(headers or {}), transport=transport
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send with the limits and retry policy; returns the last response, raises on transport failure.

        429 is always retried (the server did not process the call). 5xx and timeouts are retried
        only for idempotent calls, since a POST that timed out may have been applied already.
        """
        body_excerpt = _body_excerpt(json, content, data)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send_once(method, url, params, json, content, data, headers, body_excerpt)
            except httpx.TransportError as exc:
                not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                if attempt >= self.max_attempts or not (idempotent or not_sent):
                    raise
                delay = self._backoff(attempt)
                RETRIES.labels(self.system, type(exc).__name__).inc()
                log.warning("%s %s %s failed (%s); retry %d in %.1fs", self.system, method, url, exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            status = response.status_code
            retryable = status == 429 or (status in RETRYABLE_STATUS and idempotent)
            if not retryable or attempt >= self.max_attempts:
                return response
            hinted = retry_after_seconds(response.headers.get("Retry-After"))
            delay = min(hinted, self.max_retry_after) if hinted is not None else self._backoff(attempt)
            RETRIES.labels(self.system, str(status)).inc()
            log.warning("%s %s %s answered %d; retry %d in %.1fs", self.system, method, url, status, attempt, delay)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | str | None,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        body_excerpt: str | None,
    ) -> httpx.Response:
        async with AsyncExitStack() as stack:
            if self._slots is not None:
                await stack.enter_async_context(self._slots)
            if self._limiter is not None:
                await self._limiter.acquire()
            started = time.perf_counter()
            request = self.client.build_request(
                method, url, params=params, json=json, content=content, data=data, headers=headers
            )
            try:
                response = await self.client.send(request)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._record(method, str(request.url), None, started, body_excerpt, None, error)
                raise
            self._record(method, str(request.url), response.status_code, started, body_excerpt, response.text, None)
            return response

    def _record(
        self,
        method: str,
        url: str,
        status: int | None,
        started: float,
        request_excerpt: str | None,
        response_excerpt: str | None,
        error: str | None,
    ) -> None:
        elapsed = time.perf_counter() - started
        CALLS.labels(self.system, str(status or "error")).inc()
        LATENCY.labels(self.system).observe(elapsed)
        if self.request_log is not None:
            self.request_log.record(
                system=self.system,
                method=method,
                url=url,
                status=status,
                duration_ms=elapsed * 1000,
                request_excerpt=request_excerpt,
                response_excerpt=response_excerpt,
                error=error,
            )
        if log.isEnabledFor(logging.DEBUG):  # redacting a URL costs more than the call's own bookkeeping
            log.debug("%s %s %s -> %s in %.0fms", self.system, method, self._redactor.url(url), status, elapsed * 1000)


def _body_excerpt(json: Any, content: bytes | str | None, data: Mapping[str, Any] | None) -> str | None:
    if json is not None:
        return jsonlib.dumps(json, default=str)[:8000]
    if data is not None:
        return "&".join(f"{k}={v}" for k, v in data.items())
    if content is not None:
        return content[:8000].decode("utf-8", "replace") if isinstance(content, bytes) else content[:8000]
    return None
