"""Acumatica items → Rithum products: the rules and the mapping, with no I/O.

A simple stock item becomes a standalone product, a matrix (template) item a parent whose variants
are its children, a kit a bundle of its stock components. An item is exported only when its item
class maps to a Rithum classification and its "Active on Rithum" flag is set; anything else is
*Filtered* with the rule that stopped it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.acumatica.values import attribute, custom_field

SKU_MAX = 50
TITLE_MAX = 120
RELATIONSHIP_MAX = 50
BUNDLE_MAX_COMPONENTS = 10
TRUE_VALUES = {"1", "true", "yes", "y", "on"}


class Kind(StrEnum):
    STANDALONE = "standalone"
    PARENT = "parent"
    CHILD = "child"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class FieldRef:
    """Where a per-tenant value lives on an item: an attribute (`ACTIVERITHUM`) or a custom field."""

    source: str  # "attribute" | "custom"
    name: str

    @classmethod
    def parse(cls, text: str) -> FieldRef:
        source, sep, name = text.partition(":")
        if not sep:
            return cls("attribute", text)
        if source not in ("attribute", "custom") or not name:
            raise ValueError(f"{text!r}: expected 'attribute:NAME' or 'custom:View.Field'")
        return cls(source, name)

    def read(self, item: Mapping[str, Any]) -> Any:
        return attribute(item, self.name) if self.source == "attribute" else custom_field(item, self.name)

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class ProductRules:
    classifications: Mapping[str, str]  # item class → Rithum classification
    active_flag: FieldRef = FieldRef("attribute", "ACTIVERITHUM")
    fba_flag: FieldRef = FieldRef("attribute", "ALLOWFBA")
    product_id_field: FieldRef = FieldRef("attribute", "CAPRODUCTID")
    # item class → (relationship name, variation attribute IDs); default: the variants' own attributes
    relationships: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # item class → its attribute IDs (from Acumatica), the default variation attributes
    class_attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    on_unlist: str = "zero_quantity"  # or "delete"

    def custom_fields(self) -> tuple[str, ...]:
        """Custom fields the reads must ask for: Acumatica returns them only when named in `$custom`."""
        refs = (self.active_flag, self.fba_flag, self.product_id_field)
        return tuple(dict.fromkeys(ref.name for ref in refs if ref.source == "custom"))


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in TRUE_VALUES if value is not None else False


def ineligible_reason(item: Mapping[str, Any], rules: ProductRules) -> str | None:
    """Why the item must not be on Rithum, or None if it may be exported."""
    item_class = str(item.get("ItemClass") or "").strip()
    if item_class not in rules.classifications:
        return f"item class {item_class or '(none)'!r} is not mapped to a Rithum classification"
    if not truthy(rules.active_flag.read(item)):
        return f"'Active on Rithum' ({rules.active_flag}) is not set"
    return None


@dataclass
class RithumProduct:
    sku: str
    kind: Kind
    body: dict[str, Any]
    parent_sku: str | None = None
    component_skus: tuple[str, ...] = ()
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(self.body, self.parent_sku)


COLLECTIONS = ("Attributes", "BundleComponents")


def scalars(body: Mapping[str, Any]) -> dict[str, Any]:
    """The product's own properties: all a PATCH may carry (collections have their own calls)."""
    return {k: v for k, v in body.items() if k not in COLLECTIONS}


def attributes_of(body: Mapping[str, Any] | None) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in (body or {}).get("Attributes", ())}


def components_of(body: Mapping[str, Any] | None) -> dict[str, int]:
    return {c["ComponentSku"]: c["Quantity"] for c in (body or {}).get("BundleComponents", ())}


