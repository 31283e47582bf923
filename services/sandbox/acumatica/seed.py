"""A realistic, deterministic demo catalogue (same random seed → same data).

Of N stock items roughly 70% are simple items, 15% variants of matrix families (a TemplateItems
record plus variant StockItems carrying `TemplateItemID` and COLOR/SIZE attributes), 10% kits (with a
KitSpecification over simple items) and 5% items that fail the export rules: half in the MISC class,
which the demo does not map, half with ACTIVERITHUM = 0. Every item has availability in MAIN and
often in EAST/WEST. Records are built as plain dicts and bulk-loaded, so 100k items take seconds.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from .entities import NEW_ITEM
from .store import Store

CLASSES: dict[str, tuple[str, str, list[str]]] = {
    "APPAREL": ("Apparel", "AP", ["T-Shirt", "Hoodie", "Jacket", "Cap", "Polo", "Sweater"]),
    "ELECTRONICS": ("Electronics", "EL", ["Headphones", "Charger", "Speaker", "Cable", "Mouse", "Keyboard"]),
    "TOYS": ("Toys", "TY", ["Puzzle", "Building Set", "Plush Bear", "Race Car", "Board Game"]),
    "HOME": ("Home", "HM", ["Mug", "Lamp", "Cushion", "Towel Set", "Candle", "Vase"]),
    "BOOKS": ("Books", "BK", ["Novel", "Cookbook", "Atlas", "Notebook", "Travel Guide"]),
    "MISC": ("Miscellaneous", "MS", ["Gift Card", "Sample", "Spare Part"]),
}
MAPPED_CLASSES = ["APPAREL", "ELECTRONICS", "TOYS", "HOME", "BOOKS"]
UNMAPPED_CLASS = "MISC"
MATRIX_CLASSES = ["APPAREL", "HOME"]
SUBCATEGORIES = {
    "APPAREL": ["Tops", "Outerwear"],
    "ELECTRONICS": ["Audio", "Accessories"],
    "TOYS": ["Games", "Plush"],
    "HOME": ["Kitchen", "Decor"],
    "BOOKS": ["Fiction", "Reference"],
    "MISC": ["Clearance"],
}
ADJECTIVES = ["Classic", "Deluxe", "Compact", "Organic", "Vintage", "Premium", "Everyday", "Travel", "Eco", "Pro"]
COLORS = ["RED", "BLUE", "GREEN", "BLACK", "WHITE"]
SIZES = ["S", "M", "L", "XL"]
WAREHOUSES = {"MAIN": "Main warehouse", "EAST": "East coast warehouse", "WEST": "West coast warehouse"}
SHIP_VIAS = {
    "FEDEXGROUND": ("FedEx Ground", "FEDEX"),
    "FEDEX2DAY": ("FedEx 2Day", "FEDEX"),
    "UPSGROUND": ("UPS Ground", "UPS"),
    "USPSPRIORITY": ("USPS Priority Mail", "USPS"),
}
CUSTOMERS = [
    ("Alice Johnson", "alice.johnson@example.com", "Portland", "OR", "97201"),
    ("Bob Martinez", "bob.martinez@example.com", "Austin", "TX", "73301"),
    ("Carol Nguyen", "carol.nguyen@example.com", "Chicago", "IL", "60601"),
    ("Dan Okafor", "dan.okafor@example.com", "Boston", "MA", "02108"),
    ("Eve Schmidt", "eve.schmidt@example.com", "Denver", "CO", "80202"),
]
# Seeded change stamps lie in 2024, so every change made later is newer than all of them.
SEED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SEED_SPAN_MS = 365 * 86_400_000


class _Catalogue:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.items: list[dict[str, Any]] = []
        self.templates: list[dict[str, Any]] = []
        self.kits: list[dict[str, Any]] = []
        self.availability: list[dict[str, Any]] = []
        self.categories: dict[str, list[int]] = {}
        self.category_rows: list[dict[str, Any]] = []
        self.serial = 0

    def stamp(self) -> datetime:
        return SEED_EPOCH + timedelta(milliseconds=self.rng.randrange(SEED_SPAN_MS))

    def build_categories(self) -> None:
        next_id = 1
        for class_id, (description, _, _) in CLASSES.items():
            root = next_id
            self.category_rows.append(self._category(root, 0, description, description))
            next_id += 1
            for sub in SUBCATEGORIES[class_id]:
                self.category_rows.append(self._category(next_id, root, sub, f"{description}/{sub}"))
                self.categories.setdefault(class_id, []).append(next_id)
                next_id += 1

    def _category(self, category_id: int, parent: int, description: str, path: str) -> dict[str, Any]:
        return {
            "CategoryID": category_id,
            "ParentCategoryID": parent,
            "Path": path,
            "Description": description,
            "SortOrder": category_id,
            "LastModifiedDateTime": self.stamp(),
        }

    def _base(self, inventory_id: str, class_id: str, description: str, active: str) -> dict[str, Any]:
        rng = self.rng
        price = round(rng.uniform(3, 300), 2)
        stamp = self.stamp()
        return {
            "InventoryID": inventory_id,
            "Description": description,
            "ItemClass": class_id,
            **NEW_ITEM,
            "DefaultPrice": price,
            "MSRP": round(price * 1.3, 2),
            "DimensionWeight": round(rng.uniform(0.1, 20), 2),
            "WeightUOM": "LB",
            "ExportToExternal": True,
            "Attributes": [
                {"AttributeID": "ACTIVERITHUM", "Value": active},
                {"AttributeID": "ALLOWFBA", "Value": "1" if rng.random() < 0.3 else "0"},
            ],
            "Categories": [{"CategoryID": rng.choice(self.categories[class_id])}],
            "LastModified": stamp,
            "LastModifiedDateTime": stamp,
        }

    def _name(self, class_id: str) -> tuple[str, str]:
        self.serial += 1
        _, prefix, nouns = CLASSES[class_id]
        return f"{prefix}{self.serial:06d}", f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(nouns)}"

    def stock_item(self, class_id: str, active: str = "1") -> dict[str, Any]:
        inventory_id, description = self._name(class_id)
        item = self._base(inventory_id, class_id, description, active)
        self._stock(item)
        return item

    def _stock(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        rng = self.rng
        for warehouse, chance in (("MAIN", 1.0), ("EAST", 0.5), ("WEST", 0.3)):
            if rng.random() < chance:
                on_hand = float(rng.randrange(0, 500))
                self.availability.append(
                    {
                        "InventoryID": item["InventoryID"],
                        "WarehouseID": warehouse,
                        "QtyOnHand": on_hand,
                        "QtyAvailable": on_hand - rng.randrange(0, 10) if on_hand >= 10 else on_hand,
                        "LastModifiedDateTime": item["LastModified"],
                    }
                )

    def family(self, size: int) -> None:
        class_id = self.rng.choice(MATRIX_CLASSES)
        template_id, description = self._name(class_id)
        template = self._base(template_id, class_id, description, "1")
        for name in ("ItemType", "IsAKit", "SalesUOM", "PurchaseUOM", "DimensionWeight", "WeightUOM"):
            template.pop(name)
        template["IsStockItem"] = True
        self.templates.append(template)
        combos = [(c, s) for c in COLORS for s in SIZES]
        self.rng.shuffle(combos)
        for color, size_code in combos[:size]:
            variant = self._base(
                f"{template_id}-{color}-{size_code}", class_id, f"{description} {color} {size_code}", "1"
            )
            variant["TemplateItemID"] = template["InventoryID"]
            variant["DefaultPrice"], variant["MSRP"] = template["DefaultPrice"], template["MSRP"]
            variant["Categories"] = [dict(c) for c in template["Categories"]]
            variant["Attributes"] += [
                {"AttributeID": "COLOR", "Value": color},
                {"AttributeID": "SIZE", "Value": size_code},
            ]
            self._stock(variant)

    def kit(self, components: list[str]) -> None:
        item = self.stock_item(self.rng.choice(MAPPED_CLASSES))
        item["IsAKit"] = True
        item["Description"] = f"{item['Description']} Bundle"
        self.kits.append(
            {
                "KitInventoryID": item["InventoryID"],
                "RevisionID": "1",
                "Description": item["Description"],
                "Active": True,
                "IsNonStock": False,
                "StockComponents": [
                    {"StockInventoryID": c, "ComponentQty": float(self.rng.randint(1, 3)), "UOM": "EA"}
                    for c in self.rng.sample(components, min(len(components), self.rng.randint(2, 3)))
                ],
                "LastModifiedDateTime": item["LastModified"],
            }
        )


def seed(store: Store, items: int, random_seed: int = 1) -> dict[str, int]:
    """Replace all data with a catalogue of `items` stock items; returns record counts per entity."""
    rng = random.Random(random_seed)
    cat = _Catalogue(rng)
    cat.build_categories()
    variants, kits, failing = round(items * 0.15), round(items * 0.10), round(items * 0.05)
    simple = max(0, items - variants - kits - failing)
    for _ in range(simple):
        cat.stock_item(rng.choice(MAPPED_CLASSES))
    simple_ids = [item["InventoryID"] for item in cat.items]
    made = 0
    while made < variants:
        size = min(variants - made, rng.randint(2, 6))
        cat.family(size)
        made += size
    for _ in range(kits if simple_ids else 0):
        cat.kit(simple_ids)
    for n in range(failing):
        if n % 2 == 0:
            cat.stock_item(UNMAPPED_CLASS)
        else:
            cat.stock_item(rng.choice(MAPPED_CLASSES), active="0")

    store.clear()
    store.load("ItemClass", [_item_class(class_id, description) for class_id, (description, _, _) in CLASSES.items()])
    store.load("Warehouse", [{"WarehouseID": w, "Description": d, "Active": True} for w, d in WAREHOUSES.items()])
    store.load(
        "ShipVia",
        [{"ShipViaID": s, "Description": d, "Carrier": c, "Active": True} for s, (d, c) in SHIP_VIAS.items()],
    )
    store.load("Customer", [_customer(n, *row) for n, row in enumerate(CUSTOMERS, 1)])
    store.load("ItemSalesCategory", cat.category_rows)
    store.load("TemplateItems", cat.templates)
    store.load("StockItem", cat.items)
    store.load("KitSpecification", cat.kits)
    store.load("InventoryQuantityAvailable", cat.availability)
    return {name: len(table.rows) for name, table in store.tables.items()}


def _item_class(class_id: str, description: str) -> dict[str, Any]:
    return {
        "ClassID": class_id,
        "Description": description,
        "StockItem": True,
        "ItemType": "Finished Good",
        "BaseUOM": "EA",
        "PostingClass": "STOCKITEM",
        "TaxCategoryID": "TAXABLE",
        "Attributes": [
            {"AttributeID": attribute_id, "Required": False, "SortOrder": n}
            for n, attribute_id in enumerate(("ACTIVERITHUM", "ALLOWFBA", "CAPRODUCTID", "COLOR", "SIZE"), 1)
        ],
        "LastModifiedDateTime": SEED_EPOCH,
    }


def _customer(number: int, name: str, email: str, city: str, state: str, postal: str) -> dict[str, Any]:
    address = {
        "AddressLine1": f"{100 + number} Main St",
        "City": city,
        "State": state,
        "PostalCode": postal,
        "Country": "US",
    }
    return {
        "CustomerID": f"C{number:06d}",
        "CustomerName": name,
        "CustomerClass": "DEFAULT",
        "Status": "Active",
        "Email": email,
        "IsGuestCustomer": False,
        "MainContact": {"DisplayName": name, "Email": email, "Phone1": f"555-010{number}", "Address": address},
        "LastModifiedDateTime": SEED_EPOCH,
    }
