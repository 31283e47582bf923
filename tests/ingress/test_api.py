"""The trigger API, configuration, queue figures, request logs and ops endpoints, over real HTTP."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import outbox
from shared.db.requestlog_sink import DatabaseSink
from shared.messaging.envelope import Envelope
from shared.messaging.topology import ENTITIES, Topology
from shared.requestlog import RequestLog, RequestLogEntry, log_context
from shared.siteconfig import DEFAULT_QUERY_MAP, SiteConfigModel
from tests.ingress.conftest import SECRET, TOKEN, Ingress
from tests.ingress.test_webhooks import notification, post
from tests.support.broker import drain

Sessions = async_sessionmaker[AsyncSession]


def jobs_queue(ingress: Ingress, entity: str = "product") -> str:
    return Topology(ingress.settings.amqp_prefix).queue(entity, "jobs")


def start_sync(ingress: Ingress, entity: str, body: dict[str, Any]) -> httpx.Response:
    with ingress.client() as client:
        return client.post(f"/api/v1/sync/{entity}", json=body)


def get(ingress: Ingress, path: str, **params: Any) -> httpx.Response:
    with ingress.client() as client:
        return client.get(path, params=params)


async def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.2) -> Any:
    """Poll `check()` (plain or async) until it returns something truthy; returns that or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


# Authentication ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-999", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN],
)
def test_api_needs_the_bearer_token_and_never_echoes_it(ingress: Ingress, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=ingress.url, headers=headers) as client:
        responses = [client.get("/api/v1/jobs"), client.post("/api/v1/sync/product", json={"mode": "full"})]
    for response in responses:
        assert response.status_code == 401
        assert response.json() == {"error": "missing or invalid bearer token"}
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in response.text and "wrong-token-999" not in response.text
    assert get(ingress, "/api/v1/jobs").json()["total"] == 0  # the refused POST created nothing


# Sync jobs -----------------------------------------------------------------------------------------


