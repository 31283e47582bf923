"""What each sandbox entity looks like: keys, fields, details, change-tracking names, numbering.

Field names and the change-tracking field per entity follow Default/24.200.001 (`LastModified` on
StockItem, TemplateItems and SalesOrder, `LastModifiedDateTime` elsewhere). Only the fields a
connector plausibly reads or writes are modelled; anything else sent in a PUT is rejected with 400,
so a client that misspells a field finds out here rather than in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENDPOINT = "Default/24.200.001"


@dataclass(frozen=True)
class EntitySpec:
    name: str
    keys: tuple[str, ...]
    fields: frozenset[str]
    modified: tuple[str, ...] = ("LastModifiedDateTime",)
    # detail collection -> fields of a row that identify it when a PUT sends the row without `id`
    details: dict[str, tuple[str, ...]] = field(default_factory=dict)
    linked: frozenset[str] = frozenset()
    derived: frozenset[str] = frozenset()  # read-only details computed from other records
    readonly: frozenset[str] = frozenset()  # ignored in API PUTs (the admin API may set them)
    numbering: str | None = None  # prefix for an auto-numbered key (last key field) on insert
    defaults: dict[str, Any] = field(default_factory=dict)
    actions: frozenset[str] = frozenset()

    @property
    def expandable(self) -> frozenset[str]:
        return frozenset(self.details) | self.linked | self.derived

    def knows(self, name: str) -> bool:
        return name in self.fields or name in self.expandable or name in self.modified


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


_ITEM_FIELDS = _f(
    "InventoryID",
    "Description",
    "ItemClass",
    "ItemStatus",
    "ItemType",
    "IsAKit",
    "PostingClass",
    "TaxCategory",
    "BaseUOM",
    "SalesUOM",
    "PurchaseUOM",
    "DefaultPrice",
    "MSRP",
    "DimensionWeight",
    "WeightUOM",
    "ImageUrl",
    "ExportToExternal",
    "TemplateItemID",
    "NoteID",
    "Content",
)

# What a new stock item is unless told otherwise; the seed builds its items from the same values.
NEW_ITEM: dict[str, Any] = {
    "ItemStatus": "Active",
    "ItemType": "Finished Good",
    "IsAKit": False,
    "BaseUOM": "EA",
    "SalesUOM": "EA",
    "PurchaseUOM": "EA",
}

SPECS: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "StockItem",
            keys=("InventoryID",),
            fields=_ITEM_FIELDS,
            modified=("LastModified", "LastModifiedDateTime"),
            details={
                "Attributes": ("AttributeID",),
                "Categories": ("CategoryID",),
                "CrossReferences": ("AlternateID",),
            },
            defaults={
                **NEW_ITEM,
                "DefaultPrice": 0.0,
                "ExportToExternal": True,
                "Attributes": [],
                "Categories": [],
            },
        ),
        EntitySpec(
            "TemplateItems",
            keys=("InventoryID",),
            fields=_f(
                "InventoryID",
                "Description",
                "ItemClass",
                "ItemStatus",
                "IsStockItem",
                "BaseUOM",
                "DefaultPrice",
                "MSRP",
                "ExportToExternal",
            ),
            modified=("LastModified", "LastModifiedDateTime"),
            details={"Attributes": ("AttributeID",), "Categories": ("CategoryID",)},
            derived=_f("Matrix"),
            defaults={
                "ItemStatus": "Active",
                "IsStockItem": True,
                "BaseUOM": "EA",
                "DefaultPrice": 0.0,
                "ExportToExternal": True,
                "Attributes": [],
                "Categories": [],
            },
        ),
        EntitySpec(
            "KitSpecification",
            keys=("KitInventoryID", "RevisionID"),
            fields=_f("KitInventoryID", "RevisionID", "Description", "Active", "IsNonStock"),
            details={"StockComponents": ("StockInventoryID",)},
            defaults={"RevisionID": "1", "Active": True, "IsNonStock": False, "StockComponents": []},
        ),
        EntitySpec(
            "ItemClass",
            keys=("ClassID",),
            fields=_f("ClassID", "Description", "StockItem", "ItemType", "BaseUOM", "PostingClass", "TaxCategoryID"),
            details={"Attributes": ("AttributeID",)},
            defaults={"StockItem": True, "ItemType": "Finished Good", "BaseUOM": "EA", "Attributes": []},
        ),
        EntitySpec(
            "ItemSalesCategory",
            keys=("CategoryID",),
            fields=_f("CategoryID", "ParentCategoryID", "Path", "Description", "SortOrder"),
            derived=_f("Members"),
            readonly=_f("Path"),
            numbering="",
            defaults={"ParentCategoryID": 0, "SortOrder": 0},
        ),
        EntitySpec(
            "Customer",
            keys=("CustomerID",),
            fields=_f(
                "CustomerID",
                "CustomerName",
                "CustomerClass",
                "Status",
                "Email",
                "ShipVia",
                "TaxZone",
                "Terms",
                "PriceClassID",
                "IsGuestCustomer",
            ),
            details={"Attributes": ("AttributeID",)},
            linked=_f("MainContact", "ShippingContact", "BillingContact"),
            numbering="C",
            defaults={"CustomerClass": "DEFAULT", "Status": "Active", "IsGuestCustomer": False},
        ),
        EntitySpec(
            "SalesOrder",
            keys=("OrderType", "OrderNbr"),
            fields=_f(
                "OrderType",
                "OrderNbr",
                "Status",
                "CustomerID",
                "LocationID",
                "Date",
                "RequestedOn",
                "Description",
                "Hold",
                "CustomerOrder",
                "ExternalRef",
                "ExternalOrderOrigin",
                "ExternalOrderSource",
                "PaymentRef",
                "ShipVia",
                "OrderTotal",
                "TaxTotal",
                "CurrencyID",
                "ShipToAddressOverride",
                "CreatedDate",
            ),
            modified=("LastModified",),
            details={"Details": (), "Shipments": ("ShipmentNbr",)},
            linked=_f("ShipToAddress", "BillToAddress", "ShipToContact", "ShippingSettings"),
            readonly=_f("Status", "OrderTotal", "CreatedDate", "Shipments"),
            numbering="SO",
            defaults={"OrderType": "SO", "Status": "Open", "Hold": False, "CurrencyID": "USD", "Details": []},
            actions=_f("CancelSalesOrder"),
        ),
        EntitySpec(
            "Shipment",
            keys=("ShipmentNbr",),
            fields=_f(
                "ShipmentNbr",
                "Type",
                "Status",
                "ShipmentDate",
                "CustomerID",
                "WarehouseID",
                "ShipVia",
                "PackageCount",
                "ShippedQty",
                "Description",
            ),
            details={"Orders": ("OrderType", "OrderNbr"), "Details": (), "Packages": ()},
            readonly=_f("Status", "PackageCount", "ShippedQty"),
            numbering="SH",
            defaults={"Type": "Shipment", "Status": "Open", "WarehouseID": "MAIN", "Orders": [], "Packages": []},
            actions=_f("ConfirmShipment"),
        ),
        EntitySpec(
            "InventoryQuantityAvailable",
            keys=("InventoryID", "WarehouseID"),
            fields=_f("InventoryID", "WarehouseID", "QtyOnHand", "QtyAvailable"),
            defaults={"QtyOnHand": 0.0, "QtyAvailable": 0.0},
        ),
        EntitySpec("Warehouse", keys=("WarehouseID",), fields=_f("WarehouseID", "Description", "Active")),
        EntitySpec("ShipVia", keys=("ShipViaID",), fields=_f("ShipViaID", "Description", "Carrier", "Active")),
    )
}

DECIMAL_FIELDS = _f(
    "DefaultPrice",
    "MSRP",
    "DimensionWeight",
    "OrderQty",
    "UnitPrice",
    "DiscountAmount",
    "QtyOnHand",
    "QtyAvailable",
    "ComponentQty",
    "ShippedQty",
    "Weight",
    "OrderTotal",
    "TaxTotal",
    "DeclaredValue",
    "OpenQty",
    "FreightPrice",
)
BOOLEAN_FIELDS = _f(
    "IsAKit",
    "Hold",
    "Active",
    "IsNonStock",
    "StockItem",
    "IsStockItem",
    "ExportToExternal",
    "Confirmed",
    "ManualPrice",
    "Completed",
    "IsGuestCustomer",
    "Required",
    "ShipToAddressOverride",
)
MAX_LENGTH = {
    "InventoryID": 30,
    "StockInventoryID": 30,
    "KitInventoryID": 30,
    "TemplateItemID": 30,
    "CustomerID": 30,
    "Description": 256,
    "CustomerOrder": 40,
    "ExternalRef": 40,
    "TrackingNbr": 60,
    "Email": 255,
}

# Attribute definitions the seeded tenant knows (AttributeID -> description)
ATTRIBUTES = {
    "ACTIVERITHUM": "Active on Rithum",
    "ALLOWFBA": "Allowed for FBA",
    "CAPRODUCTID": "CA Product ID",
    "COLOR": "Color",
    "SIZE": "Size",
    "BRAND": "Brand",
}
ITEM_STATUSES = _f("Active", "Inactive", "No Sales", "No Purchases", "No Request", "Marked for Deletion")
ORDER_TYPES = _f("SO", "CS", "QT", "IN", "RC")
