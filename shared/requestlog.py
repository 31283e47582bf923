"""The audit trail of every outbound call (Acumatica, Rithum API, Rithum FTP).

Calls are recorded without awaiting the database: entries go to an in-process buffer that a
background task writes in batches, so logging never adds a round trip to the hot path. The buffer
is bounded; if the database is unreachable for long, the oldest unwritten entries are dropped and
counted (an audit gap is preferable to the connector running out of memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter

from shared.redaction import Redactor

log = logging.getLogger("connector.requestlog")

DROPPED = Counter("connector_request_log_dropped_total", "Request-log entries dropped (buffer full)")

_context: ContextVar[dict[str, Any]] = ContextVar("request_log_context", default={})  # noqa: B039


@contextlib.contextmanager
def log_context(
    *, entity: str | None = None, record_key: str | None = None, job_id: int | None = None
) -> Iterator[None]:
    """Bind entity / record key / job to every call recorded inside the block."""
    values = {k: v for k, v in (("entity", entity), ("record_key", record_key), ("job_id", job_id)) if v}
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


@dataclass(slots=True)
class RequestLogEntry:
    system: str
    method: str
    url: str
    status: int | None
    duration_ms: float
    request_excerpt: str | None = None
    response_excerpt: str | None = None
    error: str | None = None
    entity: str | None = None
    record_key: str | None = None
    job_id: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class RequestLogSink(Protocol):
    async def write(self, entries: Sequence[RequestLogEntry]) -> None: ...

    async def purge(self, older_than: datetime) -> int: ...


class MemorySink:
    """Keeps entries in a list; for tests and tools that inspect what was called."""

    def __init__(self) -> None:
        self.entries: list[RequestLogEntry] = []

    async def write(self, entries: Sequence[RequestLogEntry]) -> None:
        self.entries.extend(entries)

    async def purge(self, older_than: datetime) -> int:
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.created_at >= older_than]
        return before - len(self.entries)


class RequestLog:
    def __init__(
        self,
        sink: RequestLogSink,
        *,
        secrets: Sequence[str] = (),
        excerpt_chars: int = 2000,
        flush_interval: float = 1.0,
        max_buffer: int = 50_000,
        retention: timedelta | None = None,
        purge_interval: float = 3600.0,
    ) -> None:
        self.sink = sink
        self.redactor = Redactor(secrets)
        self.excerpt_chars = excerpt_chars
        self.flush_interval = flush_interval
        self.retention = retention
        self.purge_interval = purge_interval
        self._buffer: deque[RequestLogEntry] = deque(maxlen=max_buffer)
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    @classmethod
    def memory(cls, secrets: Sequence[str] = ()) -> RequestLog:
        return cls(MemorySink(), secrets=secrets)

    @property
    def entries(self) -> list[RequestLogEntry]:
        """Everything recorded so far (memory sink only): written plus still buffered."""
        written = self.sink.entries if isinstance(self.sink, MemorySink) else []
        return [*written, *self._buffer]

    def excerpt(self, value: str | bytes | None) -> str | None:
        """Redact, then cut: cutting first could leave the head of a secret unmasked at the cut.

        Redaction sees twice the excerpt, so a secret that starts inside the excerpt is masked whole
        unless it is longer than the excerpt itself.
        """
        if value is None:
            return None
        window = self.excerpt_chars * 2
        if isinstance(value, bytes):
            value = value[: window * 4].decode("utf-8", errors="replace")
        return (self.redactor.text(value[:window]) or "")[: self.excerpt_chars]

    def record(
        self,
        *,
        system: str,
        method: str,
        url: str,
        status: int | None,
        duration_ms: float,
        request_excerpt: str | bytes | None = None,
        response_excerpt: str | bytes | None = None,
        error: str | None = None,
    ) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            DROPPED.inc()
        ctx = _context.get()
        self._buffer.append(
            RequestLogEntry(
                system=system,
                method=method.upper(),
                url=self.redactor.url(url),
                status=status,
                duration_ms=round(duration_ms, 2),
                request_excerpt=self.excerpt(request_excerpt),
                response_excerpt=self.excerpt(response_excerpt),
                error=self.excerpt(error),
                entity=ctx.get("entity"),
                record_key=ctx.get("record_key"),
                job_id=ctx.get("job_id"),
            )
        )

    async def flush(self) -> int:
        async with self._flush_lock:
            batch = list(self._buffer)
            if not batch:
                return 0
            await self.sink.write(batch)
            for _ in batch:
                self._buffer.popleft()
            return len(batch)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="request-log-flusher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("request log: final flush failed, %d entries lost", len(self._buffer))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                if self.retention is not None and loop.time() >= next_purge:
                    removed = await self.sink.purge(datetime.now(UTC) - self.retention)
                    next_purge = loop.time() + self.purge_interval
                    if removed:
                        log.info("request log: purged %d entries older than %s", removed, self.retention)
            except Exception as exc:  # keep the buffer; the next tick tries again
                log.warning("request log: write failed (%s); %d entries buffered", exc, len(self._buffer))
