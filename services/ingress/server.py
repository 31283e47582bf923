"""uvicorn for the ingress, with the limits a public endpoint needs.

uvicorn (0.54) bounds idle keep-alive connections (`timeout_keep_alive`) and the connections plus requests
in progress (`limit_concurrency`, answered with 503 beyond), but has no deadline for a request's headers, no
cap on their size with its default httptools parser (`h11_max_incomplete_event_size` applies to h11 only,
which costs ~80% more CPU per request here), and it keeps reading a body nobody waits for. Half-sent
requests held 900 connections open for over a minute; with `limit_concurrency` alone they would make
every honest request a 503. So the protocol below adds, per connection: the request line and headers must
arrive within `ingress_header_timeout_seconds` (408, then closed) and stay under
`ingress_max_header_bytes` (431, then closed); a request answered before its body arrived (401, 413 …) has
`ingress_body_timeout_seconds` to finish sending it, then the connection is closed. The application itself
bounds how long it waits for a body it reads (services/ingress/guards.py). A reverse proxy in front should
still enforce its own header and body timeouts (see README, "The ingress").
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.settings import Settings


def guarded_protocol(header_timeout: float, max_header_bytes: int, body_timeout: float) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _reading_headers = False

        def _arm(self, seconds: float, status: int | None) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._refuse, status, "request not received in time")

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _refuse(self, status: int | None, reason: str) -> None:
            """Answer `status` (none once a response went out) and close the connection."""
            if self.transport.is_closing():
                return
            if status is not None:
                self.transport.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                    b"connection: close\r\n\r\n%s"
                    % (status, HTTPStatus(status).phrase.encode(), len(reason), reason.encode())
                )
            self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._reading_headers = True
            self._arm(header_timeout, None)  # nothing sent at all: closed without an answer

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._reading_headers and not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._disarm()
                    self._refuse(431, f"request headers larger than {max_header_bytes} bytes")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_headers, self._header_bytes = True, 0
            self._arm(header_timeout, 408)

        def on_headers_complete(self) -> None:
            self._reading_headers = False
            self._disarm()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()  # the rest of a request answered early has arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
                self._arm(body_timeout, None)  # answered before its body arrived: let it finish, within bounds

    return GuardedHttpToolsProtocol


def serve(app: FastAPI, settings: Settings) -> None:
    uvicorn.run(
        app,
        host=settings.ingress_host,
        port=settings.ingress_port,
        http=guarded_protocol(
            settings.ingress_header_timeout_seconds,
            settings.ingress_max_header_bytes,
            settings.ingress_body_timeout_seconds,
        ),
        limit_concurrency=settings.ingress_limit_concurrency,
        timeout_keep_alive=settings.ingress_keep_alive_seconds,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
