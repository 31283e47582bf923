"""RithumClient against the sandbox over real HTTP: paging, SKU lookup, $batch, token expiry, 429s."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.requestlog import RequestLog
from shared.rithum import batch
from shared.rithum.batch import BatchRequest
from shared.rithum.client import CallBudget, RithumClient
from shared.rithum.errors import RithumNotFound, RithumRejected
from tests.rithum.conftest import Admin


async def test_paging_5k_products_follows_next_links(
    client: RithumClient, admin: Admin, request_log: RequestLog
) -> None:
    await admin.seed_products(5000, prefix="PG-")
    await admin.call("DELETE", "/stats")
    skus = [p["Sku"] async for p in client.iterate_products(select=("ID", "Sku"))]
    assert len(skus) == 5000 and len(set(skus)) == 5000
    assert skus[0] == "PG-000001" and skus[-1] == "PG-005000"
    stats = await admin.stats()
    assert stats["by_kind"]["products.list"] == 50  # pages of 100
    urls = [e.url for e in request_log.entries if e.system == "rithum" and "/v1/Products" in e.url]
    assert "$skip" not in urls[0] and all("$skip=" in u for u in urls[1:])


async def test_find_product_ids_asks_in_groups_of_twenty(client: RithumClient, admin: Admin) -> None:
    await admin.seed_products(40, prefix="LK-")
    product = await client.create_product({"Sku": "O'Brien-1", "Title": "apostrophe"})
    wanted = [f"LK-{n:06d}" for n in range(1, 41)] + ["O'Brien-1", "MISSING-1"]
    await admin.call("DELETE", "/stats")
    found = await client.find_product_ids(wanted)
    assert len(found) == 41 and "MISSING-1" not in found
    assert found["O'Brien-1"] == product["ID"] and found["LK-000001"] == 1
    assert (await admin.stats())["by_kind"]["products.list"] == 3


async def test_batch_returns_a_result_per_request_in_order(client: RithumClient, admin: Admin) -> None:
    first = await client.create_product({"Sku": "BT-1", "Title": "one"})
    second = await client.create_product({"Sku": "BT-2", "Title": "two"})
    requests = [
        batch.update_quantity(first["ID"], {1: 5, 2: 3}),
        batch.update_quantity(99999, {1: 1}),
        batch.update_product(second["ID"], {"Title": "x" * 121}),
        batch.update_attributes(second["ID"], {"Color": "Blue"}),
        batch.create_product({"Sku": "BT-1"}),
        batch.create_product({"Sku": "BT-3", "Title": "three"}),
        BatchRequest("GET", f"Products({first['ID']})?$select=Sku,TotalAvailableQuantity"),
        BatchRequest("POST", "Orders(1)/Export"),
    ]
    with pytest.raises(ValueError, match="Export"):
        await client.batch(requests)
    await admin.call("DELETE", "/stats")
    results = await client.batch(requests[:-1])
    assert [r.status for r in results] == [204, 404, 400, 204, 409, 201, 200]
    assert [r.request for r in results] == requests[:-1]
    assert "Title must be at most 120" in results[2].message
    assert "already exists" in results[4].message
    assert results[5].body["Sku"] == "BT-3"
    assert results[6].body == {
        "@odata.context": results[6].body["@odata.context"],
        "Sku": "BT-1",
        "TotalAvailableQuantity": 8,
    }
    stats = await admin.stats()
    assert stats["by_kind"]["batch"] == 1 and stats["api_calls"] == 8  # the batch and each of its 7 parts
    stored = await admin.product("BT-2")
    assert stored["Attributes"][0]["Value"] == "Blue" and stored["Title"] == "two"


def _raw_batch(request_lines: list[str]) -> tuple[str, bytes]:
    """A `$batch` body built by hand, for requests the client's builder refuses to send."""
    parts = "".join(
        f"--b-1\r\nContent-Type: application/http\r\nContent-ID: {n}\r\n\r\n{line} HTTP/1.1\r\n\r\n"
        for n, line in enumerate(request_lines, 1)
    )
    return "multipart/mixed; boundary=b-1", (parts + "--b-1--\r\n").encode()


