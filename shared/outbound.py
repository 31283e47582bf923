"""The one path every outbound HTTP call takes: rate limit, retries, circuit breaker, request log, metrics.

Both external systems publish limits (Rithum: requests/minute per profile and concurrent requests;
Acumatica: the license's requests/minute and concurrency) and both answer 429 with `Retry-After`
when they are exceeded, so the policy lives here once and the clients only add authentication.
Calls go only to the configured scheme, host and port: the clients' credentials never leave it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from prometheus_client import Counter, Gauge, Histogram

from shared.redaction import Redactor
from shared.requestlog import RequestLog
from shared.settings import Settings

log = logging.getLogger("connector.outbound")

CALLS = Counter("connector_outbound_requests_total", "Outbound HTTP calls", ["system", "status"])
RETRIES = Counter("connector_outbound_retries_total", "Outbound HTTP retries", ["system", "reason"])
LATENCY = Histogram("connector_outbound_request_seconds", "Outbound HTTP call duration", ["system"])
CIRCUIT_OPEN = Gauge(
    "connector_target_circuit_open", "1 while calls to the target fail fast (circuit open or half-open)", ["target"]
)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetUnavailable(Exception):
    """A call refused without being sent, because the target's circuit is open until `until`.

    A mixin: each client raises a subclass that is also its own "unavailable" error (`RithumUnavailable`,
    an `AcumaticaError` with status 503), so existing handling catches it; this base lets generic code
    (the consumer runtime) recognise an outage of any target. Subclasses take `(target, until)`.
    """

    target: str
    until: datetime


def unavailable_message(target: str, until: datetime) -> str:
    return f"circuit open after repeated failures of {target}; next trial after {until:%H:%M:%S} UTC"


class ForeignURLError(ValueError):
    """A URL outside the configured scheme, host and port: the client's credentials must not go there."""


