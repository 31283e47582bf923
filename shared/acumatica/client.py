"""Async client for Acumatica's contract-based REST API.

Limits, retries (429 with Retry-After, 5xx, transport errors) and the request log come from
`OutboundHTTP`; this class adds what is Acumatica-specific: signing in (cookie session or OAuth 2.0
resource-owner tokens), signing in again once when a session expired (401), signing out on close,
value-wrapped JSON, `$top/$skip` paging, upserts with If-Match/If-None-Match, and actions that
answer 202 and are polled until done (only on the configured host: a `Location` elsewhere is refused,
never sent the session). Failures raise the typed errors of `errors.py`; after repeated failures the
circuit breaker makes calls fail fast with `AcumaticaTargetUnavailable` (status 503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar, overload
from urllib.parse import quote, urljoin

import httpx

from shared.acumatica.errors import AcumaticaError, AcumaticaTargetUnavailable, AuthError, error_from_response
from shared.acumatica.filters import Filter
from shared.acumatica.models import AcumaticaModel
from shared.acumatica.values import unwrap, wrap
from shared.outbound import CircuitBreaker, OutboundHTTP, TargetUnavailable
from shared.requestlog import RequestLog
from shared.settings import Settings, get_settings

M = TypeVar("M", bound=AcumaticaModel)
Entity = str | type[AcumaticaModel]
OAUTH_SCOPE = "api offline_access"


def _entity_name(entity: Entity) -> str:
    return entity if isinstance(entity, str) else entity.entity


def _csv(values: str | Iterable[str] | None) -> str | None:
    if values is None:
        return None
    return values if isinstance(values, str) else ",".join(values)


class AcumaticaClient:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        request_log: RequestLog | None = None,
        poll_interval: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings = settings or get_settings()
        if settings.acumatica_auth == "oauth" and not (
            settings.acumatica_client_id and settings.acumatica_client_secret
        ):
            raise ValueError("ACUMATICA_AUTH=oauth needs ACUMATICA_CLIENT_ID and ACUMATICA_CLIENT_SECRET")
        self.http = OutboundHTTP(
            system="acumatica",
            base_url=settings.acumatica_url.rstrip("/"),
            request_log=request_log,
            rate_per_minute=settings.acumatica_requests_per_minute or None,
            concurrency=settings.acumatica_concurrency,
            max_attempts=settings.acumatica_max_attempts,
            timeout=settings.acumatica_timeout,
            secrets=settings.secret_values(),
            headers={"Accept": "application/json"},
            transport=transport,
            breaker=CircuitBreaker.from_settings("acumatica", settings, AcumaticaTargetUnavailable),
        )
        self.page_size = settings.acumatica_page_size
        self.poll_interval = poll_interval
        self._root = f"/entity/{settings.acumatica_endpoint.strip('/')}"
        self._auth_lock = asyncio.Lock()
        self._generation = 0  # bumped by each sign-in, so concurrent 401s sign in only once
        self._signed_in = False
        self._access_token: str | None = None
        self._refresh_token: str | None = None

    async def __aenter__(self) -> AcumaticaClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- session -------------------------------------------------------------------------------

    async def login(self) -> None:
        async with self._auth_lock:
            await self._sign_in()

    async def aclose(self) -> None:
        """Sign out (unclosed sessions use up the license's API users), then close the connection pool."""
        try:
            if self._signed_in:
                await self.http.request("POST", "/entity/auth/logout", headers=self._auth_headers(), idempotent=False)
        except (httpx.HTTPError, TargetUnavailable):
            pass  # the session will expire on its own
        finally:
            self._signed_in = False
            await self.http.aclose()

    async def _sign_in(self) -> None:
        settings = self.settings
        if settings.acumatica_auth == "oauth":
            await self._oauth_sign_in()
        else:
            body: dict[str, Any] = {
                "name": settings.acumatica_username,
                "password": settings.acumatica_password.get_secret_value(),
                "tenant": settings.acumatica_tenant,
            }
            if settings.acumatica_branch:
                body["branch"] = settings.acumatica_branch
            response = await self.http.request("POST", "/entity/auth/login", json=body)
            if response.status_code != 204:
                raise _auth_error(response, "login")
        self._signed_in = True
        self._generation += 1

    async def _oauth_sign_in(self) -> None:
        settings = self.settings
        client_id = settings.acumatica_client_id or ""
        if "@" not in client_id:
            client_id = f"{client_id}@{settings.acumatica_tenant}"
        secret = settings.acumatica_client_secret.get_secret_value() if settings.acumatica_client_secret else ""
        form = {"client_id": client_id, "client_secret": secret}
        response = None
        if self._refresh_token:
            response = await self.http.request(
                "POST",
                "/identity/connect/token",
                data={**form, "grant_type": "refresh_token", "refresh_token": self._refresh_token},
            )
        if response is None or response.status_code != 200:  # no refresh token, or the chain expired
            response = await self.http.request(
                "POST",
                "/identity/connect/token",
                data={
                    **form,
                    "grant_type": "password",
                    "username": settings.acumatica_username,
                    "password": settings.acumatica_password.get_secret_value(),
                    "scope": OAUTH_SCOPE,
                },
            )
        if response.status_code != 200:
            raise _auth_error(response, "token request")
        tokens = response.json()
        self._access_token = tokens["access_token"]
        self._refresh_token = tokens.get("refresh_token")

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token}"} if self._access_token else {}

    async def _sign_in_again(self, seen_generation: int) -> None:
        async with self._auth_lock:
            if self._generation == seen_generation:  # nobody signed in since this call started
                await self._sign_in()

    # -- transport -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One API call: signed in first, once more after a 401, errors raised as typed exceptions."""
        if not self._signed_in:
            await self._sign_in_again(self._generation)
        for attempt in range(2):
            generation = self._generation
            response = await self.http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=json,
                headers={**self._auth_headers(), **(headers or {})},
                idempotent=idempotent,
            )
            if response.status_code != 401 or attempt == 1:
                break
            await self._sign_in_again(generation)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _path(self, entity: Entity, *keys: Any) -> str:
        parts = [self._root, quote(_entity_name(entity), safe="")]
        parts += [quote(str(key).strip(), safe="") for key in keys]
        return "/".join(parts)

    @staticmethod
    def _query(
        *,
        filter: Filter | str | None = None,
        select: str | Iterable[str] | None = None,
        expand: str | Iterable[str] | None = None,
        custom: str | Iterable[str] | None = None,
        top: int | None = None,
        skip: int | None = None,
    ) -> dict[str, Any]:
        return {
            "$filter": str(filter) if filter is not None else None,
            "$select": _csv(select),
            "$expand": _csv(expand),
            "$custom": _csv(custom),
            "$top": top,
            "$skip": skip,
        }

    # -- records -------------------------------------------------------------------------------

    @overload
    async def get(self, entity: type[M], *keys: Any, **options: Any) -> M: ...
    @overload
    async def get(self, entity: str, *keys: Any, **options: Any) -> dict[str, Any]: ...
    async def get(self, entity: Entity, *keys: Any, **options: Any) -> Any:
        """One record by its key values (`get("SalesOrder", "SO", "SO000042")`); raises NotFound."""
        response = await self._call("GET", self._path(entity, *keys), params=self._query(**options))
        return _parse(entity, response.json())

    @overload
    async def list(self, entity: type[M], **options: Any) -> list[M]: ...
    @overload
    async def list(self, entity: str, **options: Any) -> list[dict[str, Any]]: ...
    async def list(self, entity: Entity, **options: Any) -> list[Any]:
        """One page: options are filter, select, expand, custom, top, skip."""
        response = await self._call("GET", self._path(entity), params=self._query(**options))
        return [_parse(entity, record) for record in response.json()]

    @overload
    def iterate(self, entity: type[M], *, page_size: int | None = None, **options: Any) -> AsyncIterator[M]: ...
    @overload
    def iterate(
        self, entity: str, *, page_size: int | None = None, **options: Any
    ) -> AsyncIterator[dict[str, Any]]: ...
    async def iterate(self, entity: Entity, *, page_size: int | None = None, **options: Any) -> AsyncIterator[Any]:
        """Every matching record, fetched page by page with `$top`/`$skip`."""
        size = page_size or self.page_size
        skip = 0
        while True:
            page = await self.list(entity, top=size, skip=skip, **options)
            for record in page:
                yield record
            if len(page) < size:
                return
            skip += len(page)

    @overload
    async def put(self, entity: type[M], record: M | Mapping[str, Any], **options: Any) -> M: ...
    @overload
    async def put(self, entity: str, record: AcumaticaModel | Mapping[str, Any], **options: Any) -> dict[str, Any]: ...
    async def put(
        self,
        entity: Entity,
        record: AcumaticaModel | Mapping[str, Any],
        *,
        if_none_match: bool = False,
        if_match: bool = False,
        **options: Any,
    ) -> Any:
        """Upsert by key. `if_none_match`: insert only; `if_match`: update only (else PreconditionFailed)."""
        if if_none_match and if_match:
            raise ValueError("if_none_match and if_match exclude each other")
        body = record.to_api() if isinstance(record, AcumaticaModel) else wrap(dict(record))
        headers = {"If-None-Match": "*"} if if_none_match else {"If-Match": "*"} if if_match else {}
        response = await self._call(
            "PUT", self._path(entity), params=self._query(**options), json=body, headers=headers
        )
        return _parse(entity, response.json())

    async def delete(self, entity: Entity, *keys: Any) -> None:
        await self._call("DELETE", self._path(entity, *keys))

    async def action(
        self,
        entity: Entity,
        action: str,
        record: AcumaticaModel | Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        timeout: float = 300.0,
    ) -> None:
        """Run an action (`action("Shipment", "ConfirmShipment", {"ShipmentNbr": "SH000001"})`) to completion.

        The ERP answers 204 when done or 202 with a `Location` to poll; polling continues until 204.
        The POST is not retried on 5xx (an action may have started), only on 429 and refused connections.
        """
        body = {
            "entity": record.to_api() if isinstance(record, AcumaticaModel) else wrap(dict(record)),
            "parameters": wrap(dict(parameters or {})),
        }
        response = await self._call(
            "POST", f"{self._path(entity)}/{quote(action, safe='')}", json=body, idempotent=False
        )
        deadline = time.monotonic() + timeout
        while response.status_code == 202:
            location = response.headers.get("Location")
            if not location:
                raise AcumaticaError(202, f"{action} answered 202 without a Location to poll")
            url = urljoin(str(response.request.url), location)
            if self.http.foreign(url):
                message = f"{action} answered 202 with a Location on another host, not polled: {location}"
                raise AcumaticaError(202, f"{message} (only {self.http.origin} gets the session)", url=location)
            if time.monotonic() > deadline:
                raise AcumaticaError(202, f"{action} still running after {timeout:.0f}s", url=location)
            await asyncio.sleep(self.poll_interval)
            response = await self._call("GET", url, idempotent=False)

    async def endpoints(self) -> dict[str, Any]:
        """`GET /entity`: the build version and endpoints (needs no session)."""
        response = await self.http.request("GET", "/entity")
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()


def _parse(entity: Entity, data: Any) -> Any:
    return unwrap(data) if isinstance(entity, str) else entity.from_api(data)


def _auth_error(response: httpx.Response, what: str) -> AuthError:
    error = error_from_response(response)
    return AuthError(response.status_code, f"{what} failed: {error.message}", method=error.method, url=error.url)
