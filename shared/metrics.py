"""`/metrics` and `/healthz` on a port of the process's own, for the processes without an HTTP API of
their own (consumers and the scheduler; the ingress serves both itself).

Served by uvicorn inside the process's event loop, from the default Prometheus registry that every
module registers in (messaging, outbound, request log). uvicorn is kept away from the signals: the
process's own handlers (`run_until_signal`) decide when to stop, and then stop this server too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("connector.metrics")

Health = Callable[[], Mapping[str, bool]]
"""Named checks, e.g. each consumer: connected; /healthz answers 503 while any is False."""


def metrics_app(health: Health) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> JSONResponse:
        checks = dict(health())
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class MetricsServer:
    """A `Service` (run/stop) serving /metrics and /healthz. The port is bound on construction, so a port
    already taken stops the process at start (OSError) rather than leaving it without metrics."""

    name = "metrics"

    def __init__(self, port: int, health: Health, *, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(metrics_app(health), log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)

    async def run(self) -> None:
        log.info("metrics and health on http://%s:%d (/metrics, /healthz)", self.host, self.port)
        await self._server.serve(sockets=[self._socket])

    async def stop(self) -> None:
        self._server.should_exit = True