async def test_full_sync_creates_a_queued_job_and_publishes_its_run_message(
    ingress: Ingress, clean_db: Sessions
) -> None:
    response = start_sync(ingress, "product", {"mode": "full"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert isinstance(job_id, int)

    job = get(ingress, f"/api/v1/jobs/{job_id}")
    assert job.status_code == 200
    view = job.json()
    assert (view["job_id"], view["entity"], view["mode"], view["status"]) == (job_id, "product", "full", "queued")
    assert (view["from"], view["to"], view["source"]) == (None, None, "api")
    counts = view["counts"]  # other counts come and go with the sync's features; all start at 0
    assert {"found", "processed", "failed", "filtered", "skipped", "deleted"} <= set(counts)
    assert not any(counts.values())

    messages = await drain(ingress.settings.amqp_url_plain, jobs_queue(ingress), expect=1)
    assert len(messages) == 1
    envelope = Envelope.from_bytes(messages[0].body)
    assert (envelope.entity, envelope.kind, envelope.op, envelope.key) == ("product", "jobs", "run", str(job_id))
    assert envelope.payload == {"job_id": job_id, "mode": "full"}

    async def outbox_empty() -> bool:
        async with clean_db() as session:
            return await outbox.pending(session) == 0

    assert await wait_for(outbox_empty, timeout=5.0)


async def test_delta_and_custom_syncs_keep_their_window(ingress: Ingress) -> None:
    delta = start_sync(ingress, "inventory", {"mode": "delta"})
    custom = start_sync(
        ingress, "sales_order", {"mode": "custom", "from": "2026-01-01T02:00:00+02:00", "to": "2026-01-31T00:00:00Z"}
    )
    assert delta.status_code == custom.status_code == 202, (delta.text, custom.text)

    delta_view = get(ingress, f"/api/v1/jobs/{delta.json()['job_id']}").json()
    assert (delta_view["entity"], delta_view["mode"], delta_view["from"], delta_view["to"]) == (
        "inventory",
        "delta",
        None,
        None,
    )
    custom_view = get(ingress, f"/api/v1/jobs/{custom.json()['job_id']}").json()
    assert (custom_view["entity"], custom_view["mode"]) == ("sales_order", "custom")
    assert datetime.fromisoformat(custom_view["from"]) == datetime(2026, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(custom_view["to"]) == datetime(2026, 1, 31, tzinfo=UTC)

    run = await drain(ingress.settings.amqp_url_plain, jobs_queue(ingress, "sales_order"), expect=1)
    assert Envelope.from_bytes(run[0].body).payload == {"job_id": custom.json()["job_id"], "mode": "custom"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"mode": "custom", "from": "2026-01-01T00:00:00Z"}, "needs both 'from' and 'to'"),
        ({"mode": "custom", "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "earlier than 'to'"),
        ({"mode": "custom", "from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "earlier than 'to'"),
        ({"mode": "custom", "from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"}, "'from' needs a time zone"),
        ({"mode": "delta", "from": "2026-01-01T00:00:00Z"}, "only apply to mode 'custom'"),
        ({"mode": "sometimes"}, "body.mode"),
        ({"mode": "full", "priority": "high"}, "body.priority"),
        ({}, "body.mode"),
        ({"mode": "custom", "from": "yesterday", "to": "2026-01-01T00:00:00Z"}, "body.from"),
    ],
)
async def test_bad_sync_requests_are_422_with_a_reason_and_create_nothing(
    ingress: Ingress, body: dict[str, Any], fragment: str
) -> None:
    response = start_sync(ingress, "product", body)
    assert response.status_code == 422
    assert fragment in response.text
    assert get(ingress, "/api/v1/jobs").json()["total"] == 0


async def test_unknown_entity_is_404(ingress: Ingress) -> None:
    response = start_sync(ingress, "invoice", {"mode": "full"})
    assert response.status_code == 404
    assert "unknown entity 'invoice'" in response.json()["error"]
    assert get(ingress, "/api/v1/jobs", entity="invoice").status_code == 404


async def test_jobs_are_listed_newest_first_and_filtered(ingress: Ingress) -> None:
    ids = [start_sync(ingress, entity, {"mode": "full"}).json()["job_id"] for entity in ("product", "category")]
    ids.append(start_sync(ingress, "product", {"mode": "delta"}).json()["job_id"])

    listing = get(ingress, "/api/v1/jobs", entity="product").json()
    assert listing["total"] == 2
    assert [(j["job_id"], j["mode"]) for j in listing["items"]] == [(ids[2], "delta"), (ids[0], "full")]
    assert get(ingress, "/api/v1/jobs").json()["total"] == 3
    assert get(ingress, "/api/v1/jobs", status="queued", limit=1).json() | {"items": None} == {
        "total": 3,
        "items": None,
    }
    assert get(ingress, "/api/v1/jobs", status="succeeded").json() == {"total": 0, "items": []}
    assert get(ingress, "/api/v1/jobs", limit=0).status_code == 422


async def test_unknown_job_is_404(ingress: Ingress) -> None:
    response = get(ingress, "/api/v1/jobs/999999")
    assert response.status_code == 404
    assert response.json() == {"error": "job 999999 not found"}
    assert get(ingress, "/api/v1/jobs/not-a-number").status_code == 422


# Site configuration -----------------------------------------------------------------------------


def put_config(ingress: Ingress, changes: Any) -> httpx.Response:
    with ingress.client() as client:
        return client.put("/api/v1/config", json=changes)


async def test_config_starts_at_the_defaults(ingress: Ingress) -> None:
    response = get(ingress, "/api/v1/config")
    assert response.status_code == 200
    assert response.json() == SiteConfigModel().model_dump(mode="json")
    assert response.json()["query_map"] == DEFAULT_QUERY_MAP


async def test_partial_config_change_persists_and_keeps_the_rest(ingress: Ingress) -> None:
    response = put_config(
        ingress, {"message_queue_threshold": 7, "batch_size": 3, "rate_limits": {"rithum_per_minute": 100}}
    )
    assert response.status_code == 200, response.text
    expected = SiteConfigModel().model_dump(mode="json")
    expected |= {"message_queue_threshold": 7, "batch_size": 3}
    expected["rate_limits"]["rithum_per_minute"] = 100
    assert response.json() == expected
    assert get(ingress, "/api/v1/config").json() == expected

    assert put_config(ingress, {"feed_threshold": 20}).status_code == 200
    assert get(ingress, "/api/v1/config").json() == expected | {"feed_threshold": 20}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"message_queue_threshold": 0}, "message_queue_threshold"),
        ({"batch_size": "many"}, "batch_size"),
        ({"retry_delays": [5, -1]}, "positive"),
        ({"threshold": 10}, "unknown configuration fields: ['threshold']"),
        ({"query_map": {"RithumProducts": "product", "RithumInvoices": "invoice"}}, "unknown entities"),
        ({"rate_limits": {"rithum_per_hour": 5}}, "rithum_per_hour"),
        ([1, 2], "body"),
    ],
)
async def test_bad_config_changes_are_422_and_change_nothing(ingress: Ingress, changes: Any, fragment: str) -> None:
    response = put_config(ingress, changes)
    assert response.status_code == 422
    assert "error" in response.json()
    assert fragment in response.text
    assert get(ingress, "/api/v1/config").json() == SiteConfigModel().model_dump(mode="json")


async def test_query_map_change_reaches_the_webhook(ingress: Ingress) -> None:
    body = notification(inserted=[{"InventoryID": "MAPPED-1"}], query="MyStockItems")
    assert post(ingress, body).status_code == 422

    response = put_config(ingress, {"query_map": {**DEFAULT_QUERY_MAP, "MyStockItems": "product"}})
    assert response.status_code == 200, response.text
    accepted = await wait_for(lambda: post(ingress, body).status_code == 202, timeout=8.0)
    assert accepted, "the new Query name was not accepted within 8 s (config cache TTL is ~2 s)"
    messages = await drain(
        ingress.settings.amqp_url_plain, Topology(ingress.settings.amqp_prefix).queue("product", "records"), expect=1
    )
    assert Envelope.from_bytes(messages[0].body).key == "MAPPED-1"


