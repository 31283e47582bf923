"""Orders, their items, fulfillments and adjustments, export marks and the carrier list.

Export status is kept per application ID, as the real API tracks it per developer key + application.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .catalog import check_type, utcnow
from .errors import ApiError, bad_request, not_found
from .odata import T, compile_filter, format_datetime, order_rows, parse_datetime

ADDRESS = (
    "FirstName LastName CompanyName AddressLine1 AddressLine2 City StateOrProvince PostalCode Country DaytimePhone"
)
ORDER_STR = (
    "SiteName SiteOrderID SecondarySiteOrderID SellerOrderID Currency CheckoutStatus PaymentStatus ShippingStatus "
    "BuyerUserId BuyerEmailAddress PaymentMethod PaymentTransactionID PublicNotes PrivateNotes SpecialInstructions "
    "DistributionCenterTypeRollup FlagDescription"
).split() + [f"{side}{part}" for side in ("Shipping", "Billing") for part in ADDRESS.split()]
ORDER_DATES = (
    "CreatedDateUtc ImportDateUtc CheckoutDateUtc PaymentDateUtc ShippingDateUtc EstimatedShipDateUtc DeliverByDateUtc"
).split()
ORDER_MONEY = (
    "TotalPrice TotalTaxPrice TotalShippingPrice TotalShippingTaxPrice TotalInsurancePrice TotalGiftOptionPrice "
    "AdditionalCostOrDiscount PromotionAmount"
).split()
ORDER_SCHEMA: dict[str, T] = {
    "ID": T.INT,
    "ProfileID": T.INT,
    "SiteID": T.INT,
    "FlagID": T.INT,
    **{name: T.STR for name in ORDER_STR},
    **{name: T.DATETIME for name in ORDER_DATES},
    **{name: T.FLOAT for name in ORDER_MONEY},
}
ORDER_EXPANDS = ("Items", "Fulfillments", "Adjustments", "CustomFields")
ITEM_FIELDS = (
    "ID OrderID ProductID SiteOrderItemID Sku Title Quantity UnitPrice TaxPrice ShippingPrice ShippingTaxPrice IsBundle"
).split()
# Fields a seller may change on an order, with their length limits (DCA updating-existing-order-properties).
ORDER_PATCHABLE: dict[str, int | None] = {
    "SellerOrderID": 25,
    "PublicNotes": 4000,
    "PrivateNotes": 4000,
    "SpecialInstructions": 4000,
    "EstimatedShipDateUtc": None,
    "FlagID": None,
    "FlagDescription": 4000,
}
FULFILLMENT_TYPES = {"Ship", "Pickup", "ShipToStore", "Courier"}
DELIVERY_STATUSES = {"NoChange", "InTransit", "ReadyForPickup", "Complete", "Canceled", "ThirdPartyManaged"}
ADJUST_REASONS = {
    "GeneralAdjustment",
    "ItemNotAvailable",
    "CustomerReturnedItem",
    "CouldNotShip",
    "AlternateItemProvided",
    "BuyerCancelled",
    "CustomerExchange",
    "MerchandiseNotReceived",
    "ShippingAddressUndeliverable",
}
# Reasons that take quantity off the order (the rest only refund money).
CANCEL_REASONS = {"ItemNotAvailable", "CouldNotShip", "BuyerCancelled", "ShippingAddressUndeliverable"}
DEFAULT_CARRIERS: dict[str, list[str]] = {
    "UPS": ["Ground", "2nd Day Air", "Next Day Air", "3 Day Select"],
    "FedEx": ["Home Delivery", "Ground", "2Day", "Standard Overnight"],
    "USPS": ["Priority Mail", "First Class", "Ground Advantage", "Priority Mail Express"],
    "DHL": ["Express Worldwide"],
}

Order = dict[str, Any]


def _dt(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be an ISO 8601 date-time string.")
    try:
        return parse_datetime(value)
    except ValueError:
        raise bad_request(f"{name} '{value}' is not an ISO 8601 date-time.") from None


def _render(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = row.get(name)
        out[name] = format_datetime(value) if isinstance(value, datetime) else value
    return out


class OrderBook:
    def __init__(self, profile_id: int) -> None:
        self.profile_id = profile_id
        self.reset()

    def reset(self) -> None:
        self.orders: dict[int, Order] = {}
        self.item_order: dict[int, int] = {}
        self.fulfillment_order: dict[int, int] = {}
        self.exported: dict[str, set[int]] = {}
        self.carriers: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_CARRIERS.items()}
        self._ids = {"order": 1, "item": 1, "fulfillment": 1, "adjustment": 1}

    def _next(self, kind: str) -> int:
        value = self._ids[kind]
        self._ids[kind] = value + 1
        return value

    # --- reads -----------------------------------------------------------------------------------

    def get(self, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found("Order", order_id)
        return order

    def query_ids(
        self, filter_text: str | None, orderby: str | None, exported: bool | None, application: str
    ) -> list[int]:
        rows: Iterable[Order] = self.orders.values()
        if exported is not None:
            marks = self.exported.get(application, set())
            rows = (o for o in rows if (o["ID"] in marks) == exported)
        if filter_text:
            compiled = compile_filter(filter_text, "Order", ORDER_SCHEMA, ("ID",))
            rows = (o for o in rows if compiled.predicate(o))
        matched = list(rows)
        if orderby:
            matched = order_rows(matched, orderby, "Order", ORDER_SCHEMA)
        return [o["ID"] for o in matched]

    def render(self, order: Order, select: Sequence[str] | None, expand: Iterable[str]) -> dict[str, Any]:
        out = _render(order, select or ORDER_SCHEMA)
        for name in expand:
            if name == "Items":
                out["Items"] = [self._render_item(item) for item in order["_items"]]
            elif name == "Fulfillments":
                out["Fulfillments"] = [self.render_fulfillment(f) for f in order["_fulfillments"]]
            elif name == "Adjustments":
                out["Adjustments"] = [_render(a, a) for a in order["_adjustments"]]
            else:
                out["CustomFields"] = []
        return out

    def full(self, order: Order) -> dict[str, Any]:
        """The order as webhooks carry it: every property and collection."""
        return self.render(order, None, ORDER_EXPANDS)

    def _render_item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {**_render(item, ITEM_FIELDS), "BundleComponents": [], "Promotions": []}

    def render_fulfillment(self, f: Mapping[str, Any]) -> dict[str, Any]:
        out = _render(f, (k for k in f if k != "Items"))
        out["Items"] = [dict(i) for i in f["Items"]]
        return out

    # --- creation (admin) ------------------------------------------------------------------------

    def create(self, spec: Mapping[str, Any]) -> Order:
        """An order as a marketplace would deliver it; `spec` overrides generated defaults."""
        now = utcnow()
        order: Order = {name: None for name in ORDER_SCHEMA}
        order.update(
            ProfileID=self.profile_id,
            Currency="USD",
            CheckoutStatus="Completed",
            PaymentStatus="Cleared",
            ShippingStatus="Unshipped",
            CreatedDateUtc=now,
            ImportDateUtc=now,
            CheckoutDateUtc=now,
            PaymentDateUtc=now,
            TotalTaxPrice=0.0,
            TotalShippingPrice=0.0,
            TotalShippingTaxPrice=0.0,
            TotalInsurancePrice=0.0,
            TotalGiftOptionPrice=0.0,
            AdditionalCostOrDiscount=0.0,
            PromotionAmount=0.0,
        )
        for name, value in spec.items():
            if name == "Items":
                continue
            kind = ORDER_SCHEMA.get(name)
            if kind is None or name == "ID":
                raise bad_request(f"The property '{name}' cannot be set on a new Order.")
            order[name] = _dt(value, name) if kind is T.DATETIME else value
            if kind is not T.DATETIME:
                check_type("Order", name, value, kind)
        items = spec.get("Items")
        if not isinstance(items, list) or not items:
            raise bad_request("An order needs a non-empty Items list.")
        for item in items:
            self._check_item(item)
        order_id = self._next("order")
        order["ID"] = order_id
        order["_items"] = [self._new_item(order_id, n, item) for n, item in enumerate(items, 1)]
        order["_fulfillments"] = []
        order["_adjustments"] = []
        if order["TotalPrice"] is None:
            order["TotalPrice"] = round(
                sum(i["UnitPrice"] * i["Quantity"] + i["TaxPrice"] + i["ShippingPrice"] for i in order["_items"]), 2
            )
        self.orders[order_id] = order
        for item in order["_items"]:
            self.item_order[item["ID"]] = order_id
        return order

    @staticmethod
    def _check_item(spec: Any) -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("Sku"), str) or not spec["Sku"]:
            raise bad_request("Each order item needs a Sku.")
        quantity = spec.get("Quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise bad_request("Each order item needs a positive integer Quantity.")
        for name in ("UnitPrice", "TaxPrice", "ShippingPrice", "ShippingTaxPrice"):
            check_type("OrderItem", name, spec.get(name), T.FLOAT)
        check_type("OrderItem", "ProductID", spec.get("ProductID"), T.INT)

    def _new_item(self, order_id: int, line: int, spec: dict[str, Any]) -> dict[str, Any]:
        quantity = spec.get("Quantity", 1)
        item = {
            "ID": self._next("item"),
            "OrderID": order_id,
            "ProductID": spec.get("ProductID"),
            "SiteOrderItemID": spec.get("SiteOrderItemID") or f"{order_id}-{line}",
            "Sku": spec["Sku"],
            "Title": spec.get("Title") or spec["Sku"],
            "Quantity": quantity,
            "UnitPrice": float(spec.get("UnitPrice") or 0.0),
            "TaxPrice": float(spec.get("TaxPrice") or 0.0),
            "ShippingPrice": float(spec.get("ShippingPrice") or 0.0),
            "ShippingTaxPrice": float(spec.get("ShippingTaxPrice") or 0.0),
            "IsBundle": bool(spec.get("IsBundle", False)),
            "_canceled": 0,
        }
        return item

    # --- export marks ----------------------------------------------------------------------------

    def set_exported(self, order_id: int, application: str, exported: bool) -> None:
        self.get(order_id)
        marks = self.exported.setdefault(application, set())
        if exported:
            marks.add(order_id)
        else:
            marks.discard(order_id)

    # --- updates ---------------------------------------------------------------------------------

    def patch(self, order_id: int, body: Mapping[str, Any]) -> None:
        order = self.get(order_id)
        if not isinstance(body, Mapping):
            raise bad_request("The request body must be a JSON object.")
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name not in ORDER_PATCHABLE:
                raise bad_request(f"The property '{name}' cannot be updated on an Order.")
            limit = ORDER_PATCHABLE[name]
            if name == "EstimatedShipDateUtc":
                changes[name] = _dt(value, name)
                continue
            check_type("Order", name, value, ORDER_SCHEMA[name])
            if limit is not None and value is not None and len(value) > limit:
                raise bad_request(f"{name} must be at most {limit} characters.")
            changes[name] = value
        order.update(changes)

    def ship(self, order_id: int, body: Mapping[str, Any], dc_ids: Iterable[int]) -> None:
        order = self.get(order_id)
        value = body.get("Value") if isinstance(body, Mapping) else None
        if not isinstance(value, Mapping):
            raise bad_request('Ship expects a body of the form {"Value": {...}}.')
        if order["ShippingStatus"] == "Canceled":
            raise bad_request(f"Order {order_id} is canceled and cannot be shipped.")
        if order["ShippingStatus"] == "Shipped":
            raise bad_request(f"Order {order_id} has already been shipped.")
        fulfillment = self._fulfillment_fields(value, dc_ids, require_carrier=True)
        open_items = [(i["ID"], self._open_quantity(order, i)) for i in order["_items"]]
        fulfillment["Items"] = [{"OrderItemID": iid, "Quantity": q} for iid, q in open_items if q > 0]
        fulfillment.setdefault("DeliveryStatus", "Complete")
        fulfillment.setdefault("ShippedDateUtc", utcnow())
        self._add_fulfillment(order, fulfillment)
        order["ShippingStatus"] = "Shipped"
        order["ShippingDateUtc"] = fulfillment["ShippedDateUtc"]

    def _open_quantity(self, order: Order, item: Mapping[str, Any]) -> int:
        fulfilled = sum(
            fi["Quantity"] for f in order["_fulfillments"] for fi in f["Items"] if fi["OrderItemID"] == item["ID"]
        )
        return item["Quantity"] - item["_canceled"] - fulfilled

    def _fulfillment_fields(
        self, value: Mapping[str, Any], dc_ids: Iterable[int], *, require_carrier: bool
    ) -> dict[str, Any]:
        known = {
            "ShippedDateUtc",
            "TrackingNumber",
            "ShippingCarrier",
            "ShippingClass",
            "DeliveryStatus",
            "DistributionCenterID",
            "SellerFulfillmentID",
            "Type",
            "TrackingUrl",
        }
        fields: dict[str, Any] = {}
        for name, item in value.items():
            if name not in known:
                raise bad_request(f"The property '{name}' does not exist on type 'Fulfillment'.")
            if name == "ShippedDateUtc":
                fields[name] = _dt(item, name)
            elif name == "DistributionCenterID":
                check_type("Fulfillment", name, item, T.INT)
                if item not in (None, 0) and item not in set(dc_ids):
                    raise bad_request(f"Distribution center {item} does not exist.")
                fields[name] = item
            else:
                check_type("Fulfillment", name, item, T.STR)
                fields[name] = item
        if fields.get("DeliveryStatus") not in DELIVERY_STATUSES | {None}:
            raise bad_request(f"DeliveryStatus must be one of {', '.join(sorted(DELIVERY_STATUSES))}.")
        if fields.get("Type") not in FULFILLMENT_TYPES | {None}:
            raise bad_request(f"Type must be one of {', '.join(sorted(FULFILLMENT_TYPES))}.")
        carrier, klass = fields.get("ShippingCarrier"), fields.get("ShippingClass")
        if (require_carrier or carrier or klass) and klass not in self.carriers.get(carrier or "", ()):
            raise bad_request("Carrier and Class is invalid.")
        return fields

    def _add_fulfillment(self, order: Order, fields: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        fulfillment = {
            "ID": self._next("fulfillment"),
            "OrderID": order["ID"],
            "ProfileID": self.profile_id,
            "Type": "Ship",
            "DeliveryStatus": "NoChange",
            "TrackingNumber": None,
            "ShippingCarrier": None,
            "ShippingClass": None,
            "DistributionCenterID": 0,
            "ShippedDateUtc": None,
            "SellerFulfillmentID": None,
            "CreatedDateUtc": now,
            "UpdatedDateUtc": now,
            **fields,
        }
        fulfillment["Items"] = [
            {"FulfillmentID": fulfillment["ID"], "OrderItemID": i["OrderItemID"], "Quantity": i["Quantity"]}
            for i in fields.get("Items", [])
        ]
        order["_fulfillments"].append(fulfillment)
        self.fulfillment_order[fulfillment["ID"]] = order["ID"]
        return fulfillment

    def create_fulfillment(self, body: Mapping[str, Any], dc_ids: Iterable[int]) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise bad_request("The request body must be a JSON object.")
        fields = dict(body)
        order_id = fields.pop("OrderID", None)
        profile = fields.pop("ProfileID", self.profile_id)
        items = fields.pop("Items", [])
        if not isinstance(order_id, int):
            raise bad_request("OrderID is required.")
        if profile != self.profile_id:
            raise bad_request(f"ProfileID {profile} is not the profile of this token.")
        order = self.get(order_id)
        if order["ShippingStatus"] == "Canceled":
            raise bad_request(f"Order {order_id} is canceled.")
        parsed = self._fulfillment_fields(fields, dc_ids, require_carrier=False)
        parsed["Items"] = self._fulfillment_items(order, items)
        fulfillment = self._add_fulfillment(order, parsed)
        self._refresh_shipping_status(order)
        return fulfillment

    def _fulfillment_items(self, order: Order, items: Any) -> list[dict[str, int]]:
        if not isinstance(items, list):
            raise bad_request("Items must be a list of {OrderItemID, Quantity}.")
        by_id = {i["ID"]: i for i in order["_items"]}
        result = []
        for entry in items:
            item_id = entry.get("OrderItemID") if isinstance(entry, dict) else None
            quantity = entry.get("Quantity") if isinstance(entry, dict) else None
            if item_id not in by_id:
                raise bad_request(f"Order item {item_id!r} does not belong to order {order['ID']}.")
            if not isinstance(quantity, int) or quantity < 1:
                raise bad_request("Each fulfillment item needs a positive integer Quantity.")
            if quantity > self._open_quantity(order, by_id[item_id]):
                raise bad_request(f"Quantity {quantity} exceeds the open quantity of order item {item_id}.")
            result.append({"OrderItemID": item_id, "Quantity": quantity})
        return result

    def get_fulfillment(self, fulfillment_id: int) -> dict[str, Any]:
        order_id = self.fulfillment_order.get(fulfillment_id)
        if order_id is None:
            raise not_found("Fulfillment", fulfillment_id)
        return next(f for f in self.orders[order_id]["_fulfillments"] if f["ID"] == fulfillment_id)

    def patch_fulfillment(self, fulfillment_id: int, body: Mapping[str, Any], dc_ids: Iterable[int]) -> None:
        fulfillment = self.get_fulfillment(fulfillment_id)
        if not isinstance(body, Mapping):
            raise bad_request("The request body must be a JSON object.")
        merged = {k: fulfillment[k] for k in ("ShippingCarrier", "ShippingClass") if fulfillment[k] is not None} | dict(
            body
        )
        fields = self._fulfillment_fields(merged, dc_ids, require_carrier=False)
        fulfillment.update(fields, UpdatedDateUtc=utcnow())
        self._refresh_shipping_status(self.orders[fulfillment["OrderID"]])

    def _refresh_shipping_status(self, order: Order) -> None:
        """Shipped once every open unit sits in a shipped (Complete) fulfillment."""
        if order["ShippingStatus"] == "Canceled":
            return
        shipped = {i["ID"]: 0 for i in order["_items"]}
        for f in order["_fulfillments"]:
            if f["DeliveryStatus"] == "Complete":
                for fi in f["Items"]:
                    shipped[fi["OrderItemID"]] += fi["Quantity"]
        wanted = {i["ID"]: i["Quantity"] - i["_canceled"] for i in order["_items"]}
        if all(shipped[k] >= v for k, v in wanted.items()):
            order["ShippingStatus"] = "Shipped"
        elif any(shipped.values()):
            order["ShippingStatus"] = "PartiallyShipped"

    def adjust_order(self, order_id: int, body: Mapping[str, Any]) -> None:
        """Cancels every open unit of the order."""
        order = self.get(order_id)
        _, fields = self._adjustment(body, default_reason="BuyerCancelled")
        if order["ShippingStatus"] == "Shipped":
            raise bad_request(f"Order {order_id} has been shipped; adjust its items to refund them.")
        if order["ShippingStatus"] == "Canceled":
            raise bad_request(f"Order {order_id} is already canceled.")
        for item in order["_items"]:
            item["_canceled"] += self._open_quantity(order, item)
        order["_adjustments"].append({**fields, "OrderItemID": None, "Quantity": None})
        order["ShippingStatus"] = "Canceled"

    def adjust_item(self, item_id: int, body: Mapping[str, Any]) -> None:
        order_id = self.item_order.get(item_id)
        if order_id is None:
            raise not_found("OrderItem", item_id)
        order = self.orders[order_id]
        item = next(i for i in order["_items"] if i["ID"] == item_id)
        reason, fields = self._adjustment(body, default_reason=None)
        quantity = body.get("Quantity")
        if quantity is not None and (not isinstance(quantity, int) or quantity < 1):
            raise bad_request("Quantity must be a positive integer.")
        if reason in CANCEL_REASONS and not body.get("RefundOnly", False):
            open_quantity = self._open_quantity(order, item)
            cancel = open_quantity if quantity is None else quantity
            if cancel > open_quantity or open_quantity == 0:
                raise bad_request(f"Order item {item_id} has only {open_quantity} open unit(s) to cancel.")
            item["_canceled"] += cancel
            if all(i["_canceled"] >= i["Quantity"] for i in order["_items"]):
                order["ShippingStatus"] = "Canceled"
            else:
                self._refresh_shipping_status(order)
        order["_adjustments"].append({**fields, "OrderItemID": item_id, "Quantity": quantity})

    def _adjustment(self, body: Mapping[str, Any], default_reason: str | None) -> tuple[str, dict[str, Any]]:
        if not isinstance(body, Mapping):
            raise bad_request("The request body must be a JSON object.")
        known = {
            "Reason",
            "SellerAdjustmentID",
            "Quantity",
            "RefundOnly",
            "Restock",
            "Comment",
            "PreventSiteProcessing",
            "AdjustmentAmount",
        }
        unknown = set(body) - known
        if unknown:
            raise bad_request(f"Unknown adjustment properties: {', '.join(sorted(unknown))}.")
        reason = body.get("Reason", default_reason)
        if reason not in ADJUST_REASONS:
            raise bad_request(f"Reason must be one of {', '.join(sorted(ADJUST_REASONS))}.")
        for flag in ("RefundOnly", "Restock", "PreventSiteProcessing"):
            check_type("Adjustment", flag, body.get(flag), T.BOOL)
        fields = {
            "ID": self._next("adjustment"),
            "Reason": reason,
            "SellerAdjustmentID": body.get("SellerAdjustmentID"),
            "Comment": body.get("Comment"),
            "RefundOnly": bool(body.get("RefundOnly", False)),
            "PreventSiteProcessing": bool(body.get("PreventSiteProcessing", False)),
            "RequestStatus": "Complete",
            "CreatedDateUtc": utcnow(),
        }
        return reason, fields

    # --- carriers --------------------------------------------------------------------------------

    def set_carriers(self, carriers: Mapping[str, Any]) -> None:
        if not isinstance(carriers, Mapping) or not carriers:
            raise bad_request('Carriers must be an object like {"UPS": ["Ground", "2nd Day Air"]}.')
        for name, classes in carriers.items():
            if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
                raise bad_request(f"Carrier '{name}' needs a non-empty list of class names.")
        self.carriers = {k: list(v) for k, v in carriers.items()}


def parse_exported(value: str | None) -> bool | None:
    """`exported=true|false` (no `$`), as the real API names it."""
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise ApiError(400, f"The value '{value}' of exported is not 'true' or 'false'.")
    return value.lower() == "true"
