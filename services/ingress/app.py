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
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.ingress import api, entities, schedules, webhooks
from services.ingress.runtime import Runtime
from shared.db.engine import make_engine, make_sessionmaker
from shared.messaging.publisher import Publisher, PublishError
from shared.messaging.topology import Topology
from shared.outbox import OutboxRelay, start_publisher
from shared.settings import Settings, get_settings
from shared.siteconfig import SiteConfigCache

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
        config=SiteConfigCache(sessionmaker),
    )
    with contextlib.suppress(PublishError):
        await publisher.start()  # serve webhooks straight away when the broker is up
    runtime.tasks.append(asyncio.create_task(start_publisher(publisher, relay), name="publisher"))
    return runtime


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
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(schedules.router)
    app.include_router(entities.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "details": details}, status_code=422)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        checks: dict[str, Any] = {}
        try:
            async with runtime.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 3)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["broker"] = "ok" if runtime.publisher.is_connected else "unavailable"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