# Queue figures -----------------------------------------------------------------------------------


async def test_queue_figures_cover_every_entity_and_see_new_messages(ingress: Ingress) -> None:
    response = get(ingress, "/api/v1/queues")
    assert response.status_code == 200, response.text
    entities = response.json()["entities"]
    assert set(entities) == set(ENTITIES)
    for row in entities.values():
        assert set(row) == {"ready", "unacked", "consumers", "retrying", "dead_lettered"}
        assert all(isinstance(v, int) and v >= 0 for v in row.values())

    rows = [{"CustomerID": "C-1"}, {"CustomerID": "C-2"}]
    assert post(ingress, notification(inserted=rows, query="RithumCustomers")).status_code == 202

    def customer_ready() -> bool:
        return get(ingress, "/api/v1/queues").json()["entities"]["customer"]["ready"] == 2

    # Management API figures lag the broker by up to ~5 s; the queue was purged before the test.
    assert await wait_for(customer_ready, timeout=15.0, interval=0.5)


# Request logs ------------------------------------------------------------------------------------


async def test_request_logs_are_filtered(ingress: Ingress, clean_db: Sessions) -> None:
    sink = DatabaseSink(clean_db)
    request_log = RequestLog(sink, secrets=["rithum-shared-secret-1"])
    with log_context(entity="product", job_id=7):
        with log_context(record_key="A1"):
            request_log.record(
                system="acumatica", method="get", url="http://acu/StockItem/A1", status=200, duration_ms=5
            )
            request_log.record(system="rithum", method="post", url="http://ca/v1/Products", status=429, duration_ms=3)
        with log_context(record_key="A2"):
            request_log.record(system="acumatica", method="put", url="http://acu/StockItem", status=500, duration_ms=9)
    with log_context(entity="inventory"):
        request_log.record(
            system="rithum",
            method="get",
            url="http://ca/v1/Products?access_token=live-token-42&$top=5",
            status=200,
            duration_ms=1,
            response_excerpt='{"refresh_token": "rithum-shared-secret-1"}',
        )
        request_log.record(
            system="ftp", method="stor", url="ftp://u:ftp-pw@ca/x.csv", status=None, duration_ms=1, error="TimeoutError"
        )
    assert await request_log.flush() == 5
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    await sink.write(
        [RequestLogEntry("acumatica", "GET", "http://acu/old", 200, 1.0, entity="product", created_at=two_days_ago)]
    )

    def keys(**params: Any) -> list[tuple[str, str, int | None]]:
        response = get(ingress, "/api/v1/request-logs", **params)
        assert response.status_code == 200, response.text
        return [(r["system"], r["method"], r["status"]) for r in response.json()["items"]]

    assert len(keys()) == 6
    assert keys(system="acumatica") == [("acumatica", "GET", 200), ("acumatica", "PUT", 500), ("acumatica", "GET", 200)]
    assert keys(entity="product", record_key="A1") == [("rithum", "POST", 429), ("acumatica", "GET", 200)]
    assert keys(job_id=7) == [("acumatica", "PUT", 500), ("rithum", "POST", 429), ("acumatica", "GET", 200)]
    assert keys(errors_only="true") == [("ftp", "STOR", None), ("acumatica", "PUT", 500), ("rithum", "POST", 429)]
    assert keys(status=429) == [("rithum", "POST", 429)]
    assert len(keys(since=(datetime.now(UTC) - timedelta(days=1)).isoformat())) == 5
    assert keys(until=(datetime.now(UTC) - timedelta(days=1)).isoformat()) == [("acumatica", "GET", 200)]
    assert len(keys(limit=2)) == 2 and len(keys(limit=2, offset=5)) == 1

    everything = get(ingress, "/api/v1/request-logs").text
    for secret in ("live-token-42", "rithum-shared-secret-1", "ftp-pw"):
        assert secret not in everything
    assert get(ingress, "/api/v1/request-logs", since="last week").status_code == 422
    assert get(ingress, "/api/v1/request-logs", job_id="seven").status_code == 422


# Ops endpoints -----------------------------------------------------------------------------------


def test_health_readiness_metrics_and_docs(ingress: Ingress) -> None:
    with httpx.Client(base_url=ingress.url) as client:  # no token: these are open to probes
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "database": "ok", "broker": "ok", "degraded": []}
        assert client.get("/healthz/dependencies").json()["degraded"] == []

        assert post(ingress, notification(inserted=[{"InventoryID": "M-1"}])).status_code == 202
        assert post(ingress, notification(inserted=[{"InventoryID": "M-1"}]), secret="nope").status_code == 401
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert 'connector_webhooks_total{outcome="published"}' in metrics.text
        assert 'connector_webhooks_total{outcome="401"}' in metrics.text

        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/webhooks/acumatica", "/api/v1/sync/{entity}", "/api/v1/jobs/{job_id}", "/api/v1/config"} <= set(paths)
    assert SECRET not in metrics.text and TOKEN not in metrics.text
