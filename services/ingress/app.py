"""The ingress FastAPI application: webhooks, trigger API, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.ingress import api, console, entities, queues, schedules, webhooks
from services.ingress.guards import ApiGuard
from services.ingress.runtime import LastKnownConfig, Runtime
from shared.db.engine import make_engine, make_sessionmaker
from shared.messaging.publisher import Publisher, PublishError
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay, start_publisher
from shared.settings import Settings, get_settings

log = logging.getLogger("connector.ingress")


async def build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.database_url_plain)
    sessionmaker = make_sessionmaker(engine)
    topology = Topology(settings.amqp_prefix)
    publisher = Publisher(settings.amqp_url_plain, topology, name="ingress")
    relay = OutboxRelay(sessionmaker, publisher)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        topology=topology,
        publisher=publisher,
        relay=relay,
        config=LastKnownConfig(sessionmaker),
    )
    await runtime.config.get()  # read before serving; the built-in defaults if the database is down
    with contextlib.suppress(PublishError):
        await publisher.start()  # serve webhooks straight away when the broker is up
    runtime.tasks.append(asyncio.create_task(start_publisher(publisher, relay), name="publisher"))
    return runtime


async def dependencies(runtime: Runtime) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(3), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["broker"] = "ok" if runtime.publisher.is_connected else "unavailable"
    return {**checks, "degraded": [name for name, state in checks.items() if state != "ok"]}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await build_runtime(settings)
        log.info("ingress ready: API and docs at http://%s:%d/docs", settings.ingress_host, settings.ingress_port)
        try:
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(
        title="Acumatica ⇄ Rithum connector",
        version="1.0",
        lifespan=lifespan,
        description="Webhook ingress and trigger API of the connector.",
    )
    app.add_middleware(ApiGuard, prefix="/api/v1", settings=settings)
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(schedules.router)
    app.include_router(entities.router)
    console.install(app)  # the ops console at /console (server-rendered pages over the same runtime)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "details": details}, status_code=422)

    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DBAPIError)
    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        """The API needs the database; while it is unreachable (no connection, or it dropped) the answer is
        "retry later", not a 500. Other database errors stay 500s: they are bugs."""
        if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
            raise exc
        log.warning("API request failed: database unavailable (%s)", type(exc).__name__)
        return JSONResponse({"error": "database unavailable; retry later"}, status_code=503)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Ready while a webhook can be accepted: the broker takes it, or else the outbox (the database) does.
        Taking the ingress out of service when only the broker is down would refuse what it should buffer."""
        body = await dependencies(request.app.state.runtime)
        ready = "ok" in (body["database"], body["broker"])
        return JSONResponse({"ready": ready, **body}, status_code=200 if ready else 503)

    @app.get("/healthz/dependencies", tags=["ops"])
    async def dependency_health(request: Request) -> JSONResponse:
        """503 while any dependency is degraded, naming it (for alerting; readiness is `/readyz`)."""
        body = await dependencies(request.app.state.runtime)
        return JSONResponse(body, status_code=503 if body["degraded"] else 200)

    @app.get("/metrics", tags=["ops"])
    async def metrics(request: Request) -> Response:
        runtime = request.app.state.runtime
        with contextlib.suppress(queues.QueuesUnavailable, TimeoutError):  # the gauges keep their last values
            async with asyncio.timeout(5):
                delays = (await runtime.config.get()).retry_delays
                await queues.figures_of(request.app.state, runtime.settings, runtime.topology, delays)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
