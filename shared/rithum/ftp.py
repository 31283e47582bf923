"""Inventory feeds over FTP (aioftp): stream a file of any size, publish it atomically, fetch its result.

The file is written under a temporary name (`<name>.tmp`, which the intake ignores) and renamed
to its final name only once complete, so Rithum never picks up half a file. The result appears as
`/Inventory/Results/<name>.results.txt` (the sandbox's documented place; on the real service the
result is reported in the UI / by e-mail, see docs/rithum.md). Every FTP operation is recorded in
the request log as system `rithum-ftp`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import aioftp

from shared.requestlog import RequestLog
from shared.settings import Settings

from .errors import RithumFeedError
from .feed import FeedResult, parse_results

SYSTEM = "rithum-ftp"
INVENTORY = "/Inventory"
TRANSFORM = "/Inventory/Transform"
RESULTS = "/Inventory/Results"
TEMPORARY_SUFFIX = ".tmp"


@dataclass(frozen=True)
class FtpLocation:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> FtpLocation:
        parts = urlsplit(url)
        if parts.scheme != "ftp" or not parts.hostname:
            raise ValueError("RITHUM_FTP_URL must look like ftp://user:password@host:port")
        return cls(parts.hostname, parts.port or 21, unquote(parts.username or ""), unquote(parts.password or ""))

    def url(self, path: str) -> str:
        """For logs: no password."""
        return f"ftp://{self.user}@{self.host}:{self.port}{path}"


def result_path(name: str) -> str:
    return f"{RESULTS}/{name}.results.txt"


class FeedUploader:
    def __init__(
        self,
        location: FtpLocation,
        request_log: RequestLog | None = None,
        *,
        poll_interval: float = 5.0,
        result_timeout: float = 3900.0,
        socket_timeout: float = 60.0,
    ) -> None:
        self.location = location
        self.request_log = request_log
        self.poll_interval = poll_interval
        self.result_timeout = result_timeout
        self.socket_timeout = socket_timeout

    @classmethod
    def from_settings(cls, settings: Settings, request_log: RequestLog | None = None) -> FeedUploader:
        return cls(FtpLocation.parse(settings.rithum_ftp_url.get_secret_value()), request_log)

    def _connect(self) -> aioftp.Client:
        loc = self.location
        return aioftp.Client.context(loc.host, loc.port, loc.user, loc.password, socket_timeout=self.socket_timeout)

    def _record(
        self, method: str, path: str, status: int | None, started: float, note: str | None, error: str | None = None
    ) -> None:
        if self.request_log is not None:
            self.request_log.record(
                system=SYSTEM,
                method=method,
                url=self.location.url(path),
                status=status,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_excerpt=note,
                error=error,
            )

    async def upload(
        self, name: str, data: AsyncIterable[bytes | str] | Iterable[bytes | str], *, folder: str = INVENTORY
    ) -> str:
        """Stream `data` to `folder/name` atomically; returns the final path. `name` must be new."""
        if "/" in name or name.startswith(".") or name.endswith((TEMPORARY_SUFFIX, ".part")):
            raise ValueError(f"feed file name {name!r} must be a plain, final file name")
        final = str(PurePosixPath(folder) / name)
        temporary = final + TEMPORARY_SUFFIX
        started = time.perf_counter()
        size, operation = 0, "STOR"
        try:
            async with self._connect() as client:
                async with client.upload_stream(temporary) as stream:
                    async for chunk in _chunks(data):
                        await stream.write(chunk)
                        size += len(chunk)
                self._record("STOR", temporary, 226, started, f"{size} bytes")
                started, operation = time.perf_counter(), "RENAME"
                await client.rename(temporary, final)
                self._record("RENAME", final, 250, started, f"from {temporary}")
        except (aioftp.StatusCodeError, OSError, TimeoutError) as exc:
            self._record(operation, temporary, _code(exc), started, f"{size} bytes", f"{type(exc).__name__}: {exc}")
            await self._remove_quietly(temporary)
            raise RithumFeedError(f"uploading feed {final} failed: {exc}") from exc
        return final

    async def _remove_quietly(self, path: str) -> None:
        try:
            async with self._connect() as client:
                if await client.exists(path):
                    await client.remove_file(path)
        except (aioftp.StatusCodeError, OSError, TimeoutError):
            pass  # the upload error already says what went wrong; a stray .tmp file is ignored by the intake

    async def fetch_result(self, name: str, *, timeout: float | None = None) -> FeedResult:
        """Wait for the result file of feed `name` and parse it."""
        path = result_path(name)
        deadline = time.monotonic() + (self.result_timeout if timeout is None else timeout)
        while True:
            started = time.perf_counter()
            try:
                async with self._connect() as client:
                    if await client.exists(path):
                        async with client.download_stream(path) as stream:
                            content = b"".join([block async for block in stream.iter_by_block()])
                        self._record("RETR", path, 226, started, None)
                        break
                self._record("STAT", path, 550, started, "result not there yet")
            except (aioftp.StatusCodeError, OSError, TimeoutError) as exc:
                self._record("STAT", path, _code(exc), started, None, f"{type(exc).__name__}: {exc}")
            if time.monotonic() >= deadline:
                raise RithumFeedError(f"no result for feed {name} at {path} in time")
            await asyncio.sleep(self.poll_interval)
        try:
            return parse_results(content.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RithumFeedError(f"result file {path} is unreadable: {exc}") from exc

    async def publish(
        self, name: str, data: AsyncIterable[bytes | str] | Iterable[bytes | str], *, folder: str = INVENTORY
    ) -> FeedResult:
        await self.upload(name, data, folder=folder)
        return await self.fetch_result(name)


async def _pieces(data: AsyncIterable[bytes | str] | Iterable[bytes | str]) -> AsyncIterator[bytes | str]:
    if isinstance(data, AsyncIterable):
        async for piece in data:
            yield piece
    else:
        for piece in data:
            yield piece


async def _chunks(
    data: AsyncIterable[bytes | str] | Iterable[bytes | str], size: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """Bytes in blocks of about `size`, whatever mix of str/bytes and sync/async the source yields."""
    buffer = bytearray()
    async for piece in _pieces(data):
        buffer += piece.encode("utf-8") if isinstance(piece, str) else piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _code(exc: Exception) -> int | None:
    if isinstance(exc, aioftp.StatusCodeError) and exc.received_codes:
        return int(str(exc.received_codes[-1]))
    return None
