"""Reading both sandboxes' state for assertions: what should be on Rithum, and what is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.consumers.product.source import changed_at
from shared.db.models import SyncRecord
from tests.product.conftest import Stack

UNMAPPED = "MISC"


def attr(record: dict[str, Any], name: str) -> Any:
    for row in record.get("Attributes") or ():
        if str(row.get("AttributeID", "")).strip() == name:
            return row.get("Value")
    return None


def acumatica_records(stack: Stack, entity: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with stack.acu() as acu:
        while True:
            page = acu.get(f"/records/{entity}", params={"limit": 1000, "offset": len(out)}).json()["records"]
            out += page
            if len(page) < 1000:
                return out


async def written_back(stack: Stack, sessionmaker: Any, skus: set[str]) -> bool:
    """Every SKU's Acumatica item carries its Rithum product ID (CA Product ID), and its sync record
    the change stamp of that write (so a delta does not take the write-back for a change)."""
    async with sessionmaker() as session:
        stored = {
            r.acumatica_key: r
            for r in await session.scalars(select(SyncRecord).where(SyncRecord.acumatica_key.in_(skus)))
        }
    items = {
        r["InventoryID"]: r
        for r in acumatica_records(stack, "StockItem") + acumatica_records(stack, "TemplateItems")
        if r["InventoryID"] in skus
    }
    return all(
        sku in stored
        and sku in items
        and attr(items[sku], "CAPRODUCTID") == stored[sku].rithum_id
        and stored[sku].source_modified_at == changed_at(items[sku])
        for sku in skus
    )


def rithum_products(stack: Stack) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with stack.rit() as rit:
        while True:
            page = rit.get("/products", params={"skip": len(out), "top": 1000}).json()["value"]
            out += page
            if len(page) < 1000:
                return out


def expected(stack: Stack) -> dict[str, Any]:
    """Eligible SKUs by kind, and the ineligible ones, computed from Acumatica with the manual's rules."""
    items = acumatica_records(stack, "StockItem")
    templates = {t["InventoryID"]: t for t in acumatica_records(stack, "TemplateItems")}
    kits = {k["KitInventoryID"]: k for k in acumatica_records(stack, "KitSpecification")}

    def eligible(record: dict[str, Any], item_class: str | None = None) -> bool:
        return (item_class or record["ItemClass"]) != UNMAPPED and attr(record, "ACTIVERITHUM") == "1"

    result: dict[str, Any] = {"standalone": set(), "parent": set(), "child": {}, "bundle": {}, "ineligible": set()}
    for template_id, template in templates.items():
        (result["parent"] if eligible(template) else result["ineligible"]).add(template_id)
    for item in items:
        sku = item["InventoryID"]
        parent = item.get("TemplateItemID")
        if parent:
            if eligible(templates[parent]) and eligible(item, templates[parent]["ItemClass"]):
                result["child"][sku] = parent
            else:
                result["ineligible"].add(sku)
        elif not eligible(item):
            result["ineligible"].add(sku)
        elif item.get("IsAKit"):
            result["bundle"][sku] = {
                c["StockInventoryID"]: int(c["ComponentQty"]) for c in kits[sku]["StockComponents"]
            }
        else:
            result["standalone"].add(sku)
    result["items"] = {i["InventoryID"]: i for i in items} | templates
    return result
