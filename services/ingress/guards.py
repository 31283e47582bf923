"""Hostile input is refused at the door with a 4xx and a reason, never a 500 further in.

PostgreSQL stores no NUL character and asyncpg cannot encode a lone surrogate, Python's JSON parser
recurses (a 5,000-level body raised RecursionError), and id columns have a range: each of these used to
surface as a 500 from deep inside a request.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import Path, Query
from pydantic import AfterValidator
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingress.auth import api_token_problem
from shared.settings import Settings

MAX_JSON_DEPTH = 32
INT_MAX = 2**31 - 1  # Integer columns
BIGINT_MAX = 2**63 - 1  # BigInteger columns; also what every JSON integer must fit in
_SURROGATE = re.compile("[\ud800-\udfff]")
CONTROL = re.compile("[\x00-\x1f\x7f]")
CLOSE = {"Connection": "close"}  # a client too slow with its body gets no second wait on this connection


def _storable(value: datetime) -> datetime:
    """asyncpg converts a time to UTC before sending it: within a day of year 1 or 9999 that overflows."""
    if not 2 <= value.year <= 9998:
        raise ValueError("year must be between 2 and 9998")
    return value


Timestamp = Annotated[datetime, AfterValidator(_storable)]
JobId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
ScheduleId = Annotated[int, Path(ge=1, le=INT_MAX)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX)]


class BadInput(Exception):
    """Parsable, perhaps, but not something the connector can process or store."""


class TooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    if _SURROGATE.search(text):
        return "is not valid Unicode (a lone surrogate)"
    return None


def _no_constant(name: str) -> None:
    raise BadInput(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text) > 20 or not -BIGINT_MAX - 1 <= (value := int(text)) <= BIGINT_MAX:
        raise BadInput("an integer does not fit in 64 bits")
    return value


def check_json(value: Any) -> None:
    """BadInput if `value` nests deeper than MAX_JSON_DEPTH or holds a string (key or value) that cannot be stored."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                raise BadInput(f"a string {problem}")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)


def load_json(body: bytes) -> Any:
    """The parsed body. ValueError if it is not JSON at all; BadInput if it is JSON the connector cannot take:
    too deep, NaN or Infinity, an integer beyond 64 bits, a NUL character or a lone surrogate."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_int=_bounded_int)
    except RecursionError:
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json(value)
    return value


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole body; TooLarge past `limit` bytes (without reading on), TimeoutError if it takes longer than
    `timeout` (a client trickling bytes would otherwise hold the request open for ever), ClientGone."""
    chunks, size = [], 0
    async with asyncio.timeout(timeout):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


class ApiGuard:
    """Under `prefix`, before FastAPI sees the request: the bearer token (401, so the body of an unauthenticated
    request is never read), no NUL in the path or query (422), a body of at most `api_max_bytes` (413) sent
    within `ingress_body_timeout_seconds` (408), and JSON the connector can take (422). FastAPI would read
    any body whole before a dependency runs, and answer a RecursionError with 400."""

    def __init__(self, app: ASGIApp, *, prefix: str, settings: Settings) -> None:
        self.app = app
        self.prefix = prefix
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        response = await self._check(scope, receive)
        if isinstance(response, JSONResponse):
            await response(scope, receive, send)
            return
        body, replayed = response, False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _check(self, scope: Scope, receive: Receive) -> bytes | JSONResponse:
        headers = Headers(scope=scope)
        if problem := api_token_problem(self.settings, headers.get("authorization")):
            return JSONResponse({"error": problem}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        query = unquote_plus(scope["query_string"].decode("latin-1"))
        for where, text in (("path", scope["path"]), ("query string", query)):
            if problem := text_problem(text):
                return JSONResponse({"error": f"the {where} {problem}"}, status_code=422)
        limit, timeout = self.settings.api_max_bytes, self.settings.ingress_body_timeout_seconds
        try:
            if (declared_length(scope) or 0) > limit:
                raise TooLarge
            body = await read_body(receive, limit, timeout)
        except TooLarge:
            return JSONResponse({"error": f"request body larger than {limit} bytes"}, status_code=413)
        except TimeoutError:
            return JSONResponse(
                {"error": f"request body not received within {timeout:g} s"}, status_code=408, headers=CLOSE
            )
        except ClientGone:
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        if body:
            try:
                load_json(body)
            except BadInput as exc:
                return JSONResponse({"error": f"unusable JSON body: {exc}"}, status_code=422)
            except ValueError:
                pass  # not JSON at all: FastAPI answers that with its own 422
        return body
