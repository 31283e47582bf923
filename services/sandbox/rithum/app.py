"""The web application: `/oauth2/token`, `/v1/...` (incl. `$batch`) and the `/_sandbox/` admin API."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .admin import admin_router
from .errors import ApiError
from .ftp import FeedIntake
from .gateway import Gateway
from .routes import Reply
from .state import Sandbox
from .webhooks import WebhookSender

JSON_TYPE = "application/json; odata.metadata=minimal"


def _response(reply: Reply) -> Response:
    if isinstance(reply.body, bytes):
        return Response(reply.body, reply.status, reply.headers)
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return Response(json.dumps(reply.body), reply.status, reply.headers, media_type=JSON_TYPE)


def create_app(sandbox: Sandbox, webhooks: WebhookSender, intake: FeedIntake | None = None) -> FastAPI:
    app = FastAPI(title="Rithum sandbox", description="Stand-in for the Rithum (ChannelAdvisor) REST API v1")
    gateway = Gateway(sandbox)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), error.status, error.headers)

    @app.post("/oauth2/token", tags=["rithum"])
    async def token(request: Request) -> Response:
        body = await request.body()
        reply = gateway.token(request.headers.get("authorization"), request.headers.get("content-type", ""), body)
        return _response(reply)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], tags=["rithum"])
    async def v1(request: Request, path: str) -> Response:
        reply = await gateway.api(
            request.method,
            path,
            request.query_params.multi_items(),
            request.headers,
            await request.body(),
            str(request.base_url).rstrip("/"),
        )
        return _response(reply)

    app.include_router(admin_router(sandbox, webhooks, intake))
    return app
