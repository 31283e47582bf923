"""The Acumatica surface: `/entity` (contract-based REST, endpoint Default/24.200.001) and `/identity`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from shared.acumatica.values import unwrap

from .auth import AUTH_COOKIE, OAuthError
from .entities import ENDPOINT, SPECS, EntitySpec
from .errors import ApiError, bad_request, json_response, not_found
from .odata import parse_custom, parse_filter, parse_int, parse_paths
from .render import View
from .state import Sandbox
from .store import normalize_key

router = APIRouter()
BUILD_VERSION = "24.200.0123"
_ENTITY_PATH = "/entity/{endpoint}/{version}/{entity}"


def _sandbox(request: Request) -> Sandbox:
    return request.app.state.sandbox


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from exc


def _spec(endpoint: str, version: str, entity: str) -> EntitySpec:
    if f"{endpoint}/{version}" != ENDPOINT:
        raise ApiError(404, f"The endpoint {endpoint}/{version} is not found; this tenant serves {ENDPOINT}.")
    spec = SPECS.get(entity)
    if spec is None:
        raise ApiError(404, f"The entity {entity} is not defined in the endpoint {ENDPOINT}.")
    return spec


def _view(spec: EntitySpec, request: Request) -> View:
    params = request.query_params
    return View(
        select=parse_paths(spec, params.get("$select"), "$select"),
        expand=parse_paths(spec, params.get("$expand"), "$expand") or set(),
        custom=parse_custom(params.get("$custom")),
    )


def _record_at(sandbox: Sandbox, spec: EntitySpec, segments: list[str]) -> dict[str, Any]:
    if len(segments) == 1 and (len(spec.keys) > 1 or _looks_like_guid(segments[0])):
        found = sandbox.store.get_by_id(spec.name, segments[0])
        if found is not None:
            return found
    if len(segments) != len(spec.keys):
        raise bad_request(f"{spec.name} is identified by {len(spec.keys)} key value(s): {', '.join(spec.keys)}.")
    found = sandbox.store.table(spec.name).rows.get(normalize_key(tuple(segments)))
    if found is None:
        raise not_found(spec.name)
    return found


def _looks_like_guid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


# -- discovery and sign-in ---------------------------------------------------------------------


@router.get("/entity")
async def endpoints(request: Request) -> Response:
    name, version = ENDPOINT.split("/")
    return json_response(
        200,
        {
            "version": {"acumaticaBuildVersion": BUILD_VERSION, "databaseVersion": BUILD_VERSION},
            "endpoints": [{"name": name, "version": version, "href": f"/entity/{ENDPOINT}/"}],
        },
    )


@router.post("/entity/auth/login")
async def login(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not isinstance(body.get("password"), str):
        raise bad_request('Login expects {"name": ..., "password": ..., "tenant": ...}.')
    session = _sandbox(request).auth.login(body["name"], body["password"], body.get("tenant"))
    response = Response(status_code=204)
    response.set_cookie(AUTH_COOKIE, session.token, httponly=True, path="/")
    response.set_cookie("ASP.NET_SessionId", session.token[:24], httponly=True, path="/")
    response.set_cookie("UserBranch", "16", path="/")
    return response


@router.post("/entity/auth/logout")
async def logout(request: Request) -> Response:
    _sandbox(request).auth.logout(request)
    response = Response(status_code=204)
    for cookie in (AUTH_COOKIE, "ASP.NET_SessionId", "UserBranch"):
        response.delete_cookie(cookie, path="/")
    return response


@router.post("/identity/connect/token")
async def token(request: Request) -> Response:
    form = await request.form()
    try:
        reply = _sandbox(request).auth.token({k: str(v) for k, v in form.items()})
    except OAuthError as exc:
        return json_response(exc.status, {"error": exc.error, "error_description": exc.description})
    return json_response(200, reply, {"Cache-Control": "no-store"})


@router.get("/identity/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    return json_response(
        200,
        {
            "issuer": f"{base}/identity",
            "token_endpoint": f"{base}/identity/connect/token",
            "grant_types_supported": ["password", "refresh_token"],
            "scopes_supported": ["api", "offline_access", "api:concurrent_access"],
        },
    )


# -- entities ----------------------------------------------------------------------------------


@router.get(_ENTITY_PATH)
async def list_records(endpoint: str, version: str, entity: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    sandbox.auth.require(request)
    spec = _spec(endpoint, version, entity)
    params = request.query_params
    query = parse_filter(spec, params.get("$filter"))
    view = _view(spec, request)
    skip = parse_int(params.get("$skip"), "$skip") or 0
    top = parse_int(params.get("$top"), "$top")
    table = sandbox.store.table(entity)
    if query is None:
        matched: Iterable[dict[str, Any]] = table.rows.values()
    elif query.keys is not None:  # a batch of keys: look them up rather than test every row
        matched = table.matching(query.keys)
    else:
        matched = filter(query.test, table.rows.values())
    page = islice(matched, skip, None if top is None else skip + top)
    render = sandbox.renderer.render
    return json_response(200, [render(spec, record, view, skip + n) for n, record in enumerate(page, 1)])


@router.put(_ENTITY_PATH)
async def put_record(endpoint: str, version: str, entity: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    sandbox.auth.require(request)
    spec = _spec(endpoint, version, entity)
    view = _view(spec, request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object (one entity).")
    with sandbox.store.transaction():
        record = sandbox.writer.put(
            entity,
            unwrap(body),
            if_match=request.headers.get("if-match") == "*",
            if_none_match=request.headers.get("if-none-match") == "*",
        )
    return json_response(200, sandbox.renderer.render(spec, record, view))


@router.get(_ENTITY_PATH + "/{rest:path}")
async def get_record(endpoint: str, version: str, entity: str, rest: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    sandbox.auth.require(request)
    spec = _spec(endpoint, version, entity)
    segments = [s for s in rest.split("/") if s]
    if len(segments) == 3 and segments[0] in spec.actions and segments[1] == "status":
        operation = sandbox.actions.status(entity, segments[0], segments[2])
        if operation.state == "running":
            return Response(status_code=202, headers={"Location": request.url.path})
        if operation.state == "failed":
            raise ApiError(500, operation.error or "The action failed.", "PX.Data.PXException")
        return Response(status_code=204)
    record = _record_at(sandbox, spec, segments)
    return json_response(200, sandbox.renderer.render(spec, record, _view(spec, request)))


@router.delete(_ENTITY_PATH + "/{rest:path}")
async def delete_record(endpoint: str, version: str, entity: str, rest: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    sandbox.auth.require(request)
    spec = _spec(endpoint, version, entity)
    record = _record_at(sandbox, spec, [s for s in rest.split("/") if s])
    with sandbox.store.transaction():
        sandbox.writer.delete(entity, tuple(record.get(k) for k in spec.keys))
    return Response(status_code=204)


@router.post(_ENTITY_PATH + "/{action}")
async def run_action(endpoint: str, version: str, entity: str, action: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    sandbox.auth.require(request)
    spec = _spec(endpoint, version, entity)
    if action not in spec.actions:
        raise ApiError(404, f"The action {action} is not defined for the entity {entity}.")
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("entity"), dict):
        raise bad_request('An action expects {"entity": {...key fields or id...}, "parameters": {...}}.')
    record = sandbox.writer.find(spec, unwrap(body["entity"]))
    if record is None:
        raise not_found(entity)
    operation_id = sandbox.actions.start(entity, action, record)
    if operation_id is None:
        return Response(status_code=204)
    location = f"/entity/{ENDPOINT}/{entity}/{action}/status/{operation_id}"
    return Response(status_code=202, headers={"Location": location})
