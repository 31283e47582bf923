"""What stands between a request and a resource: outage, OAuth, limits, injected faults, statistics.

Kept apart from the web framework so `$batch` parts pass through the same checks as top-level calls
(each part counts against the per-minute budget, as the real API counts it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl

from . import batch, routes
from .errors import ApiError, Unauthorized
from .routes import Call, Reply
from .state import Sandbox, retry_after

OUTAGE_MESSAGE = "The service is temporarily unavailable. Please try again later."


def _error(error: ApiError) -> Reply:
    return Reply(error.status, error.body(), dict(error.headers))


def _too_many(seconds: float, why: str) -> Reply:
    return _error(ApiError(429, why, headers={"Retry-After": retry_after(seconds)}))


class Gateway:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    # --- OAuth -----------------------------------------------------------------------------------

    def token(self, authorization: str | None, content_type: str, body: bytes) -> Reply:
        """`grant_type=refresh_token` with the application's Basic credentials."""
        self.sb.stats.http_requests += 1
        self.sb.stats.by_kind["token"] += 1
        reply = self._token(authorization, content_type, body)
        self.sb.stats.by_status[str(reply.status)] += 1
        return reply

    def _token(self, authorization: str | None, content_type: str, body: bytes) -> Reply:
        creds, config = self.sb.credentials, self.sb.config
        if self.sb.faults.outage:
            return Reply(503, {"error": "temporarily_unavailable", "error_description": OUTAGE_MESSAGE})
        if not self._basic_ok(authorization):
            return Reply(
                401, {"error": "invalid_client", "error_description": "Unknown application ID or shared secret."}
            )
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return Reply(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "The body must be application/x-www-form-urlencoded.",
                },
            )
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != "refresh_token":
            return Reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Only grant_type=refresh_token is supported by the sandbox.",
                },
            )
        if not secrets.compare_digest(form.get("refresh_token", ""), creds.refresh_token):
            return Reply(400, {"error": "invalid_grant", "error_description": "The refresh token is invalid."})
        value = self.sb.tokens.issue(creds.profile_id, creds.application_id, config.token_ttl)
        return Reply(200, {"access_token": value, "token_type": "bearer", "expires_in": int(config.token_ttl)})

    def _basic_ok(self, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            application, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        creds = self.sb.credentials
        return secrets.compare_digest(application, creds.application_id) and secrets.compare_digest(
            secret, creds.shared_secret
        )

    # --- /v1 -------------------------------------------------------------------------------------

    async def api(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Reply:
        stats = self.sb.stats
        stats.http_requests += 1
        found: tuple[routes.Route, tuple[str, ...]] | ApiError | None
        if path == "$batch":
            kind = "batch"
            found = None if method == "POST" else ApiError(405, "A $batch request must be POSTed.")
        else:
            found = routes.match(method, path)
            kind = found[0].kind if isinstance(found, tuple) else "unknown"
        stats.by_kind[kind] += 1
        reply = await self._api(found, Call(method, path, params, body, base_url), headers)
        stats.by_status[str(reply.status)] += 1
        return reply

    async def _api(
        self, found: tuple[routes.Route, tuple[str, ...]] | ApiError | None, call: Call, headers: Mapping[str, str]
    ) -> Reply:
        sb = self.sb
        if sb.faults.outage:
            return _error(ApiError(503, OUTAGE_MESSAGE))
        token = sb.tokens.check(self._bearer(headers, call.params))
        if token is None:
            return _error(Unauthorized())
        call.profile_id, call.application_id = token.profile_id, token.application_id
        sb.stats.api_calls += 1
        refused = self._limits(call.profile_id)
        if refused is not None:
            return refused
        if not sb.limiter.enter(call.profile_id):
            return _too_many(1, f"More than {sb.config.concurrency} concurrent requests for this profile.")
        try:
            if sb.faults.latency_ms:
                await asyncio.sleep(sb.faults.latency_ms / 1000)
            if isinstance(found, ApiError):
                return _error(found)
            if found is None:
                return self._batch(call, headers.get("content-type", ""))
            return self._injected_error() or self._execute(found, call)
        finally:
            sb.limiter.leave(call.profile_id)

    @staticmethod
    def _bearer(headers: Mapping[str, str], params: list[tuple[str, str]]) -> str | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        return next((v for k, v in params if k == "access_token"), None)

    def _limits(self, profile_id: int) -> Reply | None:
        faults = self.sb.faults
        if faults.burst_429 > 0:
            faults.burst_429 -= 1
            return _too_many(faults.retry_after, "Too many requests (injected burst).")
        wait = self.sb.limiter.take(profile_id)
        if wait is not None:
            return _too_many(
                wait, f"More than {self.sb.config.requests_per_minute} requests per minute for this profile."
            )
        return None

    def _injected_error(self) -> Reply | None:
        if self.sb.faults.error_rate and self.sb.rng.random() < self.sb.faults.error_rate:
            return _error(ApiError(500, "An error has occurred (injected)."))
        return None

    def _execute(self, found: tuple[routes.Route, tuple[str, ...]], call: Call) -> Reply:
        route, groups = found
        try:
            return route.handler(self.sb, call, groups)
        except ApiError as error:
            return _error(error)

    # --- $batch ----------------------------------------------------------------------------------

    def _batch(self, call: Call, content_type: str) -> Reply:
        try:
            parts = batch.parse(content_type, call.body)
        except ApiError as error:
            return _error(error)
        replies = [(part.content_id, self._batch_part(call, part)) for part in parts]
        kind, body = batch.render(replies)
        return Reply(200, body, {"Content-Type": kind})

    def _batch_part(self, outer: Call, part: batch.Part) -> Reply:
        stats = self.sb.stats
        stats.api_calls += 1
        if part.path == "$batch":
            found: tuple[routes.Route, tuple[str, ...]] | ApiError = ApiError(400, "A $batch cannot contain a $batch.")
        else:
            found = routes.match(part.method, part.path)
        stats.by_kind[found[0].kind if isinstance(found, tuple) else "unknown"] += 1
        reply = self._limits(outer.profile_id) or self._injected_error()
        if reply is None:
            call = Call(
                part.method,
                part.path,
                part.params,
                part.body,
                outer.base_url,
                outer.profile_id,
                outer.application_id,
                in_batch=True,
            )
            reply = _error(found) if isinstance(found, ApiError) else self._execute(found, call)
        stats.by_status[str(reply.status)] += 1
        return reply
