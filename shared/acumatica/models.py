"""Typed views of the Acumatica entities the connector reads and writes.

Only fields the connector uses are declared; everything else the API returns is kept as extra
data and sent back unchanged. `from_api` reads value-wrapped JSON, `to_api` writes it (leaving out
fields that are None, so a PUT never blanks what it did not mean to touch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from shared.acumatica.values import attribute, unwrap, wrap

TRUE_VALUES = frozenset({"1", "true", "yes"})


class Row(BaseModel):
    """A detail line or linked object; keeps unknown fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None


class AcumaticaModel(Row):
    entity: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]

    custom: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Self:
        return cls.from_plain(unwrap(data))

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(data)

    def to_plain(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"custom"} if not self.custom else set())

    def to_api(self) -> dict[str, Any]:
        return wrap(self.to_plain())


class Attribute(Row):
    AttributeID: str
    Value: str | None = None


class CategoryRef(Row):
    CategoryID: int


class _Attributed(AcumaticaModel):
    Attributes: list[Attribute] | None = None

    def attribute(self, attribute_id: str) -> str | None:
        return attribute({"Attributes": [a.model_dump() for a in self.Attributes or ()]}, attribute_id)

    def flag(self, attribute_id: str) -> bool:
        """A check-box attribute (`"1"` / `"0"`, or True/False on some tenants)."""
        return str(self.attribute(attribute_id) or "").strip().lower() in TRUE_VALUES


class StockItem(_Attributed):
    entity: ClassVar[str] = "StockItem"
    keys: ClassVar[tuple[str, ...]] = ("InventoryID",)

    InventoryID: str | None = None
    Description: str | None = None
    ItemClass: str | None = None
    ItemStatus: str | None = None
    IsAKit: bool | None = None
    TemplateItemID: str | None = None
    BaseUOM: str | None = None
    DefaultPrice: float | None = None
    MSRP: float | None = None
    DimensionWeight: float | None = None
    WeightUOM: str | None = None
    ExportToExternal: bool | None = None
    Categories: list[CategoryRef] | None = None
    LastModified: datetime | None = None
    LastModifiedDateTime: datetime | None = None


class MatrixItem(Row):
    InventoryID: str
    Description: str | None = None
    DefaultPrice: float | None = None
    MSRP: float | None = None
    ItemStatus: str | None = None


class TemplateItem(_Attributed):
    entity: ClassVar[str] = "TemplateItems"
    keys: ClassVar[tuple[str, ...]] = ("InventoryID",)

    InventoryID: str | None = None
    Description: str | None = None
    ItemClass: str | None = None
    ItemStatus: str | None = None
    DefaultPrice: float | None = None
    MSRP: float | None = None
    Categories: list[CategoryRef] | None = None
    Matrix: list[MatrixItem] | None = None
    LastModified: datetime | None = None


class KitComponent(Row):
    StockInventoryID: str
    ComponentQty: float | None = None
    UOM: str | None = None


class KitSpecification(AcumaticaModel):
    entity: ClassVar[str] = "KitSpecification"
    keys: ClassVar[tuple[str, ...]] = ("KitInventoryID", "RevisionID")

    KitInventoryID: str | None = None
    RevisionID: str | None = None
    Description: str | None = None
    Active: bool | None = None
    StockComponents: list[KitComponent] | None = None
    LastModifiedDateTime: datetime | None = None


class ItemClass(AcumaticaModel):
    entity: ClassVar[str] = "ItemClass"
    keys: ClassVar[tuple[str, ...]] = ("ClassID",)

    ClassID: str | None = None
    Description: str | None = None
    LastModifiedDateTime: datetime | None = None


class CategoryMember(Row):
    InventoryID: str
    ItemClass: str | None = None
    ItemStatus: str | None = None


class ItemSalesCategory(AcumaticaModel):
    entity: ClassVar[str] = "ItemSalesCategory"
    keys: ClassVar[tuple[str, ...]] = ("CategoryID",)

    CategoryID: int | None = None
    ParentCategoryID: int | None = None
    Path: str | None = None
    Description: str | None = None
    SortOrder: int | None = None
    Members: list[CategoryMember] | None = None
    LastModifiedDateTime: datetime | None = None


