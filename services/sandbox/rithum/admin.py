"""Admin API under `/_sandbox/`: seed data, configure, inspect, reset, inject faults. Not part of Rithum."""

from __future__ import annotations

from itertools import islice
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from .catalog import PRODUCT_EXPANDS
from .ftp import FeedIntake
from .seed import product_bodies, seed_orders
from .state import Sandbox
from .webhooks import WebhookSender

MAX_SEED = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigPatch(_Strict):
    token_ttl: float | None = Field(None, gt=0, description="Seconds an access token lives")
    requests_per_minute: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    feed_delay: float | None = Field(
        None, ge=0, description="Seconds before a dropped feed is processed; applies to files received afterwards"
    )
    feed_results: bool | None = Field(None, description="Write a result file per feed to /Inventory/Results")
    webhook_url: str | None = Field(None, description="Where new orders are POSTed; null switches webhooks off")
    webhook_headers: dict[str, str] | None = None


class FaultsPatch(_Strict):
    error_rate: float | None = Field(None, ge=0, le=1)
    latency_ms: int | None = Field(None, ge=0)
    burst_429: int | None = Field(None, ge=0, description="The next N API calls answer 429")
    retry_after: int | None = Field(None, ge=1)
    outage: bool | None = None
    expire_tokens: bool = Field(False, description="Invalidate every access token now")


class SeedOrders(_Strict):
    count: int = Field(..., ge=1, le=MAX_SEED)
    seed: int | None = None


class SeedProducts(_Strict):
    count: int = Field(..., ge=1, le=MAX_SEED)
    prefix: str = Field("SEED-", min_length=1, max_length=40)
    seed: int = 0


def admin_router(sb: Sandbox, webhooks: WebhookSender, intake: FeedIntake | None = None) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "products": len(sb.catalog.products), "orders": len(sb.orders.orders)}

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        sb.reset()
        dropped = intake.clear() if intake is not None else 0
        return {"status": "reset", "pending_feeds_dropped": dropped}

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return vars(sb.config)

    @router.patch("/config")
    async def patch_config(patch: ConfigPatch) -> dict[str, Any]:
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if value is None and name != "webhook_url":
                raise HTTPException(400, f"{name} cannot be null")
            setattr(sb.config, name, value)
        return vars(sb.config)

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return vars(sb.faults)

    @router.patch("/faults")
    async def patch_faults(patch: FaultsPatch) -> dict[str, Any]:
        for name in patch.model_fields_set - {"expire_tokens"}:
            value = getattr(patch, name)
            if value is None:
                raise HTTPException(400, f"{name} cannot be null")
            setattr(sb.faults, name, value)
        expired = sb.tokens.expire_all() if patch.expire_tokens else 0
        return {**vars(sb.faults), "tokens_expired": expired}

    @router.get("/carriers")
    async def get_carriers() -> dict[str, list[str]]:
        return sb.orders.carriers

    @router.put("/carriers")
    async def put_carriers(carriers: dict[str, Any]) -> dict[str, list[str]]:
        sb.orders.set_carriers(carriers)
        return sb.orders.carriers

    @router.get("/distribution-centers")
    async def get_distribution_centers() -> list[dict[str, Any]]:
        return list(sb.catalog.distribution_centers.values())

    @router.put("/distribution-centers")
    async def put_distribution_centers(centers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sb.catalog.set_distribution_centers(centers)
        return list(sb.catalog.distribution_centers.values())

    @router.post("/orders/seed", status_code=201)
    async def post_seed_orders(body: SeedOrders) -> dict[str, Any]:
        seed = body.seed if body.seed is not None else sb.rng.randrange(2**31)
        created = seed_orders(sb, body.count, seed)
        for order in created:
            webhooks.enqueue(sb.orders.full(order))
        return {"created": len(created), "ids": [o["ID"] for o in created], "seed": seed}

    @router.post("/orders", status_code=201)
    async def create_order(spec: dict[str, Any]) -> dict[str, Any]:
        order = sb.orders.create(spec)
        full = sb.orders.full(order)
        webhooks.enqueue(full)
        return full

    @router.get("/orders")
    async def order_summary() -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for order in sb.orders.orders.values():
            statuses[order["ShippingStatus"]] = statuses.get(order["ShippingStatus"], 0) + 1
        exported = {app: len(ids) for app, ids in sb.orders.exported.items()}
        return {"count": len(sb.orders.orders), "by_shipping_status": statuses, "exported": exported}

    @router.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, Any]:
        order = sb.orders.get(order_id)
        exported_by = sorted(app for app, ids in sb.orders.exported.items() if order_id in ids)
        return {**sb.orders.full(order), "_exported_by": exported_by}

    @router.post("/products/seed", status_code=201)
    async def post_seed_products(body: SeedProducts) -> dict[str, Any]:
        bodies = product_bodies(body.count, body.prefix, body.seed)
        taken = next((b["Sku"] for b in bodies if b["Sku"] in sb.catalog.by_sku), None)
        if taken is not None:
            raise HTTPException(409, f"SKU {taken} already exists; choose another prefix")
        ids = [sb.catalog.create(b)["ID"] for b in bodies]
        return {"created": len(ids), "first_id": ids[0], "last_id": ids[-1]}

    @router.get("/products")
    async def list_products(
        sku: str | None = None, skip: int = Query(0, ge=0), top: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        catalog = sb.catalog
        if sku is not None:
            found = catalog.by_sku.get(sku)
            rows = [catalog.products[found]] if found is not None else []
            return {"count": len(rows), "value": [catalog.render(p, None, PRODUCT_EXPANDS) for p in rows]}
        ids = list(islice(catalog.products, skip, skip + top))
        return {
            "count": len(catalog.products),
            "value": [catalog.render(catalog.products[i], None, PRODUCT_EXPANDS) for i in ids],
        }

    @router.get("/feeds")
    async def feeds() -> list[dict[str, Any]]:
        """Processed feed files, oldest first: Rithum's Upload/Download Status, with the row errors."""
        return sb.feeds

    @router.get("/feeds/pending")
    async def pending_feeds() -> list[dict[str, Any]]:
        """Files received and not processed yet, in arrival order, with when each falls due."""
        return intake.pending() if intake is not None else []

    @router.post("/feeds/process-pending")
    async def process_pending_feeds() -> list[dict[str, Any]]:
        """Process every pending file now, in arrival order, instead of waiting out `feed_delay`."""
        return await intake.process_pending() if intake is not None else []

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return sb.stats.snapshot()

    @router.delete("/stats")
    async def reset_stats() -> dict[str, Any]:
        sb.stats.reset()
        return sb.stats.snapshot()

    return router
