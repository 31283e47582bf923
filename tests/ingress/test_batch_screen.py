"""The product batch screen lists live candidates from Acumatica, over HTTP against the real sandbox.

The ingress and the Acumatica sandbox run as processes; the sandbox is seeded through its admin API
(seeded change stamps lie in 2024, later changes are newer), and the expected candidates are read
back from it in its own order, which is the order the API pages in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import syncrecords
from shared.acumatica.values import parse_datetime
from shared.db.models import SyncStatus
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.ingress.conftest import TOKEN, ingress_env
from tests.support.broker import purge
from tests.support.processes import free_port, service, stop

Sessions = async_sessionmaker[AsyncSession]
SEED_ITEMS = 80  # 4 matrix templates and 80 stock items (simple items, variants, kits)
RECORDS = "/api/v1/entities/product/records"


@dataclass
class Live:
    ingress: str
    acumatica: str
    settings: Settings

    def api(self, base: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.Client(base_url=base or self.ingress, headers=headers, timeout=60)

    def acu(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.acumatica}/_sandbox", timeout=60)


def live_env(settings: Settings, port: int, acumatica: str, **extra: str) -> dict[str, str]:
    """The ingress's test settings, pointed at an Acumatica sandbox (`service` adds the environment)."""
    acumatica_env = {
        "ACUMATICA_URL": acumatica,
        "ACUMATICA_REQUESTS_PER_MINUTE": "0",  # the sandbox license has no per-minute limit
        "ACUMATICA_MAX_ATTEMPTS": "2",  # failures surface fast
        "ACUMATICA_PAGE_SIZE": "2",  # counting the templates takes several pages
    }
    return ingress_env(settings, port, **{**acumatica_env, **extra})


@contextmanager
def ingress_process(settings: Settings, acumatica: str, **extra: str) -> Iterator[tuple[str, Any]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env=live_env(settings, port, acumatica, **extra)) as proc:
        yield url, proc


@pytest.fixture(scope="module")
def live_stack(settings: Settings, sessionmaker) -> Iterator[Live]:
    acu_port = free_port()
    acumatica = f"http://127.0.0.1:{acu_port}"
    with (
        service(["services.sandbox.acumatica", "--port", str(acu_port)], f"{acumatica}/_sandbox/health"),
        ingress_process(settings, acumatica) as (ingress, _),
    ):
        yield Live(ingress, acumatica, settings)


@pytest_asyncio.fixture(loop_scope="session")
async def live(live_stack: Live, clean_db: Sessions) -> Live:
    """A freshly seeded catalogue (sessions and faults reset too), an empty state store and queues."""
    with live_stack.acu() as acu:
        acu.post("/reset").raise_for_status()
        acu.post("/seed", json={"items": SEED_ITEMS, "random_seed": 7}).raise_for_status()
    settings = live_stack.settings
    await purge(settings.amqp_url_plain, Topology(settings.amqp_prefix).queue_names())
    return live_stack


# Helpers -------------------------------------------------------------------------------------------


def sandbox_records(live: Live, entity: str) -> list[dict[str, Any]]:
    with live.acu() as acu:
        return acu.get(f"/records/{entity}", params={"limit": 100_000}).raise_for_status().json()["records"]


def stamp(record: dict[str, Any]) -> datetime:
    return parse_datetime(record["LastModified"])


def expected(live: Live, since: datetime | None = None, until: datetime | None = None) -> list[str]:
    """Candidate keys in the screen's order: templates, then stock items, each in Acumatica's order."""

    def inside(record: dict[str, Any]) -> bool:
        return (since is None or stamp(record) >= since) and (until is None or stamp(record) < until)

    return [
        r["InventoryID"]
        for entity in ("TemplateItems", "StockItem")
        for r in sandbox_records(live, entity)
        if inside(r)
    ]


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def window(since: datetime | None, until: datetime | None) -> dict[str, str]:
    return {k: iso(v) for k, v in (("from", since), ("to", until)) if v is not None}


