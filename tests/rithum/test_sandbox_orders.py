"""Orders in the Rithum sandbox: seeding, export marks, shipping, adjustments, fulfillments, webhooks."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.rithum.conftest import Admin

SHIP = {"ShippingCarrier": "UPS", "ShippingClass": "Ground", "TrackingNumber": "1Z999", "DeliveryStatus": "Complete"}


async def test_seeded_orders_are_realistic_and_paged_with_expansions(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.seed_products(5, prefix="ORD-")
    ids = await admin.seed_orders(45)
    first = (await api.get("/v1/Orders", params={"exported": "false", "$expand": "Items,Fulfillments"})).json()
    assert len(first["value"]) == 20 and "$skip=20" in first["@odata.nextLink"]
    seen = list(first["value"])
    link = first.get("@odata.nextLink")
    while link:
        page = (await api.get(link)).json()
        seen += page["value"]
        link = page.get("@odata.nextLink")
    assert [o["ID"] for o in seen] == ids
    order = seen[0]
    assert "@" in order["BuyerEmailAddress"] and order["ShippingCity"] and order["BillingPostalCode"]
    assert order["SiteName"] in {"Amazon Seller Central - US", "eBay Fixed Price", "Walmart Marketplace", "Target Plus"}
    assert order["CheckoutStatus"].startswith("Completed") and order["ShippingStatus"] == "Unshipped"
    assert 1 <= len(order["Items"]) <= 4 and order["Fulfillments"] == []
    assert all(item["Sku"].startswith("ORD-") for o in seen for item in o["Items"])
    assert order["TotalPrice"] == pytest.approx(
        sum(i["UnitPrice"] * i["Quantity"] + i["TaxPrice"] + i["ShippingPrice"] for i in order["Items"]), abs=0.01
    )


async def test_export_marks_hide_orders_until_unmarked(api: httpx.AsyncClient, admin: Admin) -> None:
    ids = await admin.seed_orders(3)
    assert (await api.post(f"/v1/Orders({ids[0]})/Export")).status_code == 204
    pending = (await api.get("/v1/Orders", params={"exported": "false"})).json()["value"]
    assert [o["ID"] for o in pending] == ids[1:]
    exported = (await api.get("/v1/Orders", params={"exported": "true"})).json()["value"]
    assert [o["ID"] for o in exported] == ids[:1]
    assert (await api.get(f"/v1/Orders({ids[0]})")).status_code == 200  # a direct GET ignores the mark
    assert (await api.delete(f"/v1/Orders({ids[0]})/Export")).status_code == 204
    assert len((await api.get("/v1/Orders", params={"exported": "false"})).json()["value"]) == 3
    assert (await api.get("/v1/Orders", params={"exported": "maybe"})).status_code == 400
    assert (await api.get("/v1/Orders", params={"Exported": "false"})).status_code == 400
    assert (await api.post("/v1/Orders(999)/Export")).status_code == 404


async def test_ship_needs_a_configured_carrier_and_class(api: httpx.AsyncClient, admin: Admin) -> None:
    order_id = (await admin.seed_orders(1))[0]
    unknown = await api.post(f"/v1/Orders({order_id})/Ship", json={"Value": {**SHIP, "ShippingClass": "Teleport"}})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Carrier and Class is invalid."

    await admin.call("PUT", "/carriers", {"Acme Freight": ["Teleport"]})
    still_unknown = await api.post(f"/v1/Orders({order_id})/Ship", json={"Value": SHIP})
    assert still_unknown.status_code == 400
    shipped = await api.post(
        f"/v1/Orders({order_id})/Ship",
        json={"Value": {**SHIP, "ShippingCarrier": "Acme Freight", "ShippingClass": "Teleport"}},
    )
    assert shipped.status_code == 204
    order = (await api.get(f"/v1/Orders({order_id})", params={"$expand": "Items,Fulfillments"})).json()
    assert order["ShippingStatus"] == "Shipped" and order["ShippingDateUtc"]
    [fulfillment] = order["Fulfillments"]
    assert (fulfillment["TrackingNumber"], fulfillment["ShippingClass"]) == ("1Z999", "Teleport")
    assert {i["OrderItemID"]: i["Quantity"] for i in fulfillment["Items"]} == {
        i["ID"]: i["Quantity"] for i in order["Items"]
    }
    again = await api.post(
        f"/v1/Orders({order_id})/Ship",
        json={"Value": {**SHIP, "ShippingCarrier": "Acme Freight", "ShippingClass": "Teleport"}},
    )
    assert again.status_code == 400 and "already been shipped" in again.text


async def test_adjustments_cancel_items_and_orders(api: httpx.AsyncClient, admin: Admin) -> None:
    first = await admin.call(
        "POST", "/orders", {"Items": [{"Sku": "A", "Quantity": 2, "UnitPrice": 5}, {"Sku": "B", "UnitPrice": 3}]}
    )
    second = await admin.call("POST", "/orders", {"Items": [{"Sku": "C"}]})
    bad_spec = await admin.http.post("/orders", json={"Items": [{"Sku": "A", "UnitPrice": "five"}]})
    assert bad_spec.status_code == 400 and "UnitPrice" in bad_spec.json()["error"]["message"]
    item_a, item_b = (i["ID"] for i in first["Items"])
    bad_reason = await api.post(f"/v1/OrderItems({item_a})/Adjust", json={"Reason": "Boredom", "Quantity": 1})
    assert bad_reason.status_code == 400 and "Reason must be one of" in bad_reason.text
    too_many = await api.post(f"/v1/OrderItems({item_a})/Adjust", json={"Reason": "BuyerCancelled", "Quantity": 3})
    assert too_many.status_code == 400
    for item, quantity in ((item_a, 2), (item_b, 1)):
        body = {"Reason": "BuyerCancelled", "Quantity": quantity, "SellerAdjustmentID": f"ADJ-{item}"}
        assert (await api.post(f"/v1/OrderItems({item})/Adjust", json=body)).status_code == 204
    order = (await api.get(f"/v1/Orders({first['ID']})", params={"$expand": "Adjustments"})).json()
    assert order["ShippingStatus"] == "Canceled" and len(order["Adjustments"]) == 2

    assert (
        await api.post(f"/v1/Orders({second['ID']})/Adjust", json={"PreventSiteProcessing": True})
    ).status_code == 204
    assert (await api.get(f"/v1/Orders({second['ID']})")).json()["ShippingStatus"] == "Canceled"
    canceled_ship = await api.post(f"/v1/Orders({second['ID']})/Ship", json={"Value": SHIP})
    assert canceled_ship.status_code == 400 and "canceled" in canceled_ship.text


async def test_partial_fulfillments_move_the_order_to_partially_shipped(api: httpx.AsyncClient, admin: Admin) -> None:
    order = await admin.call("POST", "/orders", {"Items": [{"Sku": "A", "Quantity": 3}]})
    item = order["Items"][0]["ID"]
    too_many = await api.post(
        "/v1/Fulfillments", json={"OrderID": order["ID"], "Items": [{"OrderItemID": item, "Quantity": 4}]}
    )
    assert too_many.status_code == 400
    created = await api.post(
        "/v1/Fulfillments",
        json={"OrderID": order["ID"], "ProfileID": 1, "Items": [{"OrderItemID": item, "Quantity": 1}], **SHIP},
    )
    assert created.status_code == 201 and created.json()["ID"] >= 1
    assert (await api.get(f"/v1/Orders({order['ID']})")).json()["ShippingStatus"] == "PartiallyShipped"
    bad_carrier = await api.patch(f"/v1/Fulfillments({created.json()['ID']})", json={"ShippingClass": "Warp"})
    assert bad_carrier.status_code == 400 and bad_carrier.json()["error"]["message"] == "Carrier and Class is invalid."


class _Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the very first delivery, so the sandbox has to retry."""

    received: list[dict[str, Any]]
    headers_seen: list[str]
    failures_left: list[int]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.failures_left[0] > 0:
            self.failures_left[0] -= 1
            self.send_response(503)
        else:
            self.received.append(json.loads(body))
            self.headers_seen.append(self.headers.get("X-Hook-Secret", ""))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "headers_seen": [], "failures_left": [1]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/rithum", handler
    server.shutdown()
    server.server_close()


async def test_new_orders_are_posted_to_the_webhook_with_retries(
    admin: Admin, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    await admin.config(webhook_url=url, webhook_headers={"X-Hook-Secret": "s3"})
    ids = await admin.seed_orders(3)
    for _ in range(100):
        if len(handler.received) == 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(o["ID"] for o in handler.received) == ids
    assert all(o["Items"] and o["BuyerEmailAddress"] and "Fulfillments" in o for o in handler.received)
    assert handler.headers_seen == ["s3"] * 3
    webhooks = (await admin.stats())["webhooks"]
    assert webhooks["delivered"] == 3 and webhooks["failed_attempts"] == 1
