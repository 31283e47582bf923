"""Product list paging in the Rithum sandbox: nextLink pages walk the matches of the first page.

The connector lists `UpdateDateUtc ge <feed start>` after every feed file while other writes go on;
each product the first page matched must come exactly once, and a continuation that is no longer
kept must be refused clearly rather than answered with something else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.sandbox.rithum.catalog import MAX_SNAPSHOTS
from tests.rithum.conftest import Admin


def _literal(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _ids(api: httpx.AsyncClient, expression: str) -> list[int]:
    """Every ID a filter matches, read along the nextLinks."""
    url: str | None = "/v1/Products"
    params: dict[str, str] | None = {"$filter": expression, "$select": "ID"}
    found: list[int] = []
    while url:
        body = (await api.get(url, params=params)).json()
        found += [p["ID"] for p in body["value"]]
        url, params = body.get("@odata.nextLink"), None
    return found


async def test_next_links_list_each_match_once_while_products_change(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.seed_products(400, prefix="PW-")
    await asyncio.sleep(0.01)  # stamps are milliseconds: keep the seeded ones strictly before the cutoff
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    window = list(range(101, 351))  # 250 products: three pages
    for product_id in window:
        assert (await api.patch(f"/v1/Products({product_id})", json={"Title": "in the window"})).status_code == 204

    params = {"$filter": f"UpdateDateUtc ge {_literal(cutoff)}", "$select": "ID,Sku,UpdateDateUtc,Title"}
    first = (await api.get("/v1/Products", params={**params, "$count": "true"})).json()
    assert first["@odata.count"] == 250 and len(first["value"]) == 100
    assert "$skip=100" in first["@odata.nextLink"] and "$skiptoken=" in first["@odata.nextLink"]

    # between pages: products already listed and still to come change, products outside the window
    # start matching, a product still to come is deleted and new products are created
    for product_id in (101, 250, 300, 5, 390):
        await api.patch(f"/v1/Products({product_id})", json={"Title": "changed between pages"})
    assert (await api.delete("/v1/Products(320)")).status_code == 204
    for n in range(3):
        await api.post("/v1/Products", json={"Sku": f"PW-NEW-{n}", "Title": "created between pages"})

    rows: list[dict[str, Any]] = list(first["value"])
    link = first.get("@odata.nextLink")
    while link:
        page = (await api.get(link)).json()
        rows += page["value"]
        link = page.get("@odata.nextLink")
        await api.patch("/v1/Products(1)", json={"Title": "another write"})
    ids = [row["ID"] for row in rows]
    assert ids == [i for i in window if i != 320]  # each once, in ID order; later matches are not added
    assert next(row for row in rows if row["ID"] == 300)["Title"] == "changed between pages"  # current data

    # a new first page sees the catalogue as it is now
    assert await _ids(api, params["$filter"]) == [1, 5, *(i for i in window if i != 320), 390, 401, 402, 403]


async def test_update_date_bounds_answer_what_a_scan_answers(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.seed_products(150, prefix="UB-")
    for product_id in (140, 7, 99, 150, 7):
        await asyncio.sleep(0.005)  # a stamp of its own for each write (stamps are milliseconds)
        await api.patch(f"/v1/Products({product_id})", json={"Title": "touched"})
    stamps = (await api.get("/v1/Products", params={"$filter": "ID eq 99", "$select": "UpdateDateUtc"})).json()
    boundary = stamps["value"][0]["UpdateDateUtc"]
    earliest = _literal(datetime.now(UTC) - timedelta(days=1))
    for bound in (f"ge {boundary}", f"gt {boundary}", f"ge {earliest}", f"lt {boundary}"):
        indexed = await _ids(api, f"UpdateDateUtc {bound}")
        scanned = await _ids(api, f"UpdateDateUtc {bound} or Sku eq 'no such sku'")
        assert indexed == scanned, bound
    assert await _ids(api, f"UpdateDateUtc ge {boundary}") == [7, 99, 150]
    assert await _ids(api, f"UpdateDateUtc gt {boundary}") == [7, 150]
    assert await _ids(api, f"UpdateDateUtc ge {boundary} and Title eq 'touched' and ID lt 100") == [7, 99]


async def test_unknown_expired_or_foreign_skiptokens_are_refused(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.seed_products(150, prefix="TK-")
    unknown = await api.get("/v1/Products", params={"$skip": "100", "$skiptoken": "no-such-token"})
    assert unknown.status_code == 400
    assert "$skiptoken 'no-such-token' is unknown or has expired" in unknown.json()["error"]["message"]

    oldest = (await api.get("/v1/Products", params={"$select": "ID"})).json()["@odata.nextLink"]
    assert (await api.get(oldest)).status_code == 200
    token = oldest.rpartition("$skiptoken=")[2]
    foreign = await api.get("/v1/Products", params={"$filter": "ID gt 0", "$skip": "100", "$skiptoken": token})
    assert foreign.status_code == 400 and "another $filter" in foreign.json()["error"]["message"]

    for _ in range(MAX_SNAPSHOTS):  # each first page keeps its matches; the oldest kept goes
        assert "@odata.nextLink" in (await api.get("/v1/Products", params={"$select": "Sku"})).json()
    expired = await api.get(oldest)
    assert expired.status_code == 400 and "unknown or has expired" in expired.json()["error"]["message"]

    orders = await api.get("/v1/Orders", params={"$skiptoken": token})
    assert orders.status_code == 400 and "'$skiptoken' is not supported" in orders.json()["error"]["message"]
