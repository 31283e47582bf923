"""Products and distribution centres held in memory, indexed by ID, SKU, parent, bundle component and
UpdateDateUtc.

Every write goes through one plan-then-commit path, so the REST handlers, `$batch` parts and FTP feed
rows enforce the same rules and a refused change leaves nothing half-applied.
"""

from __future__ import annotations

import secrets
import time
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, bad_request, not_found
from .odata import T, compile_filter, format_datetime, order_rows

STR_FIELDS = (
    "Sku Title Subtitle Brand Manufacturer Condition Description ShortDescription UPC EAN ISBN MPN ASIN "
    "HarmonizedCode TaxProductCode WarehouseLocation Warranty SupplierName SupplierCode SupplierPO "
    "Classification BlockComment RelationshipName BundleType"
).split()
FLOAT_FIELDS = (
    "Height Length Width Weight Cost Margin RetailPrice StartingPrice ReservePrice BuyItNowPrice StorePrice "
    "SecondChancePrice MinPrice MaxPrice"
).split()
PRODUCT_SCHEMA: dict[str, T] = {
    "ID": T.INT,
    "ProfileID": T.INT,
    "CreateDateUtc": T.DATETIME,
    "UpdateDateUtc": T.DATETIME,
    "QuantityUpdateDateUtc": T.DATETIME,
    "IsBlocked": T.BOOL,
    "IsParent": T.BOOL,
    "IsInRelationship": T.BOOL,
    "ParentProductID": T.INT,
    "MultipackQuantity": T.INT,
    "TotalAvailableQuantity": T.INT,
    "TotalQuantity": T.INT,
    **{name: T.STR for name in STR_FIELDS},
    **{name: T.FLOAT for name in FLOAT_FIELDS},
}
READ_ONLY = {"ID", "CreateDateUtc", "UpdateDateUtc", "QuantityUpdateDateUtc", "TotalAvailableQuantity", "TotalQuantity"}
PRODUCT_EXPANDS = ("Attributes", "Labels", "BundleComponents", "DCQuantities", "Children")
WRITABLE_COLLECTIONS = ("Attributes", "Labels", "BundleComponents")
INDEXED = ("ID", "Sku", "ParentProductID")
ORDERED = ("UpdateDateUtc",)
BUNDLE_TYPES = {"None", "BundleComponent", "BundleItem", "AssemblyBundleItem"}
BUNDLE_ITEM_TYPES = {"BundleItem", "AssemblyBundleItem"}
UPDATE_TYPES = {"Absolute", "Relative", "Available", "InStock", "UnShipped"}
DC_TYPES = {"Warehouse", "ExternallyManaged", "DropShip", "RetailStore"}
MAX_LENGTH = {"Sku": 50, "Title": 120, "RelationshipName": 50}
MAX_BUNDLE_COMPONENTS = 10
# A list query's matches are kept for its nextLink pages this many seconds after the last page read,
# and for at most this many queries at once (the least recently read goes first), bounding memory.
SNAPSHOT_TTL = 600.0
MAX_SNAPSHOTS = 32
MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE = 32, 32_000
# Relationship and identity fields are never copied from a parent to its children.
NOT_COPIED = {
    "Sku",
    "IsParent",
    "IsInRelationship",
    "ParentProductID",
    "RelationshipName",
    "BundleType",
    "BundleComponents",
    "ProfileID",
    "CopyToChildren",
}

DEFAULT_DCS = [
    {"ID": 1, "Code": "MAIN", "Name": "Main Warehouse", "Type": "Warehouse"},
    {"ID": 2, "Code": "EAST", "Name": "East Coast Warehouse", "Type": "Warehouse"},
    {"ID": 3, "Code": "WEST", "Name": "West Coast Warehouse", "Type": "Warehouse"},
    # Quantity of an externally managed DC (e.g. Amazon's warehouses) is reported by the marketplace, not set.
    {"ID": 4, "Code": "FBA", "Name": "Amazon FBA", "Type": "ExternallyManaged"},
]

Product = dict[str, Any]