class PostalAddress(Row):
    AddressLine1: str | None = None
    AddressLine2: str | None = None
    City: str | None = None
    State: str | None = None
    PostalCode: str | None = None
    Country: str | None = None


class Contact(Row):
    DisplayName: str | None = None
    Attention: str | None = None
    BusinessName: str | None = None
    Email: str | None = None
    Phone1: str | None = None
    Address: PostalAddress | None = None


class Customer(AcumaticaModel):
    entity: ClassVar[str] = "Customer"
    keys: ClassVar[tuple[str, ...]] = ("CustomerID",)

    CustomerID: str | None = None
    CustomerName: str | None = None
    CustomerClass: str | None = None
    Status: str | None = None
    Email: str | None = None
    MainContact: Contact | None = None
    LastModifiedDateTime: datetime | None = None


class SalesOrderLine(Row):
    InventoryID: str | None = None
    OrderQty: float | None = None
    UnitPrice: float | None = None
    DiscountAmount: float | None = None
    UOM: str | None = None
    WarehouseID: str | None = None
    LineNbr: int | None = None
    LineDescription: str | None = None
    ExternalRef: str | None = None


class OrderShipment(Row):
    ShipmentNbr: str
    Status: str | None = None
    ShippedQty: float | None = None
    ShipmentDate: datetime | None = None


class SalesOrder(AcumaticaModel):
    entity: ClassVar[str] = "SalesOrder"
    keys: ClassVar[tuple[str, ...]] = ("OrderType", "OrderNbr")

    OrderType: str | None = None
    OrderNbr: str | None = None
    Status: str | None = None
    CustomerID: str | None = None
    Date: datetime | None = None
    Description: str | None = None
    Hold: bool | None = None
    CustomerOrder: str | None = Field(None, max_length=40)
    ExternalRef: str | None = Field(None, max_length=40)
    ShipVia: str | None = None
    CurrencyID: str | None = None
    OrderTotal: float | None = None
    ShipToAddress: PostalAddress | None = None
    BillToAddress: PostalAddress | None = None
    ShipToContact: Contact | None = None
    Details: list[SalesOrderLine] | None = None
    Shipments: list[OrderShipment] | None = None
    LastModified: datetime | None = None


class ShipmentOrder(Row):
    OrderType: str | None = None
    OrderNbr: str


class ShipmentPackage(Row):
    BoxID: str | None = None
    TrackingNbr: str | None = Field(None, max_length=60)
    Weight: float | None = None
    Confirmed: bool | None = None


class ShipmentLine(Row):
    InventoryID: str | None = None
    ShippedQty: float | None = None
    OrderNbr: str | None = None
    OrderLineNbr: int | None = None


class Shipment(AcumaticaModel):
    entity: ClassVar[str] = "Shipment"
    keys: ClassVar[tuple[str, ...]] = ("ShipmentNbr",)

    ShipmentNbr: str | None = None
    Type: str | None = None
    Status: str | None = None
    ShipmentDate: datetime | None = None
    CustomerID: str | None = None
    WarehouseID: str | None = None
    ShipVia: str | None = None
    PackageCount: int | None = None
    ShippedQty: float | None = None
    Orders: list[ShipmentOrder] | None = None
    Packages: list[ShipmentPackage] | None = None
    Details: list[ShipmentLine] | None = None
    LastModifiedDateTime: datetime | None = None


class InventoryAvailability(AcumaticaModel):
    """Quantity of one item in one warehouse (the sandbox's InventoryQuantityAvailable rows)."""

    entity: ClassVar[str] = "InventoryQuantityAvailable"
    keys: ClassVar[tuple[str, ...]] = ("InventoryID", "WarehouseID")

    InventoryID: str | None = None
    WarehouseID: str | None = None
    QtyOnHand: float | None = None
    QtyAvailable: float | None = None
    LastModifiedDateTime: datetime | None = None