def listing(live: Live, **params: Any) -> dict[str, Any]:
    with live.api() as api:
        response = api.get(RECORDS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def page_through(live: Live, limit: int, **params: Any) -> list[str]:
    """Every key across pages of `limit`; checks that only the last page is short and says no more."""
    keys: list[str] = []
    while True:
        page = listing(live, limit=limit, offset=len(keys), **params)
        assert page["total"] is None and page["source"] == "acumatica"
        keys += [item["key"] for item in page["items"]]
        if not page["has_more"]:
            assert len(page["items"]) <= limit
            return keys
        assert len(page["items"]) == limit


def touch(live: Live, entity: str, keys: list[str]) -> dict[str, datetime]:
    """Bump the change stamps "inside the ERP" and return them as the sandbox recorded them."""
    with live.acu() as acu:
        acu.post(f"/records/{entity}/change", json={"keys": keys}).raise_for_status()
        return {key: stamp(acu.get(f"/records/{entity}/{key}").raise_for_status().json()) for key in keys}


def first_of_kind(live: Live) -> dict[str, str]:
    items = sandbox_records(live, "StockItem")
    return {
        "template": sandbox_records(live, "TemplateItems")[0]["InventoryID"],
        "variant": next(i["InventoryID"] for i in items if i.get("TemplateItemID")),
        "kit": next(i["InventoryID"] for i in items if i.get("IsAKit")),
        "simple": next(i["InventoryID"] for i in items if not i.get("TemplateItemID") and not i.get("IsAKit")),
    }


def job(live: Live, job_id: int) -> dict[str, Any]:
    with live.api() as api:
        return api.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()


def process_all(live: Live, entity: str = "product", **body: Any) -> httpx.Response:
    with live.api() as api:
        return api.post(f"/api/v1/entities/{entity}/records/process-all", json=body)


# Listing -------------------------------------------------------------------------------------------


async def test_changed_items_are_listed_live_with_their_sync_state_or_none(live: Live, clean_db: Sessions) -> None:
    kinds = first_of_kind(live)
    stamps = touch(live, "TemplateItems", [kinds["template"]])
    stamps |= touch(live, "StockItem", [kinds["variant"], kinds["kit"], kinds["simple"]])
    async with clean_db() as session, session.begin():  # the connector synced only the simple item
        outcome = syncrecords.Outcome(kinds["simple"], SyncStatus.PROCESSED, "create", rithum_id="5001")
        await syncrecords.save(session, "product", [outcome])

    page = listing(live, **{"from": "2025-01-01T00:00:00Z"})  # every seeded stamp lies in 2024

    assert page["source"] == "acumatica" and page["total"] is None and page["has_more"] is False
    items = {item["key"]: item for item in page["items"]}
    assert set(items) == set(kinds.values()) and page["items"][0]["key"] == kinds["template"]
    for kind, key in kinds.items():
        item = items[key]
        assert item["kind"] == kind
        assert parse_datetime(item["modified_at"]) == stamps[key]
        assert item["description"] and item["item_class"] and item["item_status"] == "Active"
    assert items[kinds["variant"]]["template_id"]
    synced = items[kinds["simple"]]
    assert synced["status"] == "Processed" and synced["rithum_id"] == "5001"
    assert synced["last_operation"] == "create" and synced["attempt_count"] == 0 and synced["updated_at"]
    for key in (kinds["template"], kinds["variant"], kinds["kit"]):  # never synced: listed, without a state
        never = items[key]
        assert never["status"] is None and never["rithum_id"] is None and never["attempt_count"] is None
        assert never["updated_at"] is None and never["last_error"] is None

    def logged() -> list[dict[str, Any]]:  # the ingress's Acumatica calls are audited like the consumers'
        with live.api() as api:
            params = {"system": "acumatica", "entity": "product", "limit": 1000}
            rows = api.get("/api/v1/request-logs", params=params).raise_for_status().json()["items"]
        return [r for r in rows if "/StockItem?" in r["url"] and "$select=" in r["url"]]

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged()


def test_the_range_is_from_inclusive_to_exclusive(live: Live) -> None:
    since, until = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)
    want = expected(live, since, until)
    assert 0 < len(want) < SEED_ITEMS
    assert page_through(live, 1000, **window(since, until)) == want
    assert page_through(live, 1000, **window(None, until)) == expected(live, None, until)
    assert page_through(live, 1000, **window(since, None)) == expected(live, since, None)

    item = sandbox_records(live, "StockItem")[10]
    at = stamp(item)
    assert item["InventoryID"] in page_through(live, 1000, **window(at, at + timedelta(milliseconds=1)))
    assert item["InventoryID"] not in page_through(live, 1000, **window(at - timedelta(days=1), at))
    assert item["InventoryID"] in page_through(live, 1000, **window(at - timedelta(days=1), at + timedelta(days=1)))


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_paging_returns_every_candidate_once_across_the_template_boundary(live: Live, limit: int) -> None:
    everything = expected(live)
    assert len(everything) == SEED_ITEMS + 4
    assert page_through(live, limit) == everything
    since, until = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 11, 1, tzinfo=UTC)
    assert page_through(live, limit, **window(since, until)) == expected(live, since, until)


