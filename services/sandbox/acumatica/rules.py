"""Business rules a record must pass before it is saved, and the fields the ERP computes itself.

Each rule reports problems against the dict that holds the field (the record, a detail row, a
linked object); `upsert` turns those into Acumatica's per-field 422 errors. Messages copy the
real ERP's wording where it is known (`'Customer' cannot be found in the system.`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .entities import ATTRIBUTES, BOOLEAN_FIELDS, DECIMAL_FIELDS, ITEM_STATUSES, MAX_LENGTH, ORDER_TYPES
from .store import Store

Report = Callable[[dict[str, Any], str, str], None]
_LABELS = {"CustomerID": "Customer", "ItemClass": "Item Class", "ShipVia": "Ship Via"}


def label(name: str) -> str:
    return _LABELS.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)


def not_found(name: str) -> str:
    return f"'{label(name)}' cannot be found in the system."


def empty(name: str) -> str:
    return f"'{label(name)}' cannot be empty."


def normalize_types(obj: Any, report: Report) -> None:
    """Coerce decimals and booleans anywhere in the record, check lengths; report what cannot be."""
    if isinstance(obj, list):
        for item in obj:
            normalize_types(item, report)
        return
    if not isinstance(obj, dict):
        return
    for name, value in list(obj.items()):
        if isinstance(value, dict | list):
            if name != "custom":
                normalize_types(value, report)
            continue
        if value is None:
            continue
        if name in DECIMAL_FIELDS:
            try:
                if isinstance(value, bool):
                    raise ValueError
                obj[name] = float(value)
            except (TypeError, ValueError):
                report(obj, name, f"The value '{value}' of '{label(name)}' is not a valid decimal.")
        elif name in BOOLEAN_FIELDS and not isinstance(value, bool):
            report(obj, name, f"'{label(name)}' must be true or false.")
        elif name in MAX_LENGTH and len(str(value)) > MAX_LENGTH[name]:
            report(obj, name, f"'{label(name)}' is longer than {MAX_LENGTH[name]} characters.")


def _number(value: Any) -> float:
    """A coerced decimal, or 0 where coercion failed (that failure is already reported)."""
    return value if isinstance(value, float) else 0.0


def _require_ref(store: Store, obj: dict[str, Any], name: str, entity: str, report: Report, required: bool) -> None:
    value = obj.get(name)
    if value in (None, ""):
        if required:
            report(obj, name, empty(name))
    elif not store.exists(entity, value):
        report(obj, name, not_found(name))


def _non_negative(obj: dict[str, Any], name: str, report: Report, *, strict: bool = False) -> None:
    value = obj.get(name)
    if isinstance(value, float) and (value <= 0 if strict else value < 0):
        bound = "greater than 0" if strict else "greater than or equal to 0"
        report(obj, name, f"'{label(name)}' must be {bound}.")


def _item_common(store: Store, record: dict[str, Any], report: Report) -> None:
    _require_ref(store, record, "ItemClass", "ItemClass", report, required=True)
    if record.get("ItemStatus") not in ITEM_STATUSES:
        report(record, "ItemStatus", f"'{record.get('ItemStatus')}' is not a valid value for 'Item Status'.")
    _non_negative(record, "DefaultPrice", report)
    _non_negative(record, "MSRP", report)
    for row in record.get("Attributes") or ():
        attribute_id = str(row.get("AttributeID") or "").strip().upper()
        if attribute_id not in ATTRIBUTES:
            report(row, "AttributeID", not_found("Attribute"))
        else:
            row["AttributeID"] = attribute_id
            value = row.get("Value")
            if isinstance(value, bool):
                row["Value"] = "1" if value else "0"
            elif value is not None:
                row["Value"] = str(value)
    for row in record.get("Categories") or ():
        _require_ref(store, row, "CategoryID", "ItemSalesCategory", report, required=True)


def stock_item(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    _item_common(store, record, report)
    _require_ref(store, record, "TemplateItemID", "TemplateItems", report, required=False)


def template_item(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    _item_common(store, record, report)


def kit_specification(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    kit = store.get("StockItem", record.get("KitInventoryID"))
    if kit is None:
        report(record, "KitInventoryID", not_found("KitInventoryID"))
    elif not kit.get("IsAKit"):
        report(record, "KitInventoryID", f"The item {kit['InventoryID']} is not a kit.")
    for row in record.get("StockComponents") or ():
        row.setdefault("ComponentQty", 1.0)
        row.setdefault("UOM", "EA")
        _require_ref(store, row, "StockInventoryID", "StockItem", report, required=True)
        _non_negative(row, "ComponentQty", report, strict=True)


def item_sales_category(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    try:
        if record.get("CategoryID") is not None:  # None: numbered when saved
            record["CategoryID"] = int(record["CategoryID"])
    except (TypeError, ValueError):
        report(record, "CategoryID", f"The value '{record.get('CategoryID')}' of 'Category ID' is not a valid integer.")
        return
    if not record.get("Description"):
        report(record, "Description", empty("Description"))
    parent = record.get("ParentCategoryID") or 0
    path = [str(record.get("Description") or "")]
    seen = {record.get("CategoryID")}
    while parent:
        node = store.get("ItemSalesCategory", parent)
        if node is None or node["CategoryID"] in seen:
            report(record, "ParentCategoryID", not_found("ParentCategoryID"))
            return
        seen.add(node["CategoryID"])
        path.append(str(node.get("Description") or ""))
        parent = node.get("ParentCategoryID") or 0
    record["Path"] = "/".join(reversed(path))


def customer(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    if not record.get("CustomerName"):
        report(record, "CustomerName", empty("CustomerName"))
    for holder in (record, record.get("MainContact") or {}):
        email = holder.get("Email")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
            report(holder, "Email", f"'{email}' is not a valid e-mail address.")
    _require_ref(store, record, "ShipVia", "ShipVia", report, required=False)


def sales_order(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    if record.get("OrderType") not in ORDER_TYPES:
        report(record, "OrderType", not_found("OrderType"))
    _require_ref(store, record, "CustomerID", "Customer", report, required=True)
    _require_ref(store, record, "ShipVia", "ShipVia", report, required=False)
    next_line = max((row["LineNbr"] for row in record["Details"] if isinstance(row.get("LineNbr"), int)), default=0)
    total = 0.0
    for row in record["Details"]:
        item = store.get("StockItem", row.get("InventoryID")) if row.get("InventoryID") else None
        _require_ref(store, row, "InventoryID", "StockItem", report, required=True)
        row.setdefault("OrderQty", 1.0)
        row.setdefault("UOM", "EA")
        row.setdefault("WarehouseID", "MAIN")
        if row.get("UnitPrice") is None and item is not None:
            row["UnitPrice"] = item.get("DefaultPrice", 0.0)
        _require_ref(store, row, "WarehouseID", "Warehouse", report, required=True)
        _non_negative(row, "OrderQty", report, strict=True)
        _non_negative(row, "UnitPrice", report)
        if not isinstance(row.get("LineNbr"), int) or row["LineNbr"] <= 0:
            next_line += 1
            row["LineNbr"] = next_line
        row.setdefault("OpenQty", row["OrderQty"])
        total += _number(row.get("OrderQty")) * _number(row.get("UnitPrice")) - _number(row.get("DiscountAmount"))
    record["OrderTotal"] = round(total, 2)
    if old is None:
        now = store.clock.now()
        record.setdefault("Date", now)
        record["CreatedDate"] = now
        record["Status"] = "On Hold" if record.get("Hold") else "Open"
    elif record.get("Status") in ("Open", "On Hold"):
        record["Status"] = "On Hold" if record.get("Hold") else "Open"


def shipment(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    _require_ref(store, record, "CustomerID", "Customer", report, required=True)
    _require_ref(store, record, "WarehouseID", "Warehouse", report, required=True)
    _require_ref(store, record, "ShipVia", "ShipVia", report, required=False)
    for row in record["Orders"]:
        row.setdefault("OrderType", "SO")
        if not row.get("OrderNbr"):
            report(row, "OrderNbr", empty("OrderNbr"))
        elif not store.exists("SalesOrder", row["OrderType"], row["OrderNbr"]):
            report(row, "OrderNbr", not_found("SalesOrder"))
    for row in record.get("Details") or ():
        _require_ref(store, row, "InventoryID", "StockItem", report, required=True)
        _non_negative(row, "ShippedQty", report)
    for row in record["Packages"]:
        row.setdefault("BoxID", "DEFAULT")
        row.setdefault("Confirmed", False)
        _non_negative(row, "Weight", report)
    record["PackageCount"] = len(record["Packages"])
    record["ShippedQty"] = sum(_number(row.get("ShippedQty")) for row in record.get("Details") or ())
    record.setdefault("ShipmentDate", store.clock.now())


def availability(store: Store, record: dict[str, Any], old: dict[str, Any] | None, report: Report) -> None:
    _require_ref(store, record, "InventoryID", "StockItem", report, required=True)
    _require_ref(store, record, "WarehouseID", "Warehouse", report, required=True)


RULES: dict[str, Callable[[Store, dict[str, Any], dict[str, Any] | None, Report], None]] = {
    "StockItem": stock_item,
    "TemplateItems": template_item,
    "KitSpecification": kit_specification,
    "ItemSalesCategory": item_sales_category,
    "Customer": customer,
    "SalesOrder": sales_order,
    "Shipment": shipment,
    "InventoryQuantityAvailable": availability,
}
