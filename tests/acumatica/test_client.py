"""The Acumatica client against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from shared.acumatica import filters as F
from shared.acumatica.client import AcumaticaClient
from shared.acumatica.errors import NotFound, PreconditionFailed, ValidationError
from shared.acumatica.models import SalesOrder, Shipment, StockItem
from shared.acumatica.values import attribute, custom_field, parse_datetime
from shared.requestlog import RequestLog
from shared.settings import Settings

from .conftest import Admin


async def test_iterate_pages_through_10k_items(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(10_000)
    ids = [item["InventoryID"] async for item in client.iterate("StockItem", select="InventoryID", page_size=1000)]
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000
    stats = await admin.stats()
    assert stats["requests"]["GET StockItem"] == 11  # ten full pages and the empty one that ends the walk


async def test_delta_filter_returns_exactly_the_changed_records(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(300)
    items = await client.list(StockItem, select=["InventoryID", "ItemClass", "LastModified"])
    watermark = max(item.LastModified for item in items if item.LastModified)
    changed = [items[3].InventoryID, items[50].InventoryID, items[299].InventoryID]
    await admin.change("StockItem", changed[:2], set={"Description": "Changed in the ERP"})
    await admin.change("StockItem", changed[2:])  # only LastModified moves
    await client.put(StockItem, {"InventoryID": items[120].InventoryID, "DefaultPrice": 1.25})
    changed.append(items[120].InventoryID)
    # An update that changes nothing is not a change.
    await client.put(StockItem, {"InventoryID": items[121].InventoryID, "ItemClass": items[121].ItemClass})

    delta = await client.list(StockItem, filter=F.modified_since(watermark), select=["InventoryID", "LastModified"])
    assert sorted(i.InventoryID for i in delta) == sorted(changed)

    second = max(item.LastModified for item in delta if item.LastModified)
    await admin.change("StockItem", [items[7].InventoryID])
    again = [i async for i in client.iterate("StockItem", filter=F.modified_since(second), select="InventoryID")]
    assert [i["InventoryID"] for i in again] == [items[7].InventoryID]


async def test_custom_date_range_and_attribute_filter(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(400)
    start, end = parse_datetime("2024-02-01T00:00:00+00:00"), parse_datetime("2024-10-01T00:00:00+00:00")
    expected = {
        r["InventoryID"]
        for r in await admin.records("StockItem", limit=1000)
        if start <= parse_datetime(r["LastModified"]) <= end and attribute(r, "ACTIVERITHUM") == "0"
    }
    query = F.all_of(F.changed_between(start, end), F.attribute("ACTIVERITHUM").eq("0"))
    found = await client.list("StockItem", filter=query, select="InventoryID")
    assert expected and {r["InventoryID"] for r in found} == expected


async def test_field_errors_surface_with_their_message(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(20)
    order = SalesOrder.from_plain(
        {
            "CustomerID": "C000001",
            "ExternalRef": "RITHUM-1001",
            "Details": [{"InventoryID": "AP000001", "OrderQty": 1}, {"InventoryID": "NO-SUCH-ITEM", "OrderQty": 2}],
        }
    )
    with pytest.raises(ValidationError) as caught:
        await client.put(SalesOrder, order)
    error = caught.value
    assert error.status == 422
    assert error.field_errors == {"Details/1/InventoryID": "'Inventory ID' cannot be found in the system."}
    assert "'Inventory ID' cannot be found in the system." in str(error)
    assert error.record["ExternalRef"] == "RITHUM-1001"

    with pytest.raises(ValidationError) as caught:
        await client.put("StockItem", {"InventoryID": "NEW-1", "ItemClass": "NOPE"})
    assert caught.value.field_errors == {"ItemClass": "'Item Class' cannot be found in the system."}


async def test_upsert_preconditions_and_not_found(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(20)
    created = await client.put(
        "Customer", {"CustomerName": "Rithum Buyer", "Email": "buyer@example.com"}, if_none_match=True
    )
    assert created["CustomerID"] == "C000006"
    with pytest.raises(PreconditionFailed):
        await client.put("Customer", {"CustomerID": "C000006", "CustomerName": "Again"}, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await client.put("Customer", {"CustomerID": "C999999", "CustomerName": "Ghost"}, if_match=True)
    with pytest.raises(NotFound) as caught:
        await client.get("Customer", "C999999")
    assert "No entity satisfies the condition" in caught.value.message
    assert (await client.endpoints())["endpoints"] == [
        {"name": "Default", "version": "24.200.001", "href": "/entity/Default/24.200.001/"}
    ]


async def test_writes_back_the_rithum_product_id(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(20)
    one, two = [r["InventoryID"] for r in await admin.records("StockItem", limit=2)]
    await client.put(StockItem, {"InventoryID": one, "Attributes": [{"AttributeID": "CAPRODUCTID", "Value": "123"}]})
    await client.put("StockItem", {"InventoryID": two, "custom": {"ItemSettings": {"UsrCAProductID": "456"}}})
    first = await client.get(StockItem, one, expand="Attributes")
    second = await client.get("StockItem", two, custom="ItemSettings.UsrCAProductID")
    assert first.attribute("CAPRODUCTID") == "123"
    assert first.flag("ACTIVERITHUM") is True
    assert custom_field(second, "ItemSettings.UsrCAProductID") == "456"


async def test_survives_a_429_burst(admin: Admin, client: AcumaticaClient, request_log: RequestLog) -> None:
    await admin.seed(50)
    await client.login()
    await admin.knobs(burst_429=2, retry_after=1)
    started = datetime.now()
    items = await client.list("StockItem", top=10)
    assert len(items) == 10
    assert (datetime.now() - started).total_seconds() >= 1.5  # Retry-After was honoured twice
    statuses = [e.status for e in request_log.entries if "StockItem" in e.url]
    assert statuses == [429, 429, 200]
    assert (await admin.stats())["declined_429"] == 2


@pytest.mark.parametrize("auth", ["cookie", "oauth"])
async def test_survives_session_expiry(
    auth: str, admin: Admin, acumatica_settings: Settings, request_log: RequestLog
) -> None:
    await admin.seed(30)
    settings = acumatica_settings.model_copy(update={"acumatica_auth": auth})
    async with AcumaticaClient(settings, request_log=request_log) as api:
        assert len(await api.list("StockItem", top=5)) == 5
        expired = await admin.knobs(expire_sessions=True)
        assert expired["expired_sessions"] == 1
        assert len(await api.list("StockItem", top=5, skip=5)) == 5
    stats = (await admin.stats())["requests"]
    if auth == "cookie":
        assert stats["POST auth/login"] == 2
    else:
        assert stats["POST identity/token"] == 2
        grants = [e.request_excerpt or "" for e in request_log.entries if e.url.endswith("/token")]
        assert "grant_type=password" in grants[0] and "grant_type=refresh_token" in grants[1]
    assert stats["POST auth/logout"] == 1
    assert (await admin.stats())["sessions"] == 0
    logged = " ".join(f"{e.url} {e.request_excerpt} {e.response_excerpt}" for e in request_log.entries)
    assert "sandbox-client-secret" not in logged
    assert '"password": "admin"' not in logged


async def test_action_is_polled_until_done(admin: Admin, client: AcumaticaClient) -> None:
    await admin.seed(20)
    await admin.knobs(action_delay_ms=300)
    order = await client.put(SalesOrder, {"CustomerID": "C000002", "Details": [{"InventoryID": "AP000001"}]})
    shipment = await client.put(
        Shipment,
        {
            "CustomerID": "C000002",
            "ShipVia": "UPSGROUND",
            "Orders": [{"OrderType": order.OrderType, "OrderNbr": order.OrderNbr}],
            "Packages": [{"TrackingNbr": "1Z999AA10123456784", "Weight": 2.5}],
        },
    )
    await client.action(Shipment, "ConfirmShipment", {"ShipmentNbr": shipment.ShipmentNbr})
    confirmed = await client.get(Shipment, shipment.ShipmentNbr, expand="Packages")
    assert confirmed.Status == "Confirmed"
    assert confirmed.Packages and confirmed.Packages[0].TrackingNbr == "1Z999AA10123456784"
    polls = (await admin.stats())["requests"]["GET Shipment/ConfirmShipment"]
    assert polls >= 2  # at least one 202 before the 204
    assert (await client.get(SalesOrder, "SO", order.OrderNbr)).Status == "Completed"


async def test_client_keeps_under_the_license_concurrency(
    admin: Admin, acumatica_settings: Settings, request_log: RequestLog
) -> None:
    await admin.seed(20)
    await admin.knobs(concurrent_requests=2, queue_limit=0, latency_ms=100)
    settings = acumatica_settings.model_copy(update={"acumatica_concurrency": 2})
    async with AcumaticaClient(settings, request_log=request_log) as api:
        await api.login()
        pages = await asyncio.gather(*(api.list("StockItem", top=2, skip=n) for n in range(8)))
    assert all(len(page) == 2 for page in pages)
    assert (await admin.stats())["declined_429"] == 0