def content_hash(body: Mapping[str, Any], parent_sku: str | None) -> str:
    canonical = json.dumps({"body": body, "parent": parent_sku}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class TransformError(ValueError):
    """The item passes the rules but cannot be represented on Rithum (e.g. a SKU too long)."""


def _base(item: Mapping[str, Any], rules: ProductRules) -> dict[str, Any]:
    sku = str(item["InventoryID"]).strip()
    if len(sku) > SKU_MAX:
        raise TransformError(f"SKU {sku!r} is longer than Rithum's {SKU_MAX} characters")
    title = str(item.get("Description") or sku).strip()[:TITLE_MAX]
    body: dict[str, Any] = {
        "Sku": sku,
        "Title": title,
        "Classification": rules.classifications[str(item.get("ItemClass")).strip()],
    }
    if item.get("DefaultPrice") is not None:
        body["RetailPrice"] = float(item["DefaultPrice"])
    if item.get("MSRP"):
        body["StorePrice"] = float(item["MSRP"])
    if item.get("DimensionWeight"):
        body["Weight"] = float(item["DimensionWeight"])
    attributes = [{"Name": "AllowedForFBA", "Value": "true" if truthy(rules.fba_flag.read(item)) else "false"}]
    body["Attributes"] = attributes
    return body


def standalone(item: Mapping[str, Any], rules: ProductRules) -> RithumProduct:
    return RithumProduct(str(item["InventoryID"]).strip(), Kind.STANDALONE, _base(item, rules))


def variation(
    template: Mapping[str, Any], variants: Sequence[Mapping[str, Any]], rules: ProductRules
) -> tuple[RithumProduct, list[RithumProduct]]:
    """The parent and its children; variation attributes come from the mapping or the variants."""
    item_class = str(template.get("ItemClass") or "").strip()
    mapped = rules.relationships.get(item_class)
    skip = {rules.active_flag.name.upper(), rules.fba_flag.name.upper(), rules.product_id_field.name.upper()}
    if mapped:
        relationship, attribute_ids = mapped[0], tuple(a.upper() for a in mapped[1])
    else:
        # The item class's own attributes, so a family gets the same name whichever variants are at hand.
        seen: dict[str, None] = {
            a.upper(): None for a in rules.class_attributes.get(item_class, ()) if a.upper() not in skip
        }
        for variant in variants if not seen else ():
            for row in variant.get("Attributes") or ():
                name = str(row.get("AttributeID", "")).strip().upper()
                if name and name not in skip:
                    seen[name] = None
        attribute_ids = tuple(seen)
        relationship = "-".join(a.title() for a in attribute_ids) or "Variation"
    relationship = relationship[:RELATIONSHIP_MAX]
    parent_body = _base(template, rules) | {
        "IsParent": True,
        "IsInRelationship": True,
        "RelationshipName": relationship,
    }
    parent = RithumProduct(parent_body["Sku"], Kind.PARENT, parent_body)
    children = []
    for variant in variants:
        body = _base({**variant, "ItemClass": template.get("ItemClass")}, rules)
        body |= {"IsParent": False, "IsInRelationship": True, "RelationshipName": relationship}
        for name in attribute_ids:
            value = attribute(variant, name)
            if value is not None:
                body["Attributes"].append({"Name": name, "Value": str(value)})
        children.append(RithumProduct(body["Sku"], Kind.CHILD, body, parent_sku=parent.sku))
    return parent, children


def bundle(kit_item: Mapping[str, Any], spec: Mapping[str, Any], rules: ProductRules) -> RithumProduct:
    components = [
        (str(row.get("StockInventoryID") or "").strip(), row.get("ComponentQty") or 1)
        for row in spec.get("StockComponents") or ()
    ]
    components = [(sku, qty) for sku, qty in components if sku]
    if not components:
        raise TransformError("kit has no stock components")
    if len(components) > BUNDLE_MAX_COMPONENTS:
        raise TransformError(f"kit has {len(components)} components; Rithum allows at most {BUNDLE_MAX_COMPONENTS}")
    body = _base(kit_item, rules) | {
        "BundleType": "BundleItem",
        "BundleComponents": [{"ComponentSku": sku, "Quantity": int(float(qty))} for sku, qty in components],
    }
    return RithumProduct(body["Sku"], Kind.BUNDLE, body, component_skus=tuple(s for s, _ in components))


def write_order(products: Sequence[RithumProduct]) -> list[RithumProduct]:
    """Parents before children and components before bundles: standalone and parents, then the rest."""
    rank = {Kind.STANDALONE: 0, Kind.PARENT: 0, Kind.CHILD: 1, Kind.BUNDLE: 2}
    return sorted(products, key=lambda p: rank[p.kind])