def test_pages_that_straddle_or_follow_the_templates(live: Live) -> None:
    everything = expected(live)
    templates = len(sandbox_records(live, "TemplateItems"))

    def keys(offset: int, limit: int) -> tuple[list[str], bool]:
        page = listing(live, offset=offset, limit=limit)
        return [i["key"] for i in page["items"]], page["has_more"]

    straddling, more = keys(templates - 2, 5)  # two templates, then three stock items
    assert straddling == everything[templates - 2 : templates + 3] and more
    assert [i["kind"] == "template" for i in listing(live, offset=templates - 2, limit=5)["items"]] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert keys(templates, 4) == (everything[templates : templates + 4], True)  # first stock items
    assert keys(templates + 3, 4) == (everything[templates + 3 : templates + 7], True)  # templates counted
    assert keys(len(everything) - 2, 5) == (everything[-2:], False)
    assert keys(len(everything) - 5, 5) == (everything[-5:], False)  # full last page, nothing more
    assert keys(len(everything) + 10, 5) == ([], False)


# Refused requests ------------------------------------------------------------------------------------


async def test_status_filter_live_source_elsewhere_and_bad_ranges_are_422(live: Live, clean_db: Sessions) -> None:
    async with clean_db() as session, session.begin():
        outcome = syncrecords.Outcome("AP000001", SyncStatus.FAILED, "update", error="boom")
        await syncrecords.save(session, "product", [outcome])
    with live.api() as api:
        for params in ({"status": "Failed"}, {"status": "Failed", "source": "acumatica"}):
            response = api.get(RECORDS, params=params)
            assert response.status_code == 422 and "source=connector" in response.json()["error"]
        response = api.get("/api/v1/entities/category/records", params={"source": "acumatica"})
        assert response.status_code == 422 and "only for product" in response.json()["error"]
        assert api.get(RECORDS, params={"source": "erp"}).status_code == 422
        response = api.get(RECORDS, params={"from": "2024-01-01T00:00:00"})
        assert response.status_code == 422 and "time zone" in response.json()["error"]
        response = api.get(RECORDS, params={"from": "2024-05-01T00:00:00Z", "to": "2024-05-01T00:00:00Z"})
        assert response.status_code == 422 and "earlier" in response.json()["error"]

        # the connector's own records still filter by status, and are the default elsewhere
        page = api.get(RECORDS, params={"source": "connector", "status": "Failed"}).json()
        assert page["source"] == "connector" and page["total"] == 1 and page["has_more"] is False
        assert page["items"][0]["key"] == "AP000001" and page["items"][0]["last_error"] == "boom"
        page = api.get("/api/v1/entities/category/records").json()
        assert page["source"] == "connector" and page["total"] == 0

    response = process_all(live, source="acumatica", status="Failed")
    assert response.status_code == 422 and "source=connector" in response.json()["error"]
    response = process_all(live, "category", source="acumatica")
    assert response.status_code == 422 and "only for product" in response.json()["error"]