def _external(dc: Mapping[str, Any]) -> bool:
    return dc["Type"] == "ExternallyManaged"


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def check_type(entity: str, name: str, value: Any, kind: T) -> None:
    """JSON values must match the Edm type of the property; null clears it."""
    if value is None:
        return
    if kind is T.STR:
        ok = isinstance(value, str)
    elif kind is T.BOOL:
        ok = isinstance(value, bool)
    elif isinstance(value, bool):
        ok = False
    elif kind is T.INT:
        ok = isinstance(value, int)
    else:
        ok = kind is T.FLOAT and isinstance(value, int | float)
    if not ok:
        raise bad_request(f"Cannot convert the value of '{name}' on type '{entity}' to {kind.value}.")


def _value(body: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    value = body.get("Value") if isinstance(body, Mapping) else None
    if not isinstance(value, Mapping):
        raise bad_request(f'{what} expects a body of the form {{"Value": {{...}}}}.')
    return value


@dataclass
class QuantityUpdate:
    update_type: str
    updates: list[tuple[int, int]]  # (DistributionCenterID, Quantity)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> QuantityUpdate:
        value = _value(body, "UpdateQuantity")
        update_type = value.get("UpdateType")
        if update_type not in UPDATE_TYPES:
            raise bad_request(f"UpdateType must be one of {', '.join(sorted(UPDATE_TYPES))}.")
        rows = value.get("Updates")
        if not isinstance(rows, list) or not rows:
            raise bad_request("Updates must be a non-empty list of {DistributionCenterID, Quantity}.")
        updates = []
        for row in rows:
            dc, qty = (row.get("DistributionCenterID"), row.get("Quantity")) if isinstance(row, dict) else (None, None)
            if not isinstance(dc, int) or not isinstance(qty, int) or isinstance(qty, bool):
                raise bad_request("Each update needs an integer DistributionCenterID and an integer Quantity.")
            updates.append((dc, qty))
        return cls(update_type, updates)


@dataclass
class _Snapshot:
    """The IDs a list query matched on its first page, which its nextLink pages walk."""

    filter: str | None
    orderby: str | None
    ids: list[int]
    read_at: float


@dataclass
class _Plan:
    """A validated change, ready to commit."""

    product: Product
    is_new: bool
    components: list[tuple[int, int]] | None = None  # (component ID, quantity); None = unchanged
    dc: dict[int, int] | None = None
    copy_to_children: dict[str, Any] = field(default_factory=dict)


class Catalog:
    def __init__(self, profile_id: int) -> None:
        self.profile_id = profile_id
        self._template: Product = {name: None for name in PRODUCT_SCHEMA}
        self._template.update(
            ProfileID=profile_id,
            IsBlocked=False,
            IsParent=False,
            BundleType="None",
            TotalAvailableQuantity=0,
            TotalQuantity=0,
        )
        self.reset()

    def reset(self) -> None:
        self.products: dict[int, Product] = {}
        self.by_sku: dict[str, int] = {}
        self.children: dict[int, set[int]] = {}
        self.bundles_of: dict[int, set[int]] = {}  # component ID -> bundle IDs
        self.by_update: list[tuple[datetime, int]] = []  # (UpdateDateUtc, ID), sorted
        self.distribution_centers: dict[int, dict[str, Any]] = {dc["ID"]: dict(dc) for dc in DEFAULT_DCS}
        self.version = 0
        self._next_id = 1
        self._query_cache: dict[tuple[str, str], list[int]] = {}
        self._cache_version = -1
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()

    # --- reads -----------------------------------------------------------------------------------

    def get(self, product_id: int) -> Product:
        product = self.products.get(product_id)
        if product is None:
            raise not_found("Product", product_id)
        return product

    def query_ids(self, filter_text: str | None, orderby: str | None) -> list[int]:
        """IDs matching the filter in result order, cached until the next write so paging is cheap."""
        if self._cache_version != self.version:
            self._query_cache.clear()
            self._cache_version = self.version
        key = (filter_text or "", orderby or "")
        cached = self._query_cache.get(key)
        if cached is not None:
            return cached
        if filter_text:
            compiled = compile_filter(filter_text, "Product", PRODUCT_SCHEMA, INDEXED, ORDERED)
            if compiled.lookups is None:
                rows: Iterable[Product] = self.products.values()
            else:
                ids = set().union(*(self._lookup(lk.prop, lk.value, lk.op) for lk in compiled.lookups))
                rows = (self.products[i] for i in sorted(ids))
            matched = [p for p in rows if compiled.predicate(p)]
        else:
            matched = list(self.products.values())
        if orderby:
            matched = order_rows(matched, orderby, "Product", PRODUCT_SCHEMA)
        result = [p["ID"] for p in matched]
        if len(self._query_cache) > 32:
            self._query_cache.clear()
        self._query_cache[key] = result
        return result

    def keep(self, ids: list[int], filter_text: str | None, orderby: str | None) -> str:
        """Keep a query's matches for its following pages; returns the `$skiptoken` that names them.

        Pages after the first then neither query the catalogue again (a write between pages would
        otherwise mean a full rescan per page) nor shift under the reader: each match is listed once.
        """
        self._expire()
        token = secrets.token_urlsafe(12)
        self._snapshots[token] = _Snapshot(filter_text, orderby, ids, time.monotonic())
        while len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return token

    def resume(self, token: str, filter_text: str | None, orderby: str | None) -> list[int]:
        """The matches `keep` stored under `token` (products deleted since may be among them)."""
        self._expire()
        snapshot = self._snapshots.get(token)
        if snapshot is None:
            raise bad_request(
                f"The $skiptoken '{token}' is unknown or has expired (nextLinks stay valid {SNAPSHOT_TTL:.0f} "
                f"seconds after the last page read); request the first page again."
            )
        if (snapshot.filter, snapshot.orderby) != (filter_text, orderby):
            raise bad_request(f"The $skiptoken '{token}' belongs to a query with another $filter or $orderby.")
        snapshot.read_at = time.monotonic()
        self._snapshots.move_to_end(token)
        return snapshot.ids

    def _expire(self) -> None:
        cutoff = time.monotonic() - SNAPSHOT_TTL
        while self._snapshots and next(iter(self._snapshots.values())).read_at < cutoff:
            self._snapshots.popitem(last=False)

    def _lookup(self, prop: str, value: Any, op: str) -> set[int]:
        if prop == "UpdateDateUtc":  # `ge` / `gt`: the tail of the sorted index
            first = (bisect_left if op == "ge" else bisect_right)(self.by_update, value, key=lambda entry: entry[0])
            return {product_id for _, product_id in self.by_update[first:]}
        if prop == "Sku":
            found = self.by_sku.get(value)
            return {found} if found is not None else set()
        if prop == "ID":
            return {value} if value in self.products else set()
        return set(self.children.get(value, ()))

    def render(self, product: Product, select: Sequence[str] | None, expand: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in select or PRODUCT_SCHEMA:
            value = product.get(name)
            out[name] = format_datetime(value) if isinstance(value, datetime) else value
        for name in expand:
            out[name] = self._collection(product, name)
        return out

    def _collection(self, product: Product, name: str) -> list[dict[str, Any]]:
        pid = product["ID"]
        if name == "Attributes":
            return [{"ProductID": pid, "Name": k, "Value": v} for k, v in product["_attributes"].items()]
        if name == "Labels":
            return [{"ProductID": pid, "Name": label} for label in product["_labels"]]
        if name == "BundleComponents":
            return [
                {"ProductID": pid, "ComponentID": cid, "ComponentSku": self.products[cid]["Sku"], "Quantity": qty}
                for cid, qty in product["_components"]
            ]
        if name == "DCQuantities":
            return [
                {"ProductID": pid, "DistributionCenterID": dc, "AvailableQuantity": qty}
                for dc, qty in sorted(product["_dc"].items())
            ]
        return [{"ProductID": pid, "ChildProductID": child} for child in sorted(self.children.get(pid, ()))]

    # --- writes ----------------------------------------------------------------------------------

    def create(self, body: Mapping[str, Any]) -> Product:
        return self._commit(self._plan(body, None))

    def update(self, product_id: int, body: Mapping[str, Any]) -> Product:
        plan = self._plan(body, self.get(product_id))
        product = self._commit(plan)
        if plan.copy_to_children:
            for child in sorted(self.children.get(product_id, ())):
                self.update(child, plan.copy_to_children)
        return product

    def upsert_by_sku(self, body: Mapping[str, Any], quantity: QuantityUpdate | None) -> Product:
        """Create or update the product named by `body["Sku"]` and set its quantity, all or nothing."""
        existing_id = self.by_sku.get(body.get("Sku"))  # type: ignore[arg-type]
        existing = self.products[existing_id] if existing_id is not None else None
        changes = {k: v for k, v in body.items() if k != "Sku"} if existing else body
        plan = self._plan(changes, existing)
        if quantity is not None:
            plan.dc = self._plan_quantity(plan.product, quantity)
        return self._commit(plan)

    def delete(self, product_id: int) -> None:
        product = self.get(product_id)
        if self.children.get(product_id):
            raise bad_request(f"Product {product_id} is a parent with children; delete or move the children first.")
        if self.bundles_of.get(product_id):
            raise bad_request(f"Product {product_id} is a component of a bundle; remove it from the bundles first.")
        self._set_components(product_id, product["_components"], [])
        parent = product.get("ParentProductID")
        if parent is not None:
            self.children[parent].discard(product_id)
        del self.products[product_id]
        del self.by_sku[product["Sku"]]
        self._reindex_update(product_id, product["UpdateDateUtc"], None)
        self.version += 1

    def update_quantity(self, product_id: int, body: Mapping[str, Any]) -> None:
        product = self.get(product_id)
        plan = _Plan(product=dict(product), is_new=False)
        plan.dc = self._plan_quantity(product, QuantityUpdate.from_body(body))
        self._commit(plan)

    def update_attributes(self, product_id: int, body: Mapping[str, Any]) -> None:
        product = self.get(product_id)
        attributes = _value(body, "UpdateAttributes").get("Attributes")
        merged = dict(product)
        merged["_attributes"] = {**product["_attributes"], **self._attributes(attributes)}
        merged["UpdateDateUtc"] = utcnow()
        self._commit(_Plan(product=merged, is_new=False))

    def add_label(self, product_id: int, name: str) -> None:
        """`PUT ProductLabels(...)`: idempotent; a label the product has already changes nothing."""
        product = self.get(product_id)
        if not name.strip():
            raise bad_request("A label needs a non-empty Name.")
        if name not in product["_labels"]:
            self._commit(self._touched(product, _labels=[*product["_labels"], name]))

    def remove_label(self, product_id: int, name: str) -> None:
        product = self.get(product_id)
        if name not in product["_labels"]:
            raise ApiError(404, f"Product {product_id} has no label '{name}'.")
        self._commit(self._touched(product, _labels=[label for label in product["_labels"] if label != name]))

    def set_bundle_component(self, product_id: int, component_id: int, quantity: Any) -> None:
        """`PUT ProductBundleComponents(...)`: add the component or change its quantity, same rules as a create."""
        product = self.get(product_id)
        self._require_bundle(product)
        _, quantity = self._component({"ProductID": component_id, "Quantity": quantity})
        components = dict(product["_components"])
        components[component_id] = quantity  # a component already there keeps its place
        plan = self._touched(product)
        plan.components = list(components.items())
        self._validate_bundle(plan)
        self._commit(plan)

    def remove_bundle_component(self, product_id: int, component_id: int) -> None:
        product = self.get(product_id)
        self._require_bundle(product)
        components = [(cid, qty) for cid, qty in product["_components"] if cid != component_id]
        if len(components) == len(product["_components"]):
            raise ApiError(404, f"Product {component_id} is not a component of bundle {product_id}.")
        if not components:
            raise bad_request(
                f"Bundle {product_id} must keep at least one component; add another before removing {component_id}."
            )
        plan = self._touched(product)
        plan.components = components
        self._commit(plan)

    def default_distribution_center(self) -> int | None:
        """Where a quantity without a DC goes: the lowest-ID centre whose quantity may be set."""
        return min((i for i, dc in self.distribution_centers.items() if not _external(dc)), default=None)

    @staticmethod
    def _touched(product: Product, **changes: Any) -> _Plan:
        """A plan changing only internal collections; UpdateDateUtc moves as with any product write."""
        return _Plan(product={**product, **changes, "UpdateDateUtc": utcnow()}, is_new=False)

    @staticmethod
    def _require_bundle(product: Product) -> None:
        if product["BundleType"] not in BUNDLE_ITEM_TYPES:
            raise bad_request(f"Product {product['ID']} ({product['Sku']}) is not a bundle.")

    # --- planning --------------------------------------------------------------------------------

    def _plan(self, body: Mapping[str, Any], existing: Product | None) -> _Plan:
        if not isinstance(body, Mapping):
            raise bad_request("The request body must be a JSON object.")
        product: Product = dict(existing) if existing else self._blank()
        plan = _Plan(product=product, is_new=existing is None)
        copy_to_children = body.get("CopyToChildren", False)
        check_type("Product", "CopyToChildren", copy_to_children, T.BOOL)
        for name, value in body.items():
            if name == "CopyToChildren":
                continue
            if name in WRITABLE_COLLECTIONS:
                self._plan_collection(plan, name, value)
                continue
            kind = PRODUCT_SCHEMA.get(name)
            if kind is None:
                raise bad_request(f"The property '{name}' does not exist on type 'Product'.")
            if name in READ_ONLY:
                raise bad_request(f"The property '{name}' is read-only.")
            check_type("Product", name, value, kind)
            product[name] = value
        if copy_to_children:
            if not product["IsParent"]:
                raise bad_request("CopyToChildren applies only to a parent product.")
            plan.copy_to_children = {k: v for k, v in body.items() if k not in NOT_COPIED}
        self._validate(plan, existing)
        product["UpdateDateUtc"] = utcnow()
        return plan

    def _blank(self) -> Product:
        now = utcnow()
        product = dict(self._template)
        product.update(CreateDateUtc=now, _attributes={}, _labels=[], _components=[], _dc={})
        return product

    def _plan_collection(self, plan: _Plan, name: str, value: Any) -> None:
        if not isinstance(value, list):
            raise bad_request(f"'{name}' must be a JSON array.")
        if name == "Attributes":
            plan.product["_attributes"] = {**plan.product["_attributes"], **self._attributes(value)}
        elif name == "Labels":
            labels = []
            for item in value:
                label = item.get("Name") if isinstance(item, dict) else None
                if not isinstance(label, str) or not label:
                    raise bad_request("Each label needs a non-empty string Name.")
                if label not in labels:
                    labels.append(label)
            plan.product["_labels"] = labels
        else:
            plan.components = [self._component(item) for item in value]

    def _attributes(self, items: Any) -> dict[str, str]:
        if not isinstance(items, list):
            raise bad_request("Attributes must be a list of {Name, Value}.")
        result = {}
        for item in items:
            name, value = (item.get("Name"), item.get("Value")) if isinstance(item, dict) else (None, None)
            if not isinstance(name, str) or not name or len(name) > MAX_ATTRIBUTE_NAME:
                raise bad_request(f"Attribute name {name!r} must be a string of 1 to {MAX_ATTRIBUTE_NAME} characters.")
            if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_VALUE:
                raise bad_request(
                    f"Value of attribute '{name}' must be a string of at most {MAX_ATTRIBUTE_VALUE} characters."
                )
            result[name] = value
        return result

    def _component(self, item: Any) -> tuple[int, int]:
        if not isinstance(item, dict):
            raise bad_request("Each bundle component must be an object with ComponentSku or ProductID, and Quantity.")
        quantity = item.get("Quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise bad_request("Each bundle component needs a Quantity of at least 1.")
        sku = item.get("ComponentSku")
        component_id = item.get("ProductID", item.get("ComponentID"))
        if sku is not None:
            found = self.by_sku.get(sku) if isinstance(sku, str) else None
            if found is None:
                raise bad_request(f"Bundle component SKU '{sku}' does not exist.")
            return found, quantity
        if isinstance(component_id, int) and component_id in self.products:
            return component_id, quantity
        raise bad_request(f"Bundle component product {component_id!r} does not exist.")

    def _validate(self, plan: _Plan, existing: Product | None) -> None:
        p = plan.product
        sku = p.get("Sku")
        if not sku or not sku.strip():
            raise bad_request("Sku is required.")
        if existing is not None and sku != existing["Sku"]:
            raise bad_request("Sku cannot be changed.")
        if p["ProfileID"] != self.profile_id:
            raise bad_request(f"ProfileID {p['ProfileID']} is not the profile of this token ({self.profile_id}).")
        if existing is None and sku in self.by_sku:
            raise ApiError(409, f"A product with Sku '{sku}' already exists (ID {self.by_sku[sku]}).")
        for name, limit in MAX_LENGTH.items():
            if p.get(name) is not None and len(p[name]) > limit:
                raise bad_request(f"{name} must be at most {limit} characters (got {len(p[name])}).")
        for name in FLOAT_FIELDS:
            if p.get(name) is not None and p[name] < 0:
                raise bad_request(f"{name} must not be negative.")
        if p["BundleType"] is None:
            p["BundleType"] = "None"
        if p["BundleType"] not in BUNDLE_TYPES:
            raise bad_request(f"BundleType must be one of {', '.join(sorted(BUNDLE_TYPES))}.")
        if p["IsParent"] is None:
            p["IsParent"] = False
        self._validate_relationship(p, existing)
        self._validate_bundle(plan)

    def _validate_relationship(self, p: Product, existing: Product | None) -> None:
        pid, parent_id, name = p["ID"], p["ParentProductID"], p["RelationshipName"]
        in_relationship = p["IsParent"] or parent_id is not None
        if p["IsInRelationship"] not in (None, in_relationship):
            raise bad_request("IsInRelationship must be true exactly for a parent or a child (ParentProductID).")
        p["IsInRelationship"] = in_relationship
        if p["IsParent"]:
            if parent_id is not None:
                raise bad_request("A parent product cannot itself have a ParentProductID.")
            if not name:
                raise bad_request("A parent product needs a RelationshipName.")
        elif existing is not None and existing["IsParent"] and self.children.get(pid):
            raise bad_request(f"Product {pid} has children and must stay a parent.")
        if (
            existing is not None
            and existing["IsParent"]
            and self.children.get(pid)
            and name != existing["RelationshipName"]
        ):
            raise bad_request(f"RelationshipName of parent {pid} cannot change while it has children.")
        if parent_id is not None:
            parent = self.products.get(parent_id)
            if parent is None:
                raise bad_request(f"Parent product {parent_id} does not exist.")
            if not parent["IsParent"]:
                raise bad_request(f"Product {parent_id} ({parent['Sku']}) is not a parent product.")
            if name != parent["RelationshipName"]:
                raise bad_request(
                    f"A child must have the same RelationshipName as its parent "
                    f"('{parent['RelationshipName']}'), got {name!r}."
                )
        elif name and not p["IsParent"]:
            raise bad_request("RelationshipName is set but the product is neither a parent nor a child.")

    def _validate_bundle(self, plan: _Plan) -> None:
        p = plan.product
        components = plan.components if plan.components is not None else p["_components"]
        is_bundle = p["BundleType"] in BUNDLE_ITEM_TYPES
        if components and not is_bundle:
            raise bad_request("BundleComponents need BundleType 'BundleItem' or 'AssemblyBundleItem'.")
        if not is_bundle:
            return
        if not components:
            raise bad_request(f"A bundle ({p['BundleType']}) needs at least one component.")
        if len(components) > MAX_BUNDLE_COMPONENTS:
            raise bad_request(f"A bundle can have at most {MAX_BUNDLE_COMPONENTS} components (got {len(components)}).")
        if p["IsParent"]:
            raise bad_request("A parent product cannot be a bundle.")
        seen = set()
        for component_id, _ in components:
            component = self.products[component_id]
            if component_id == p["ID"]:
                raise bad_request("A bundle cannot contain itself.")
            if component["IsParent"]:
                raise bad_request(f"Bundle component '{component['Sku']}' is a parent product, which cannot be sold.")
            if component_id in seen:
                raise bad_request(f"Bundle component '{component['Sku']}' is listed twice.")
            seen.add(component_id)

    def _plan_quantity(self, product: Product, update: QuantityUpdate) -> dict[int, int]:
        if product["IsParent"]:
            raise bad_request(f"Product '{product['Sku']}' is a parent; parents carry no quantity.")
        if product["BundleType"] in BUNDLE_ITEM_TYPES:
            raise bad_request(f"Product '{product['Sku']}' is a bundle; its quantity comes from its components.")
        dc = dict(product["_dc"])
        for dc_id, qty in update.updates:
            center = self.distribution_centers.get(dc_id)
            if center is None:
                raise bad_request(f"Distribution center {dc_id} does not exist.")
            if _external(center):
                raise bad_request(
                    f"Distribution center {dc_id} ({center['Code']}) is externally managed; its quantity cannot be set."
                )
            if update.update_type == "Relative":
                dc[dc_id] = dc.get(dc_id, 0) + qty
            elif qty < 0:
                raise bad_request(f"Quantity {qty} for distribution center {dc_id} must not be negative.")
            else:
                dc[dc_id] = qty
        return dc

    # --- commit ----------------------------------------------------------------------------------

    def _commit(self, plan: _Plan) -> Product:
        p = plan.product
        if plan.is_new:
            p["ID"] = self._next_id
            self._next_id += 1
            self.by_sku[p["Sku"]] = p["ID"]
            old_parent, old_components, old_update = None, [], None
        else:
            old = self.products[p["ID"]]
            old_parent, old_components, old_update = old["ParentProductID"], old["_components"], old["UpdateDateUtc"]
        pid = p["ID"]
        self._reindex_update(pid, old_update, p["UpdateDateUtc"])
        if old_parent != p["ParentProductID"]:
            if old_parent is not None:
                self.children[old_parent].discard(pid)
            if p["ParentProductID"] is not None:
                self.children.setdefault(p["ParentProductID"], set()).add(pid)
        if plan.components is not None:
            self._set_components(pid, old_components, plan.components)
            p["_components"] = plan.components
        if plan.dc is not None:
            p["_dc"] = plan.dc
            p["QuantityUpdateDateUtc"] = utcnow()
        self.products[pid] = p
        self._refresh_quantity(p)
        for bundle_id in self.bundles_of.get(pid, ()):
            self._refresh_quantity(self.products[bundle_id])
        self.version += 1
        return p

    def _reindex_update(self, product_id: int, old: datetime | None, new: datetime | None) -> None:
        if old == new:
            return
        if old is not None:
            del self.by_update[bisect_left(self.by_update, (old, product_id))]
        if new is not None:
            insort(self.by_update, (new, product_id))

    def _set_components(self, bundle_id: int, old: list[tuple[int, int]], new: list[tuple[int, int]]) -> None:
        for component_id, _ in old:
            self.bundles_of.get(component_id, set()).discard(bundle_id)
        for component_id, _ in new:
            self.bundles_of.setdefault(component_id, set()).add(bundle_id)

    def _refresh_quantity(self, p: Product) -> None:
        """A bundle's quantity is how many whole bundles its components allow; a parent has none."""
        if p["BundleType"] in BUNDLE_ITEM_TYPES and p["_components"]:
            total = min(self.products[cid]["TotalAvailableQuantity"] // qty for cid, qty in p["_components"])
        elif p["IsParent"]:
            total = 0
        else:
            total = sum(p["_dc"].values())
        p["TotalAvailableQuantity"] = p["TotalQuantity"] = total

    # --- distribution centres --------------------------------------------------------------------

    def set_distribution_centers(self, centers: Sequence[Mapping[str, Any]]) -> None:
        parsed: dict[int, dict[str, Any]] = {}
        codes = set()
        for dc in centers:
            dc_id, code = dc.get("ID"), dc.get("Code")
            if not isinstance(dc_id, int) or isinstance(dc_id, bool) or dc_id < 1:
                raise bad_request("Each distribution center needs a positive integer ID.")
            if not isinstance(code, str) or not code or code in codes or dc_id in parsed:
                raise bad_request("Each distribution center needs a unique non-empty Code and a unique ID.")
            dc_type = dc.get("Type", "Warehouse")
            if dc_type not in DC_TYPES:
                raise bad_request(f"Distribution center Type must be one of {', '.join(sorted(DC_TYPES))}.")
            codes.add(code)
            parsed[dc_id] = {"ID": dc_id, "Code": code, "Name": str(dc.get("Name") or code), "Type": dc_type}
        if not parsed:
            raise bad_request("At least one distribution center is required.")
        self.distribution_centers = parsed

    def render_distribution_center(self, dc: Mapping[str, Any]) -> dict[str, Any]:
        return {**dc, "ProfileID": self.profile_id, "IsExternallyManaged": _external(dc)}