async def test_export_inside_a_batch_fails_only_that_part(api: httpx.AsyncClient, admin: Admin) -> None:
    order_id = (await admin.seed_orders(1))[0]
    requests = [BatchRequest("POST", f"Orders({order_id})/Export"), BatchRequest("GET", "DistributionCenters")]
    content_type, body = _raw_batch([f"POST /v1/Orders({order_id})/Export", "GET DistributionCenters"])
    response = await api.post("/v1/$batch", content=body, headers={"Content-Type": content_type})
    results = batch.parse(response.headers["content-type"], response.content, requests)
    assert results[0].status == 400 and "not supported inside a $batch" in results[0].message
    assert results[1].status == 200 and [dc["Code"] for dc in results[1].body["value"]] == [
        "MAIN",
        "EAST",
        "WEST",
        "FBA",
    ]
    assert (await admin.call("GET", f"/orders/{order_id}"))["_exported_by"] == []

    content_type, body = _raw_batch(["GET DistributionCenters"] * 101)
    refused = await api.post("/v1/$batch", content=body, headers={"Content-Type": content_type})
    assert refused.status_code == 400 and "at most 100" in refused.json()["error"]["message"]


async def test_large_batches_are_split_and_failed_parts_repeated(client: RithumClient, admin: Admin) -> None:
    await admin.seed_products(150, prefix="SP-")
    await admin.faults(error_rate=0.2)  # the sandbox's random draws repeat after each reset
    updates = [batch.update_quantity(n, {1: n}, "Absolute") for n in range(1, 151)]
    creates = [batch.create_product({"Sku": f"NEW-{n}"}) for n in range(20)]
    results = await client.batch(updates + creates)
    await admin.faults(error_rate=0)
    assert all(r.status == 204 for r in results[:150])  # idempotent parts were repeated until they went through
    create_statuses = {r.status for r in results[150:]}
    assert create_statuses <= {201, 500} and 500 in create_statuses  # POST creates are never repeated
    assert (await admin.product("SP-000150"))["TotalAvailableQuantity"] == 150
    assert (await admin.stats())["by_kind"]["batch"] >= 3


async def test_budget_charges_every_batch_part() -> None:
    budget = CallBudget(2000)
    content_type, body = batch.build([BatchRequest("GET", "DistributionCenters")] * 100, "http://x")
    await budget.charge(
        httpx.Request("POST", "http://x/v1/$batch", content=body, headers={"Content-Type": content_type})
    )
    await budget.charge(httpx.Request("GET", "http://x/v1/Products"))
    assert budget.charged == 102


async def test_a_token_expiring_mid_run_is_refreshed_once(client: RithumClient, admin: Admin) -> None:
    await admin.seed_products(450, prefix="TK-")
    seen = []
    async for product in client.iterate_products(select=("ID",)):
        seen.append(product["ID"])
        if len(seen) == 150:
            await admin.faults(expire_tokens=True)
    assert seen == list(range(1, 451))
    assert client.tokens.refreshes == 2
    assert (await admin.stats())["by_status"]["401"] == 1


async def test_429_bursts_and_5xx_are_retried(client: RithumClient, admin: Admin, request_log: RequestLog) -> None:
    await admin.faults(burst_429=2, retry_after=1)
    centers = await client.distribution_centers()
    assert [dc["Code"] for dc in centers] == ["MAIN", "EAST", "WEST", "FBA"]
    statuses = [e.status for e in request_log.entries if e.url.endswith("/v1/DistributionCenters")]
    assert statuses == [429, 429, 200]

    await admin.faults(outage=True)
    task = asyncio.create_task(client.get_product(1))
    await asyncio.sleep(0.3)
    await admin.faults(outage=False)
    with pytest.raises(RithumNotFound, match="No Product with ID 1"):
        await task


async def test_errors_carry_rithum_messages_and_secrets_stay_out_of_the_log(
    client: RithumClient, request_log: RequestLog
) -> None:
    with pytest.raises(RithumRejected, match="Sku must be at most 50 characters") as caught:
        await client.create_product({"Sku": "Z" * 60})
    assert caught.value.status == 400
    logged = " ".join(f"{e.url} {e.request_excerpt} {e.response_excerpt}" for e in request_log.entries)
    assert "/oauth2/token" in logged
    assert "sandbox-refresh" not in logged and "sandbox-secret" not in logged
    assert await client.tokens.get() not in logged
