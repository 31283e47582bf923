"""/api/v1/schedules through the real ingress process: CRUD, validation, run now."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.messaging.envelope import Envelope
from shared.schedules import next_run
from shared.settings import Settings
from tests.scheduler.helpers import empty_jobs_queue, get_schedule, jobs_of
from tests.support.broker import drain
from tests.support.processes import free_port, service

TOKEN = "schedules-test-token"
NIGHTLY = {"name": "nightly products", "entity": "product", "mode": "delta", "cron": "0 2 * * *"}
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def ingress_url(settings: Settings, sessionmaker: Sessions) -> Iterator[str]:
    """A real ingress on a free port; `sessionmaker` first, so the test database is migrated."""
    port = free_port()
    env = {
        "INGRESS_PORT": str(port),
        "API_TOKEN": TOKEN,
        "AMQP_PREFIX": settings.amqp_prefix,
        "DATABASE_URL": settings.database_url_plain,
    }
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/healthz", env=env):
        yield url


@pytest.fixture
async def api(ingress_url: str, clean_db: Sessions) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"{ingress_url}/api/v1", headers=headers, timeout=10) as client:
        yield client


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


async def create(api: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await api.post("/schedules", json={**NIGHTLY, **changes})
    assert response.status_code == 201, response.text
    return response.json()


async def test_schedules_need_the_bearer_token(ingress_url: str) -> None:
    async with httpx.AsyncClient(base_url=ingress_url) as client:
        response = await client.get("/api/v1/schedules")
        wrong = await client.post("/api/v1/schedules", json=NIGHTLY, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "missing or invalid bearer token"}
    assert wrong.status_code == 401


async def test_create_read_list_update_delete(api: httpx.AsyncClient) -> None:
    expected_next = next_run(NIGHTLY["cron"], datetime.now(UTC))
    created = await create(api)
    sid = created["id"]
    assert {k: created[k] for k in NIGHTLY} == NIGHTLY
    assert created["active"] is True
    assert when(created["next_run_at"]) == expected_next
    assert created["description"] == "At 02:00 every day"
    assert (created["last_run_at"], created["last_job_id"]) == (None, None)

    assert (await api.get(f"/schedules/{sid}")).json() == created
    paused = await create(api, name="weekly categories", entity="category", mode="full", cron="0 3 * * 0", active=False)
    assert paused["next_run_at"] is None
    listed = (await api.get("/schedules")).json()["items"]
    assert [s["id"] for s in listed] == [sid, paused["id"]]

    renamed = (await api.patch(f"/schedules/{sid}", json={"name": "products, nightly", "mode": "full"})).json()
    assert (renamed["name"], renamed["mode"], renamed["next_run_at"]) == (
        "products, nightly",
        "full",
        created["next_run_at"],
    )
    recron = (await api.patch(f"/schedules/{sid}", json={"cron": "*/10  * * * *"})).json()
    assert recron["cron"] == "*/10 * * * *"
    assert when(recron["next_run_at"]).minute % 10 == 0
    assert when(recron["next_run_at"]) != expected_next
    assert (await api.patch(f"/schedules/{sid}", json={"active": False})).json()["next_run_at"] is None
    assert (await api.patch(f"/schedules/{sid}", json={"active": True})).json()["next_run_at"] is not None

    replaced = await api.put(f"/schedules/{sid}", json={**NIGHTLY, "entity": "inventory", "active": False})
    assert replaced.status_code == 200
    assert {k: replaced.json()[k] for k in ("entity", "mode", "cron", "active", "next_run_at")} == {
        "entity": "inventory",
        "mode": "delta",
        "cron": "0 2 * * *",
        "active": False,
        "next_run_at": None,
    }

    deleted = await api.delete(f"/schedules/{sid}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await api.get(f"/schedules/{sid}")).status_code == 404
    assert [s["id"] for s in (await api.get("/schedules")).json()["items"]] == [paused["id"]]


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"cron": "61 * * * *"}, "body.cron", "invalid cron expression '61 * * * *': Bad minute"),
        ({"cron": "0 0 * * * *"}, "body.cron", "cron expression needs 5 fields"),
        ({"entity": "orders"}, "body.entity", "unknown entity 'orders'; expected one of product"),
        ({"mode": "custom"}, "body.mode", "mode 'custom' needs a from-to window"),
        ({"mode": "hourly"}, "body.mode", "unknown mode 'hourly'"),
        ({"name": ""}, "body.name", "at least 1 character"),
        ({"owner": "ops"}, "body.owner", "Extra inputs are not permitted"),
    ],
)
async def test_bad_schedule_gets_422_saying_what_is_wrong(
    api: httpx.AsyncClient, changes: dict[str, Any], field: str, problem: str
) -> None:
    for response in (
        await api.post("/schedules", json={**NIGHTLY, **changes}),
        await api.patch("/schedules/1", json=changes),
    ):
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid request"
        assert any(d["field"] == field and problem in d["problem"] for d in body["details"]), body
    assert (await api.get("/schedules")).json()["items"] == []


async def test_patch_cannot_null_a_field(api: httpx.AsyncClient) -> None:
    sid = (await create(api))["id"]
    response = await api.patch(f"/schedules/{sid}", json={"cron": None, "active": None})
    assert response.status_code == 422
    assert "fields cannot be null: active, cron" in response.json()["details"][0]["problem"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/schedules/999", None),
        ("PUT", "/schedules/999", NIGHTLY),
        ("PATCH", "/schedules/999", {"active": False}),
        ("DELETE", "/schedules/999", None),
        ("POST", "/schedules/999/run", None),
    ],
)
async def test_unknown_schedule_is_404(api: httpx.AsyncClient, method: str, path: str, body: Any) -> None:
    response = await api.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"error": "schedule 999 not found"}


async def test_run_now_starts_the_job_and_publishes_its_message(
    api: httpx.AsyncClient, clean_db: Sessions, settings: Settings
) -> None:
    queue = await empty_jobs_queue(settings, "customer")
    created = await create(api, entity="customer", mode="full", active=False)

    response = await api.post(f"/schedules/{created['id']}/run")

    assert response.status_code == 202
    body = response.json()
    [job] = await jobs_of(clean_db, created["id"])
    assert body == {
        "job_id": job.id,
        "status": "queued",
        "schedule_id": created["id"],
        "entity": "customer",
        "mode": "full",
    }
    assert (job.source, job.entity, job.mode) == ("api", "customer", "full")
    schedule = await get_schedule(clean_db, created["id"])
    assert schedule.last_job_id == job.id
    assert schedule.last_run_at is not None
    assert schedule.next_run_at is None  # running an inactive schedule by hand does not activate it
    [message] = await drain(settings.amqp_url_plain, queue, expect=1)
    envelope = Envelope.from_bytes(message.body)
    assert (envelope.kind, envelope.op, envelope.payload) == ("jobs", "run", {"job_id": job.id, "mode": "full"})
