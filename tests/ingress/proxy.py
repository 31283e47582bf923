"""A TCP proxy the test controls, to take PostgreSQL or RabbitMQ away from one process only.

Stopping the machine's PostgreSQL or RabbitMQ would take them from every test and every engineer on it;
pointing the process under test at this proxy and closing it is an outage for that process alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.processes import free_port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `down()` resets every connection and refuses new ones, as a
    stopped server does; `up()` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        host, port = self.target
        return url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._close())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, upstream_writer.transport}
        self._transports |= pair
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True)
        self._transports -= pair

    @classmethod
    @contextmanager
    def running(cls, host: str, port: int) -> Iterator[TcpProxy]:
        proxy = cls(host, port)
        proxy._thread.start()
        proxy.up()
        try:
            yield proxy
        finally:
            proxy.down()
            proxy._loop.call_soon_threadsafe(proxy._loop.stop)
            proxy._thread.join(5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()