class CircuitBreaker:
    """Fails calls to one target fast while it is down, instead of spending every caller's retries.

    `failures` consecutive failures (transport errors, 5xx answers) within `window` seconds open it for
    `cool_down` seconds; then exactly one trial call goes through (half-open): success closes it, failure
    opens it again for twice as long, up to `max_cool_down`. Calls made during the trial wait for its
    outcome rather than fail, so a batch arriving just as the target recovers goes through. Opening and
    closing are logged once each.
    Hand-written because the libraries at hand (pybreaker, circuitbreaker, aiobreaker) have neither an
    asyncio-native single half-open trial nor a growing cool-down.
    """

    def __init__(
        self,
        target: str,
        error: Callable[[str, datetime], Exception],
        *,
        failures: int = 5,
        window: float = 30.0,
        cool_down: float = 30.0,
        max_cool_down: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.failures = failures
        self.window = window
        self.cool_down = cool_down
        self.max_cool_down = max(max_cool_down, cool_down)
        self._error = error
        self._clock = clock
        self._failed_at: deque[float] = deque(maxlen=failures)
        self._open_until: float | None = None
        self._next_cool_down = cool_down
        self._trial: asyncio.Future[None] | None = None  # done when the half-open trial call ended
        self._gauge = CIRCUIT_OPEN.labels(target)
        self._gauge.set(0)

    @classmethod
    def from_settings(
        cls, target: str, settings: Settings, error: Callable[[str, datetime], Exception]
    ) -> CircuitBreaker:
        return cls(
            target,
            error,
            failures=settings.circuit_failures,
            window=settings.circuit_window_seconds,
            cool_down=settings.circuit_open_seconds,
            max_cool_down=settings.circuit_open_max_seconds,
        )

    @property
    def is_open(self) -> bool:
        """Open or half-open: a call now would be refused."""
        return self._open_until is not None and (self._trial is not None or self._clock() < self._open_until)

    def unavailable(self) -> Exception:
        remaining = max(0.0, (self._open_until or self._clock()) - self._clock())
        return self._error(self.target, datetime.now(UTC) + timedelta(seconds=remaining))

    async def admit(self) -> bool:
        """Before a call: raise while open; True when this call is the half-open trial. A call made while
        the trial is in flight waits for it: it goes ahead once the trial closed the circuit, else raises."""
        while self._open_until is not None:
            if self._trial is not None:
                await asyncio.shield(self._trial)
            elif self._clock() < self._open_until:
                raise self.unavailable()
            else:
                self._trial = asyncio.get_running_loop().create_future()
                return True
        return False

    def record(self, ok: bool, trial: bool) -> None:
        """After a call that got an answer or a transport error; `ok`: the target answered below 500."""
        now = self._clock()
        if trial:
            self._end_trial()
            if ok:
                self._close()
            else:
                self._next_cool_down = min(self._next_cool_down * 2, self.max_cool_down)
                self._open_until = now + self._next_cool_down
        elif self._open_until is None:  # a call sent before the circuit opened no longer counts
            if ok:
                self._failed_at.clear()
            else:
                self._failed_at.append(now)
                if len(self._failed_at) == self.failures and now - self._failed_at[0] <= self.window:
                    self._open(now)

    def release(self, trial: bool) -> None:
        """The trial ended without an answer (cancelled, or a bug): let the next call be the trial."""
        if trial:
            self._end_trial()

    def _end_trial(self) -> None:
        trial, self._trial = self._trial, None
        if trial is not None:
            trial.set_result(None)

    def _open(self, now: float) -> None:
        self._open_until = now + self.cool_down
        self._next_cool_down = self.cool_down
        self._failed_at.clear()
        self._gauge.set(1)
        log.warning(
            "%s: circuit open after %d consecutive failures within %.0fs; calls fail fast for %.0fs, then one trial",
            self.target,
            self.failures,
            self.window,
            self.cool_down,
        )

    def _close(self) -> None:
        self._open_until = None
        self._gauge.set(0)
        log.info("%s: circuit closed: the trial call succeeded", self.target)


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
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.system = system
        self.breaker = breaker
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

    @property
    def origin(self) -> str:
        url = self.client.base_url
        return f"{url.scheme}://{url.netloc.decode('ascii')}"

    def foreign(self, url: str) -> bool:
        """Whether `url` leaves the configured scheme, host and port; a relative URL stays on them."""
        target = httpx.URL(url)
        if target.is_relative_url:
            return False
        return _origin(target) != _origin(self.client.base_url)

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
        While the target's circuit is open, raises the breaker's error instead of sending (also instead
        of a retry once the circuit opened). A URL outside the configured origin raises ForeignURLError.
        """
        if self.foreign(url):
            raise ForeignURLError(f"{self.system}: refusing to send {method} {url}: not on {self.origin}")
        body_excerpt = _body_excerpt(json, content, data)
        attempt = 0
        while True:
            attempt += 1
            trial = await self.breaker.admit() if self.breaker is not None else False
            try:
                response = await self._send_once(method, url, params, json, content, data, headers, body_excerpt)
            except httpx.TransportError as exc:
                self._count(False, trial)
                not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                if attempt >= self.max_attempts or not (idempotent or not_sent):
                    raise
                if self.breaker is not None and self.breaker.is_open:
                    raise self.breaker.unavailable() from exc
                delay = self._backoff(attempt)
                RETRIES.labels(self.system, type(exc).__name__).inc()
                log.warning("%s %s %s failed (%s); retry %d in %.1fs", self.system, method, url, exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if self.breaker is not None:
                    self.breaker.release(trial)
                raise
            status = response.status_code
            self._count(status < 500, trial)
            retryable = status == 429 or (status in RETRYABLE_STATUS and idempotent)
            if not retryable or attempt >= self.max_attempts:
                return response
            if self.breaker is not None and self.breaker.is_open:
                raise self.breaker.unavailable()
            hinted = retry_after_seconds(response.headers.get("Retry-After"))
            delay = min(hinted, self.max_retry_after) if hinted is not None else self._backoff(attempt)
            RETRIES.labels(self.system, str(status)).inc()
            log.warning("%s %s %s answered %d; retry %d in %.1fs", self.system, method, url, status, attempt, delay)
            await asyncio.sleep(delay)

    def _count(self, ok: bool, trial: bool) -> None:
        if self.breaker is not None:
            self.breaker.record(ok, trial)

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


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def _body_excerpt(json: Any, content: bytes | str | None, data: Mapping[str, Any] | None) -> str | None:
    if json is not None:
        return jsonlib.dumps(json, default=str)[:8000]
    if data is not None:
        return "&".join(f"{k}={v}" for k, v in data.items())
    if content is not None:
        return content[:8000].decode("utf-8", "replace") if isinstance(content, bytes) else content[:8000]
    return None
