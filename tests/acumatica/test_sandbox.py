"""Sandbox behaviour over raw HTTP: auth, queries, upserts, actions, license limits, seeding."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from shared.acumatica.values import attribute, unwrap

from .conftest import API, Admin


async def test_sessions_cookie_oauth_and_the_api_user_limit(admin: Admin, sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        denied = await http.get(f"{API}/ItemClass")
        assert denied.status_code == 401
        assert "not logged in" in denied.json()["exceptionMessage"]
        bad = await http.post("/entity/auth/login", json={"name": "admin", "password": "nope", "tenant": "Company"})
        assert bad.status_code == 401
        assert (await http.post("/entity/auth/login", json={"name": "admin", "password": "admin"})).status_code == 204
        assert (await http.get(f"{API}/ItemClass")).status_code == 200
        assert (await http.post("/entity/auth/logout")).status_code == 204
        assert (await http.get(f"{API}/ItemClass")).status_code == 401

        form = {"client_id": "sandbox-client@Company", "client_secret": "sandbox-client-secret"}
        grant = {
            **form,
            "grant_type": "password",
            "username": "admin",
            "password": "admin",
            "scope": "api offline_access",
        }
        tokens = (await http.post("/identity/connect/token", data=grant)).json()
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await http.get(f"{API}/ItemClass", headers=bearer)).status_code == 200
        refresh = {**form, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        renewed = (await http.post("/identity/connect/token", data=refresh)).json()
        assert renewed["refresh_token"] != tokens["refresh_token"]
        reused = await http.post("/identity/connect/token", data=refresh)
        assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
        wrong = await http.post("/identity/connect/token", data={**grant, "client_secret": "x"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")

        await admin.knobs(max_sessions=2)  # the two access tokens above are the two API users
        full = await http.post("/entity/auth/login", json={"name": "admin", "password": "admin"})
        assert full.status_code == 429 and "API Login Limit" in full.json()["exceptionMessage"]


async def test_session_idle_timeout(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.knobs(session_ttl=0.5)
    assert (await session.get(f"{API}/Warehouse")).status_code == 200
    await asyncio.sleep(0.6)
    assert (await session.get(f"{API}/Warehouse")).status_code == 401


async def test_filters(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(500)
    records = await admin.records("StockItem", limit=1000)

    async def ids(expression: str, **extra: str) -> set[str]:
        reply = await session.get(f"{API}/StockItem", params={"$filter": expression, "$select": "InventoryID", **extra})
        assert reply.status_code == 200, reply.text
        return {row["InventoryID"]["value"] for row in reply.json()}

    def where(test: Callable[[dict[str, Any]], Any]) -> set[str]:
        return {r["InventoryID"] for r in records if test(r)}

    assert await ids("ItemClass eq 'misc'") == where(lambda r: r["ItemClass"] == "MISC")  # case-insensitive
    assert await ids("DefaultPrice ge 100.5 and DefaultPrice lt 120") == where(
        lambda r: 100.5 <= r["DefaultPrice"] < 120
    )
    assert await ids("ItemClass eq 'BOOKS' or (IsAKit eq true and ItemClass ne 'TOYS')") == where(
        lambda r: r["ItemClass"] == "BOOKS" or (r["IsAKit"] and r["ItemClass"] != "TOYS")
    )
    assert await ids("LastModified le datetimeoffset'2024-02-01T00:00:00.000+00:00'") == where(
        lambda r: r["LastModified"] <= "2024-02-01T00:00:00.000+00:00"
    )
    assert await ids("cf.String(f='ItemSettings.AttributeACTIVERITHUM') eq '0'") == where(
        lambda r: attribute(r, "ACTIVERITHUM") == "0"
    )
    assert await ids("TemplateItemID ne null and substringof('-RED-', InventoryID)") == where(
        lambda r: r.get("TemplateItemID") and "-RED-" in r["InventoryID"]
    )
    assert await ids("startswith(InventoryID, 'BK') and not (DefaultPrice gt 50)") == where(
        lambda r: r["InventoryID"].startswith("BK") and not r["DefaultPrice"] > 50
    )
    assert await ids("ItemClass eq 'O''Brien'") == set()
    page = await session.get(f"{API}/StockItem", params={"$filter": "ItemClass eq 'HOME'", "$top": "5", "$skip": "5"})
    home = [r["InventoryID"] for r in records if r["ItemClass"] == "HOME"]
    assert [row["InventoryID"]["value"] for row in page.json()] == home[5:10]

    for bad, message in [
        ("Colour eq 'RED'", "Invalid field name 'Colour'"),
        ("ItemClass eq", "expected more input"),
        ("LastModified gt datetimeoffset'yesterday'", "invalid datetimeoffset literal"),
    ]:
        reply = await session.get(f"{API}/StockItem", params={"$filter": bad})
        assert reply.status_code == 400 and message in reply.json()["exceptionMessage"]
    reply = await session.get(f"{API}/StockItem", params={"$top": "-1"})
    assert reply.status_code == 400


async def test_select_expand_and_custom(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(200)
    template = (await admin.records("TemplateItems", limit=1))[0]
    plain = (await session.get(f"{API}/TemplateItems/{template['InventoryID']}")).json()
    assert "Matrix" not in plain and "Attributes" not in plain and plain["custom"] == {}
    assert plain["LastModified"]["value"] == template["LastModified"]
    reply = await session.get(
        f"{API}/TemplateItems/{template['InventoryID']}",
        params={
            "$expand": "Matrix,Attributes",
            "$select": "InventoryID,Matrix/InventoryID,Attributes/Value",
            "$custom": "ItemSettings.AttributeALLOWFBA",
        },
    )
    body = reply.json()
    assert set(body) == {"id", "rowNumber", "InventoryID", "Matrix", "Attributes", "custom"}
    variants = [
        r for r in await admin.records("StockItem", limit=1000) if r.get("TemplateItemID") == template["InventoryID"]
    ]
    assert [m["InventoryID"]["value"] for m in body["Matrix"]] == [v["InventoryID"] for v in variants]
    assert all(set(m) == {"id", "rowNumber", "InventoryID"} for m in body["Matrix"])
    assert all(set(a) == {"id", "rowNumber", "Value"} for a in body["Attributes"])
    allow = attribute(template, "ALLOWFBA")
    assert body["custom"] == {"ItemSettings": {"AttributeALLOWFBA": {"type": "CustomStringField", "value": allow}}}
    customer = (await session.get(f"{API}/Customer/C000001", params={"$expand": "MainContact/Address"})).json()
    assert customer["MainContact"]["Address"]["City"] == {"value": "Portland"}
    by_id = await session.get(f"{API}/Customer/{customer['id']}")
    assert by_id.json()["CustomerID"] == {"value": "C000001"}


async def test_put_upserts_with_preconditions_and_field_errors(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(20)
    body = {"CustomerID": {"value": "WEB0001"}, "CustomerName": {"value": "Web Buyer"}}
    created = await session.put(f"{API}/Customer", json=body, headers={"If-None-Match": "*"})
    assert created.status_code == 200
    again = await session.put(f"{API}/Customer", json=body, headers={"If-None-Match": "*"})
    assert again.status_code == 412
    missing = await session.put(
        f"{API}/Customer", json={**body, "CustomerID": {"value": "NOPE"}}, headers={"If-Match": "*"}
    )
    assert missing.status_code == 412
    renamed = await session.put(
        f"{API}/Customer", json={**body, "CustomerName": {"value": "Renamed"}}, headers={"If-Match": "*"}
    )
    assert renamed.json()["CustomerName"] == {"value": "Renamed"}
    assert renamed.json()["LastModifiedDateTime"]["value"] > created.json()["LastModifiedDateTime"]["value"]

    order = {
        "CustomerID": {"value": "NOBODY"},
        "CustomerOrder": {"value": "X" * 41},
        "Details": [{"InventoryID": {"value": "AP000001"}, "OrderQty": {"value": 0}}],
    }
    rejected = await session.put(f"{API}/SalesOrder", json=order)
    assert rejected.status_code == 422
    errors = rejected.json()
    assert errors["CustomerID"] == {"value": "NOBODY", "error": "'Customer' cannot be found in the system."}
    assert errors["CustomerOrder"]["error"] == "'Customer Order' is longer than 40 characters."
    assert errors["Details"][0]["OrderQty"]["error"] == "'Order Qty' must be greater than 0."
    assert "raised at least one error" in errors["error"]
    assert (await admin.stats())["records"]["SalesOrder"] == 0

    unknown = await session.put(f"{API}/StockItem", json={"InventoryID": {"value": "X"}, "Colour": {"value": "RED"}})
    assert unknown.status_code == 400 and "Colour" in unknown.json()["exceptionMessage"]
    assert (await session.put(f"{API}/StockItem", content=b"{not json")).status_code == 400


async def test_details_merge_and_delete(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(20)
    first = {"CustomerID": {"value": "C000001"}, "Details": [{"InventoryID": {"value": "AP000001"}}]}
    order = (await session.put(f"{API}/SalesOrder", params={"$expand": "Details"}, json=first)).json()
    line = order["Details"][0]
    assert (line["LineNbr"]["value"], line["OrderQty"]["value"]) == (1, 1.0)
    update = {
        "OrderType": {"value": "SO"},
        "OrderNbr": order["OrderNbr"],
        "Details": [{"id": line["id"], "OrderQty": {"value": 3}}, {"InventoryID": {"value": "HM000002"}}],
    }
    updated = (await session.put(f"{API}/SalesOrder", params={"$expand": "Details"}, json=update)).json()
    assert [(d["LineNbr"]["value"], d["OrderQty"]["value"]) for d in updated["Details"]] == [(1, 3.0), (2, 1.0)]
    removal = {
        "OrderType": {"value": "SO"},
        "OrderNbr": order["OrderNbr"],
        "Details": [{"id": line["id"], "delete": True}],
    }
    trimmed = (await session.put(f"{API}/SalesOrder", params={"$expand": "Details"}, json=removal)).json()
    assert [d["InventoryID"]["value"] for d in trimmed["Details"]] == ["HM000002"]
    nbr = quote(order["OrderNbr"]["value"])
    assert (await session.delete(f"{API}/SalesOrder/SO/{nbr}")).status_code == 204
    assert (await session.get(f"{API}/SalesOrder/SO/{nbr}")).status_code == 404


async def test_actions_answer_202_and_are_polled(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(20)
    await admin.knobs(action_delay_ms=150)
    order = (await session.put(f"{API}/SalesOrder", json={"CustomerID": {"value": "C000003"}})).json()
    keys = {"entity": {"OrderType": {"value": "SO"}, "OrderNbr": order["OrderNbr"]}}
    started = await session.post(f"{API}/SalesOrder/CancelSalesOrder", json=keys)
    assert started.status_code == 202
    location = started.headers["Location"]
    assert (await session.get(location)).status_code == 202
    await asyncio.sleep(0.25)
    assert (await session.get(location)).status_code == 204
    canceled = await session.get(f"{API}/SalesOrder/SO/{order['OrderNbr']['value']}")
    assert canceled.json()["Status"] == {"value": "Canceled"}

    again = await session.post(f"{API}/SalesOrder/CancelSalesOrder", json=keys)
    await asyncio.sleep(0.25)
    failed = await session.get(again.headers["Location"])
    assert failed.status_code == 500 and "cannot be canceled in status 'Canceled'" in failed.json()["exceptionMessage"]
    assert (await session.post(f"{API}/SalesOrder/Explode", json=keys)).status_code == 404


async def test_per_minute_budget_delays_then_declines(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.knobs(requests_per_minute=4, window_seconds=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asyncio.gather(*(session.get(f"{API}/Warehouse") for _ in range(8)))
    elapsed = loop.time() - started
    assert Counter(r.status_code for r in replies) == {200: 4, 429: 4}
    declined = next(r for r in replies if r.status_code == 429)
    assert declined.headers["Retry-After"] == "1"
    assert "exceeded the limit imposed by the license" in declined.json()["exceptionMessage"]
    # Past half the budget each request waits remaining-time / remaining-requests: the last one the whole rest.
    assert elapsed >= 0.8


async def test_concurrency_queue_declines_overflow(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.knobs(concurrent_requests=2, queue_limit=3, latency_ms=500)
    replies = await asyncio.gather(*(session.get(f"{API}/Warehouse") for _ in range(8)))
    assert Counter(r.status_code for r in replies) == {200: 5, 429: 3}  # 2 run, 3 wait, 3 declined
    assert (await admin.stats())["declined_429"] == 3


async def test_error_rate_fault(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.knobs(error_rate=1.0)
    reply = await session.get(f"{API}/Warehouse")
    assert reply.status_code == 500 and "Injected fault" in reply.json()["exceptionMessage"]
    assert (await admin.call("PATCH", "/faults", {"error_rate": 0}))["error_rate"] == 0
    bad = await admin.http.patch("/faults", json={"error_rate": 2})
    assert bad.status_code == 422


async def test_seeded_catalogue_mix(admin: Admin) -> None:
    counts = await admin.seed(2000, random_seed=7)
    assert counts["StockItem"] == 2000
    items = await admin.records("StockItem", limit=5000)
    kits = [i for i in items if i["IsAKit"]]
    variants = [i for i in items if i.get("TemplateItemID")]
    misc = [i for i in items if i["ItemClass"] == "MISC"]
    inactive = [i for i in items if attribute(i, "ACTIVERITHUM") == "0"]
    assert (len(kits), len(variants), len(misc) + len(inactive)) == (200, 300, 100)
    assert all(attribute(i, "ACTIVERITHUM") == "1" for i in misc)
    assert 0 < sum(attribute(i, "ALLOWFBA") == "1" for i in items) < len(items)
    assert all(i["DefaultPrice"] > 0 and i["Categories"] for i in items)
    assert {i["ItemClass"] for i in items} == {"APPAREL", "ELECTRONICS", "TOYS", "HOME", "BOOKS", "MISC"}
    ids = {i["InventoryID"] for i in items}
    specs = await admin.records("KitSpecification", limit=5000)
    assert {s["KitInventoryID"] for s in specs} == {k["InventoryID"] for k in kits}
    assert all(c["StockInventoryID"] in ids for s in specs for c in s["StockComponents"])
    templates = await admin.records("TemplateItems", limit=5000)
    assert {v["TemplateItemID"] for v in variants} == {t["InventoryID"] for t in templates}
    assert all({"COLOR", "SIZE"} <= {a["AttributeID"] for a in v["Attributes"]} for v in variants)
    stock = await admin.records("InventoryQuantityAvailable", limit=10_000)
    assert {s["InventoryID"] for s in stock if s["WarehouseID"] == "MAIN"} == ids
    assert {s["WarehouseID"] for s in stock} == {"MAIN", "EAST", "WEST"}
    categories = await admin.records("ItemSalesCategory")
    assert {c["CategoryID"] for i in items for c in i["Categories"]} <= {c["CategoryID"] for c in categories}
    assert counts["Customer"] >= 5 and counts["ShipVia"] >= 3

    await admin.seed(2000, random_seed=8)
    assert await admin.records("StockItem", limit=5) != items[:5]
    await admin.seed(2000, random_seed=7)
    assert await admin.records("StockItem", limit=5000) == items  # deterministic per random seed


async def test_stats_count_calls_per_method_and_entity(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.call("DELETE", "/stats")
    await session.get(f"{API}/ItemClass")
    await session.get(f"{API}/ItemClass/APPAREL")
    await session.put(f"{API}/Warehouse", json={"WarehouseID": {"value": "NORTH"}})
    stats = await admin.stats()
    assert stats["requests"] == {"GET ItemClass": 2, "PUT Warehouse": 1}
    assert stats["total"] == 3
    assert unwrap((await session.get(f"{API}/Warehouse/NORTH")).json())["WarehouseID"] == "NORTH"
