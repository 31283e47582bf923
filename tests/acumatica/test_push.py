"""Push notifications from the sandbox, delivered to a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from shared.acumatica.client import AcumaticaClient

from .conftest import Admin, Receiver

# The documented example (reference/acumatica-api.md §3), keys in their order.
DOCUMENTED = {
    "Inserted": [{"Warehouse": "MAIN ", "InventoryID": "AALEGO500", "QtyOnHand": 1999, "QtyAvailable": 1976}],
    "Deleted": [{"Warehouse": "MAIN", "InventoryID": "AALEGO500 ", "QtyOnHand": 1999, "QtyAvailable": 1977}],
    "Query": "Item Availability Data",
    "CompanyId": "MyStore",
    "Id": "06284bdf-2952-4a9a-bf60-2ad0cd33924e",
    "TimeStamp": 638465233453014192,
    "AdditionalInfo": {"PXPerformanceInfoStartTime": "03/20/2025 09:22:24"},
}


def assert_documented_shape(payload: dict) -> None:
    assert list(payload) == list(DOCUMENTED)
    for name in DOCUMENTED:
        assert type(payload[name]) is type(DOCUMENTED[name]), name
    uuid.UUID(payload["Id"])
    assert list(payload["AdditionalInfo"]) == ["PXPerformanceInfoStartTime"]
    datetime.strptime(payload["AdditionalInfo"]["PXPerformanceInfoStartTime"], "%m/%d/%Y %H:%M:%S")
    assert abs(payload["TimeStamp"] - DOCUMENTED["TimeStamp"]) < 10**17  # .NET ticks, not Unix time


async def test_an_api_change_posts_the_documented_payload(
    admin: Admin, client: AcumaticaClient, receiver: Receiver
) -> None:
    await admin.seed(30)
    await admin.push_definition(
        query="RithumAvailability",
        entity="InventoryQuantityAvailable",
        fields=["WarehouseID", "InventoryID", "QtyOnHand", "QtyAvailable"],
        url=receiver.url,
        header_name="Authorization",
        header_value="sandbox-webhook-secret",
    )
    row = (await admin.records("InventoryQuantityAvailable", limit=1))[0]
    await client.put(
        "InventoryQuantityAvailable",
        {"InventoryID": row["InventoryID"], "WarehouseID": row["WarehouseID"], "QtyAvailable": row["QtyAvailable"] - 1},
    )
    [payload] = await receiver.wait_for(1)
    assert_documented_shape(payload)
    padded = {"InventoryID": row["InventoryID"] + " ", "WarehouseID": row["WarehouseID"] + " "}
    assert payload["Inserted"] == [{**padded, "QtyOnHand": row["QtyOnHand"], "QtyAvailable": row["QtyAvailable"] - 1}]
    assert payload["Deleted"] == [{**padded, "QtyOnHand": row["QtyOnHand"], "QtyAvailable": row["QtyAvailable"]}]
    assert payload["Query"] == "RithumAvailability"
    assert payload["CompanyId"] == "Company"
    headers, _ = receiver.received[0]
    assert headers["Authorization"] == "sandbox-webhook-secret"
    assert headers["Content-Type"] == "application/json"


async def test_inserts_deletes_and_admin_changes_notify_but_seeding_does_not(
    admin: Admin, client: AcumaticaClient, receiver: Receiver
) -> None:
    await admin.push_definition(
        query="RithumProducts",
        entity="StockItem",
        fields=["InventoryID", "Description", "ItemClass", "AttributeACTIVERITHUM", "ItemSettings.UsrCAProductID"],
        url=receiver.url,
        pad_keys=False,
    )
    await admin.seed(50)
    await client.put("StockItem", {"InventoryID": "NEW-ITEM", "ItemClass": "TOYS", "Description": "Kite"})
    await admin.change("StockItem", ["NEW-ITEM"], set={"Attributes": [{"AttributeID": "ACTIVERITHUM", "Value": "0"}]})
    await admin.change("StockItem", ["NEW-ITEM"], set={"Description": "Kite"})  # no change: no notification
    await admin.change("StockItem", ["NEW-ITEM"], delete=True)
    inserted, updated, deleted = await receiver.wait_for(3)
    new = {
        "InventoryID": "NEW-ITEM",
        "Description": "Kite",
        "ItemClass": "TOYS",
        "AttributeACTIVERITHUM": None,
        "ItemSettings.UsrCAProductID": None,
    }
    assert (inserted["Inserted"], inserted["Deleted"]) == ([new], [])
    assert (updated["Inserted"], updated["Deleted"]) == ([{**new, "AttributeACTIVERITHUM": "0"}], [new])
    assert (deleted["Inserted"], deleted["Deleted"]) == ([], [{**new, "AttributeACTIVERITHUM": "0"}])
    assert inserted["TimeStamp"] < updated["TimeStamp"] < deleted["TimeStamp"]
    assert len({inserted["Id"], updated["Id"], deleted["Id"]}) == 3
    assert len(receiver.received) == 3


async def test_confirmed_shipment_notifies_with_tracking_numbers(
    admin: Admin, client: AcumaticaClient, receiver: Receiver
) -> None:
    await admin.seed(20)
    await admin.knobs(action_delay_ms=0)
    await admin.push_definition(
        query="RithumShipments",
        entity="Shipment",
        fields=["ShipmentNbr", "Status", "ShipVia", "Packages/TrackingNbr"],
        url=receiver.url,
    )
    order = await client.put("SalesOrder", {"CustomerID": "C000001", "Details": [{"InventoryID": "AP000001"}]})
    shipment = await client.put(
        "Shipment",
        {
            "CustomerID": "C000001",
            "ShipVia": "FEDEXGROUND",
            "Orders": [{"OrderNbr": order["OrderNbr"]}],
            "Packages": [{"TrackingNbr": "TRK-1"}, {"TrackingNbr": "TRK-2"}],
        },
    )
    await client.action("Shipment", "ConfirmShipment", {"ShipmentNbr": shipment["ShipmentNbr"]})
    created, confirmed = await receiver.wait_for(2)
    number = shipment["ShipmentNbr"] + " "
    assert [r["Status"] for r in created["Inserted"]] == ["Open", "Open"]
    assert confirmed["Inserted"] == [
        {"ShipmentNbr": number, "Status": "Confirmed", "ShipVia": "FEDEXGROUND", "TrackingNbr": tracking}
        for tracking in ("TRK-1", "TRK-2")
    ]
    assert [r["Status"] for r in confirmed["Deleted"]] == ["Open", "Open"]


async def test_failed_deliveries_are_kept_and_resent(admin: Admin, client: AcumaticaClient, receiver: Receiver) -> None:
    await admin.seed(20)
    await admin.knobs(push_retry_delay_ms=10)
    await admin.push_definition(query="RithumCategories", entity="ItemSalesCategory", track_all=True, url=receiver.url)
    receiver.fail = True
    category = await client.put("ItemSalesCategory", {"Description": "Gadgets", "ParentCategoryID": 0})
    for _ in range(200):
        failed = await admin.call("GET", "/push/failed")
        if failed:
            break
        await asyncio.sleep(0.02)
    [delivery] = failed
    assert delivery["attempts"] == 5
    assert delivery["last_error"].startswith("HTTP 503")
    [row] = delivery["payload"]["Inserted"]
    assert (row["CategoryID"], row["Description"], row["Path"]) == (category["CategoryID"], "Gadgets", "Gadgets")

    receiver.fail = False
    assert await admin.call("POST", "/push/failed/resend", {}) == {"resent": 1}
    [payload] = await receiver.wait_for(1)
    assert payload == delivery["payload"]  # the same notification, same Id, for de-duplication
    assert await admin.call("GET", "/push/failed") == []
