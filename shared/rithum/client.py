"""RithumClient: the REST API v1 calls the connector makes.

Every call goes through `OutboundHTTP` (concurrency limit, retries on 429/5xx honouring Retry-After,
request log). The per-minute budget is kept here rather than in `OutboundHTTP` because Rithum counts
each `$batch` part as a call of its own: a batch of 100 costs 101, and the budget hook charges that
on every attempt. A 401 refreshes the token once and repeats the call. Lists are read by following
`@odata.nextLink` exactly as given (the client never builds `$skip` itself), but only on the configured
API host: a nextLink elsewhere is refused rather than sent the bearer token. After repeated failures the
circuit breaker makes calls fail fast with `RithumTargetUnavailable` (a `RithumUnavailable`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from shared.outbound import CircuitBreaker, OutboundHTTP, minute_limiter, retry_after_seconds
from shared.requestlog import RequestLog
from shared.settings import Settings

from . import batch
from .auth import TokenProvider
from .batch import BatchRequest, BatchResult
from .errors import RithumError, RithumTargetUnavailable, error_for, response_json

log = logging.getLogger("connector.rithum")

SKU_GROUP = 20  # SKUs per OR-filter, to keep URLs short (what existing clients do)
BATCH_ATTEMPTS = 4
MAX_PART_WAIT = 120.0
DEFAULT_ORDER_EXPAND = ("Items", "Fulfillments")


def odata_string(value: str) -> str:
    """A quoted OData string literal; `'` doubles."""
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """Unquoted OData 4 date-time literal in UTC (naive values are taken as UTC)."""
    moment = value.astimezone(UTC) if value.tzinfo else value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CallBudget:
    """The per-profile requests/minute budget, charged per HTTP attempt: 1, plus 1 per `$batch` part."""

    def __init__(self, per_minute: int) -> None:
        self.limiter: AsyncLimiter = minute_limiter(per_minute)
        self.charged = 0

    async def charge(self, request: httpx.Request) -> None:
        cost = 1
        if request.url.path.endswith("/$batch"):
            cost += batch.parts_in(request.headers.get("content-type", ""), request.content)
        self.charged += cost
        while cost > 0:
            step = min(cost, int(self.limiter.max_rate))
            await self.limiter.acquire(step)
            cost -= step


class RithumClient:
    def __init__(self, http: OutboundHTTP, tokens: TokenProvider, *, profile_id: int, batch_size: int = 100) -> None:
        self.http = http
        self.tokens = tokens
        self.profile_id = profile_id
        self.batch_size = min(batch_size, batch.MAX_PARTS)
        self.base_url = str(http.client.base_url).rstrip("/")

    @classmethod
    def from_settings(
        cls, settings: Settings, request_log: RequestLog | None = None, *, batch_size: int = 100
    ) -> RithumClient:
        http = OutboundHTTP(
            system="rithum",
            base_url=settings.rithum_api_url,
            request_log=request_log,
            concurrency=settings.rithum_concurrency,
            secrets=settings.secret_values(),
            breaker=CircuitBreaker.from_settings("rithum", settings, RithumTargetUnavailable),
        )
        budget = CallBudget(settings.rithum_requests_per_minute)
        http.client.event_hooks["request"].append(budget.charge)
        tokens = TokenProvider(
            http,
            application_id=settings.rithum_application_id,
            shared_secret=settings.rithum_shared_secret.get_secret_value(),
            refresh_token=settings.rithum_refresh_token.get_secret_value(),
        )
        return cls(http, tokens, profile_id=settings.rithum_profile_id, batch_size=batch_size)

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- plumbing --------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One call with a bearer token; on 401 a fresh token and exactly one more try."""

        async def attempt(token: str) -> httpx.Response:
            return await self.http.request(
                method,
                url,
                params=params,
                json=json,
                content=content,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                idempotent=idempotent,
            )

        token = await self.tokens.get()
        response = await attempt(token)
        if response.status_code == 401:
            log.info("Rithum answered 401 to %s %s; refreshing the token", method, url)
            response = await attempt(await self.tokens.refresh(stale=token))
        return response

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        response = await self._send(method, url, **kwargs)
        body = response_json(response)
        if response.is_error:
            raise error_for(response.status_code, body, what)
        return body

    async def iterate(self, path: str, params: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every entity of a list, page by page along `@odata.nextLink`."""
        body = await self._call("GET", path, f"GET {path}", params=params)
        seen: set[str] = set()
        while True:
            for row in body.get("value", []):
                yield row
            url = body.get("@odata.nextLink")
            if url is None:
                return
            if url in seen:
                raise RithumError(f"GET {path}: the server repeated nextLink {url}")
            if self.http.foreign(url):
                raise RithumError(f"GET {path}: refusing to follow nextLink {url}: not on {self.http.origin}")
            seen.add(url)
            body = await self._call("GET", url, f"GET {path}")

    # --- products --------------------------------------------------------------------------------

    async def get_product(
        self, product_id: int, *, select: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> dict[str, Any]:
        return await self._call(
            "GET", f"/v1/Products({product_id})", f"GET product {product_id}", params=_shape(select, expand)
        )

    def iterate_products(
        self, *, filter: str | None = None, select: Sequence[str] = (), expand: Sequence[str] = ()
    ) -> AsyncIterator[dict[str, Any]]:
        params = _shape(select, expand)
        if filter:
            params["$filter"] = filter
        return self.iterate("/v1/Products", params)

    async def find_product_ids(self, skus: Iterable[str]) -> dict[str, int]:
        """SKU -> product ID for the SKUs that exist, asking for 20 SKUs per request."""
        unique = list(dict.fromkeys(skus))
        groups = [unique[i : i + SKU_GROUP] for i in range(0, len(unique), SKU_GROUP)]

        async def lookup(group: list[str]) -> dict[str, int]:
            query = " or ".join(f"Sku eq {odata_string(s)}" for s in group)
            return {row["Sku"]: row["ID"] async for row in self.iterate_products(filter=query, select=("ID", "Sku"))}

        found: dict[str, int] = {}
        for part in await asyncio.gather(*(lookup(g) for g in groups)):
            found.update(part)
        return found

    async def create_product(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST is not retried after a 5xx (it may have been applied); 429 is."""
        return await self._call(
            "POST", "/v1/Products", f"create product {body.get('Sku')}", json=dict(body), idempotent=False
        )

    async def update_product(self, product_id: int, changes: Mapping[str, Any]) -> None:
        await self._call("PATCH", f"/v1/Products({product_id})", f"update product {product_id}", json=dict(changes))

    async def delete_product(self, product_id: int) -> None:
        await self._call("DELETE", f"/v1/Products({product_id})", f"delete product {product_id}")

    async def update_quantity(
        self, product_id: int, updates: Mapping[int, int], update_type: str = "UnShipped"
    ) -> None:
        request = batch.update_quantity(product_id, updates, update_type)
        await self._call(
            "POST",
            f"/v1/{request.path}",
            f"update quantity of product {product_id}",
            json=request.body,
            idempotent=request.retry_safe,
        )

    async def update_attributes(self, product_id: int, attributes: Mapping[str, str]) -> None:
        request = batch.update_attributes(product_id, attributes)
        await self._call("POST", f"/v1/{request.path}", f"update attributes of product {product_id}", json=request.body)

    async def distribution_centers(self) -> list[dict[str, Any]]:
        return [dc async for dc in self.iterate("/v1/DistributionCenters")]

    # --- $batch ----------------------------------------------------------------------------------

    async def batch(self, requests: Sequence[BatchRequest]) -> list[BatchResult]:
        """One result per request, in order. Sent in batches of `batch_size`; parts answered 429
        (and 5xx, for parts safe to repeat) are sent again in a later batch, after Retry-After."""
        results: list[BatchResult | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            retry: list[int] = []
            wait = 0.0
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                for index, result in zip(chunk, await self._send_batch([requests[i] for i in chunk]), strict=True):
                    results[index] = result
                    if attempt < BATCH_ATTEMPTS and _retryable(result):
                        retry.append(index)
                        hinted = retry_after_seconds(result.headers.get("retry-after"))
                        wait = max(wait, min(hinted if hinted is not None else 0.5 * 2 ** (attempt - 1), MAX_PART_WAIT))
            if not retry:
                break
            log.warning("Rithum $batch: %d parts to repeat in %.1fs", len(retry), wait)
            await asyncio.sleep(wait)
            pending = retry
        return [r for r in results if r is not None]

    async def _send_batch(self, requests: Sequence[BatchRequest]) -> list[BatchResult]:
        content_type, body = batch.build(requests, self.base_url)
        response = await self._send(
            "POST",
            "/v1/$batch",
            content=body,
            headers={"Content-Type": content_type},
            idempotent=all(r.retry_safe for r in requests),
        )
        if response.is_error:
            raise error_for(response.status_code, response_json(response), f"$batch of {len(requests)}")
        try:
            return batch.parse(response.headers.get("content-type", ""), response.content, requests)
        except ValueError as exc:
            raise RithumError(f"$batch of {len(requests)}: unreadable answer: {exc}") from exc

    # --- orders ----------------------------------------------------------------------------------

    def iterate_orders(
        self,
        *,
        exported: bool | None = False,
        filter: str | None = None,
        expand: Sequence[str] = DEFAULT_ORDER_EXPAND,
    ) -> AsyncIterator[dict[str, Any]]:
        """Orders not yet exported by this application, by default (the documented import loop)."""
        params = _shape((), expand)
        if exported is not None:
            params["exported"] = "true" if exported else "false"
        if filter:
            params["$filter"] = filter
        return self.iterate("/v1/Orders", params)

    async def get_order(self, order_id: int, *, expand: Sequence[str] = DEFAULT_ORDER_EXPAND) -> dict[str, Any]:
        return await self._call("GET", f"/v1/Orders({order_id})", f"GET order {order_id}", params=_shape((), expand))

    async def mark_exported(self, order_id: int) -> None:
        await self._call("POST", f"/v1/Orders({order_id})/Export", f"mark order {order_id} exported")

    async def unmark_exported(self, order_id: int) -> None:
        await self._call("DELETE", f"/v1/Orders({order_id})/Export", f"unmark order {order_id} exported")

    async def ship_order(
        self,
        order_id: int,
        *,
        carrier: str,
        service_class: str,
        tracking_number: str | None = None,
        shipped_at: datetime | None = None,
        distribution_center_id: int = 0,
        seller_fulfillment_id: str | None = None,
        delivery_status: str = "Complete",
    ) -> None:
        """Ship the whole order; the carrier/class pair must exist in the Rithum account."""
        value: dict[str, Any] = {
            "ShippingCarrier": carrier,
            "ShippingClass": service_class,
            "DeliveryStatus": delivery_status,
            "DistributionCenterID": distribution_center_id,
        }
        if tracking_number:
            value["TrackingNumber"] = tracking_number
        if shipped_at is not None:
            value["ShippedDateUtc"] = shipped_at.isoformat()
        if seller_fulfillment_id:
            value["SellerFulfillmentID"] = seller_fulfillment_id
        await self._call("POST", f"/v1/Orders({order_id})/Ship", f"ship order {order_id}", json={"Value": value})

    async def adjust_order(self, order_id: int, adjustment: Mapping[str, Any]) -> None:
        """Order-level adjustment (cancel), e.g. `{"Reason": "BuyerCancelled", "SellerAdjustmentID": "…"}`."""
        await self._adjust(f"/v1/Orders({order_id})/Adjust", f"adjust order {order_id}", adjustment)

    async def adjust_order_item(self, item_id: int, adjustment: Mapping[str, Any]) -> None:
        """Item-level adjustment, e.g. `{"Reason": "BuyerCancelled", "Quantity": 1}`."""
        await self._adjust(f"/v1/OrderItems({item_id})/Adjust", f"adjust order item {item_id}", adjustment)

    async def _adjust(self, path: str, what: str, adjustment: Mapping[str, Any]) -> None:
        """Adjustments are not idempotent: one that may have reached Rithum is not retried, lest it apply twice."""
        await self._call("POST", path, what, json=dict(adjustment), idempotent=False)

    async def create_fulfillment(
        self, order_id: int, items: Mapping[int, int], fields: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A fulfillment for part of an order: order item ID -> quantity, plus tracking fields."""
        body = {
            **(fields or {}),
            "OrderID": order_id,
            "ProfileID": self.profile_id,
            "Items": [{"OrderItemID": item, "Quantity": qty} for item, qty in items.items()],
        }
        return await self._call(
            "POST", "/v1/Fulfillments", f"create fulfillment for order {order_id}", json=body, idempotent=False
        )

    async def update_fulfillment(self, fulfillment_id: int, changes: Mapping[str, Any]) -> None:
        await self._call(
            "PATCH", f"/v1/Fulfillments({fulfillment_id})", f"update fulfillment {fulfillment_id}", json=dict(changes)
        )


def _shape(select: Sequence[str], expand: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if select:
        params["$select"] = ",".join(select)
    if expand:
        params["$expand"] = ",".join(expand)
    return params


def _retryable(result: BatchResult) -> bool:
    return result.status == 429 or (result.status >= 500 and result.request.retry_safe)
