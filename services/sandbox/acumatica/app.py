"""The sandbox application: Acumatica's API, the admin API, and the guard in front of both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from . import admin, api
from .errors import ApiError, FieldErrors, bad_request, json_response
from .guard import Guard
from .odata import QueryError
from .seed import seed
from .state import Sandbox


def create_app(seed_items: int = 0, random_seed: int = 1) -> FastAPI:
    sandbox = Sandbox()
    if seed_items:
        seed(sandbox.store, seed_items, random_seed)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await sandbox.push.start()
        try:
            yield
        finally:
            sandbox.actions.reset()
            await sandbox.push.stop()

    app = FastAPI(
        title="Acumatica sandbox",
        description="Stand-in for Acumatica's contract-based REST API (Default/24.200.001) plus `/_sandbox` admin.",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.include_router(api.router)
    app.include_router(admin.router)
    app.add_middleware(Guard, sandbox=sandbox)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(FieldErrors)
    async def field_errors(_request: Request, exc: FieldErrors) -> Response:
        return json_response(422, exc.body)

    @app.exception_handler(QueryError)
    async def query_error(_request: Request, exc: QueryError) -> Response:
        return bad_request(str(exc)).response()

    return app