# Process All ---------------------------------------------------------------------------------------


async def test_process_all_from_acumatica_is_a_date_range_job(live: Live, clean_db: Sessions) -> None:
    since, until = "2024-03-01T00:00:00Z", "2024-09-01T00:00:00Z"
    response = process_all(live, source="acumatica", **{"from": since, "to": until})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["mode"] == "custom" and body["source"] == "acumatica"
    created = job(live, body["job_id"])
    assert created["entity"] == "product" and created["mode"] == "custom" and created["status"] == "queued"
    assert parse_datetime(created["from"]) == parse_datetime(since)
    assert parse_datetime(created["to"]) == parse_datetime(until)

    before = datetime.now(UTC)
    response = process_all(live, **{"from": since})  # source defaults to acumatica; `to` is now
    assert response.status_code == 202, response.text
    created = job(live, response.json()["job_id"])
    assert created["mode"] == "custom" and parse_datetime(created["from"]) == parse_datetime(since)
    assert before - timedelta(seconds=5) <= parse_datetime(created["to"]) <= datetime.now(UTC) + timedelta(seconds=5)

    response = process_all(live, source="acumatica")  # no range: everything
    assert response.status_code == 202, response.text
    created = job(live, response.json()["job_id"])
    assert created["mode"] == "full" and created["from"] is None and created["to"] is None

    # the connector's records: a job over their keys, as before
    assert process_all(live, source="connector").status_code == 422  # nothing recorded yet
    async with clean_db() as session, session.begin():
        await syncrecords.save(session, "product", [syncrecords.Outcome("AP000001", SyncStatus.FAILED, "update")])
    response = process_all(live, source="connector", status="Failed")
    assert response.status_code == 202, response.text
    assert response.json()["keys"] == 1 and job(live, response.json()["job_id"])["mode"] == "selected"


# Acumatica trouble and its session ------------------------------------------------------------------


def test_acumatica_unreachable_is_503_json(live: Live) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with ingress_process(live.settings, nobody) as (url, _), live.api(url) as api:
        response = api.get(RECORDS)
        assert response.status_code == 503
        assert response.json()["detail"].startswith("Acumatica: unreachable")
        assert response.json()["error"] == response.json()["detail"]
        # Process All from Acumatica needs no call to it: the job enumerates later
        assert api.post(f"{RECORDS}/process-all", json={"source": "acumatica"}).status_code == 202


def test_acumatica_refusing_the_sign_in_is_502_without_the_password(live: Live) -> None:
    password = "wrong-password-4242"
    with ingress_process(live.settings, live.acumatica, ACUMATICA_PASSWORD=password) as (url, _):
        with live.api(url) as api:
            response = api.get(RECORDS)
    assert response.status_code == 502
    assert response.json()["detail"].startswith("Acumatica: sign-in refused")
    assert password not in response.text


def test_acumatica_over_its_limits_is_503(live: Live) -> None:
    with live.acu() as acu:
        acu.patch("/faults", json={"burst_429": 10, "retry_after": 0}).raise_for_status()
    with live.api() as api:
        response = api.get(RECORDS)
    assert response.status_code == 503 and "429" in response.json()["detail"]
    with live.acu() as acu:
        acu.patch("/faults", json={"burst_429": 0}).raise_for_status()
    assert listing(live, limit=1)["items"]  # and back once Acumatica is


def test_the_session_is_taken_on_first_listing_and_given_back_on_shutdown(live: Live) -> None:
    def sessions() -> int:
        with live.acu() as acu:
            return acu.get("/stats").raise_for_status().json()["sessions"]

    listing(live, limit=1)  # the module's ingress holds its session
    held = sessions()
    with ingress_process(live.settings, live.acumatica) as (url, proc), live.api(url) as api:
        api.get(RECORDS, params={"source": "connector"}).raise_for_status()
        assert sessions() == held  # started and served the connector's list without signing in
        api.get(RECORDS, params={"limit": 1}).raise_for_status()
        assert sessions() == held + 1
        stop(proc)
        assert sessions() == held  # signed out on shutdown
