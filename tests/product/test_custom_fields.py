"""The "Active on Rithum" flag and the CA Product ID kept in custom fields of the item's eCommerce tab.

Acumatica returns a custom field only when a read names it in `$custom` (the sandbox does the same),
so a flag there is seen only if the connector asks for it; the ID goes back in the documented
`custom` shape and stays on the item.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import SyncRecord, SyncStatus
from tests.product.conftest import Stack, eventually

FLAG = "ItemSettings.UsrRithumActive"
PRODUCT_ID = "ItemSettings.UsrCAProductID"


def item(sku: str, flag: bool | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "InventoryID": sku,
        "Description": f"Custom field item {sku}",
        "ItemClass": "TOYS",
        "DefaultPrice": 12.0,
        # The attribute says "active" for every item: only the custom field may decide.
        "Attributes": [{"AttributeID": "ACTIVERITHUM", "Value": "1"}],
    }
    if flag is not None:
        record["custom"] = {"ItemSettings": {"UsrRithumActive": flag}}
    return record


async def record(sessionmaker: Any, key: str) -> SyncRecord | None:
    async with sessionmaker() as session:
        return await session.scalar(select(SyncRecord).where(SyncRecord.acumatica_key == key))


def custom_value(stack: Stack, sku: str, path: str) -> Any:
    view, _, name = path.partition(".")
    with stack.acu() as acu:
        stored = acu.get(f"/records/StockItem/{sku}").raise_for_status().json()
    return ((stored.get("custom") or {}).get(view) or {}).get(name)


async def test_flag_and_product_id_in_custom_fields(fresh: Stack, clean_db) -> None:
    fresh.reset(items=10)
    options = {"product": {"active_flag": f"custom:{FLAG}", "product_id_field": f"custom:{PRODUCT_ID}"}}
    with fresh.api() as api:
        api.put("/config", json={"options": options}).raise_for_status()
    with fresh.acu() as acu:
        records = [item("CF-ON", True), item("CF-OFF", False), item("CF-UNSET", None)]
        acu.post("/records/StockItem", json={"records": records}).raise_for_status()
    # The push notification brings the keys; the consumer's read must name the flag in `$custom` (without
    # it the API answers `"custom": {}`, tests/acumatica/test_sandbox.py) to list CF-ON and only it.
    stored = await eventually(
        lambda: _processed(clean_db, "CF-ON"), what="CF-ON listed on Rithum (flag read from the custom field)"
    )
    for sku in ("CF-OFF", "CF-UNSET"):
        filtered = await eventually(lambda sku=sku: record(clean_db, sku), what=f"{sku} recorded")
        assert filtered.status == SyncStatus.FILTERED and FLAG in filtered.last_error, filtered.last_error
    await eventually(
        lambda: custom_value(fresh, "CF-ON", PRODUCT_ID) == stored.rithum_id,
        what="CA Product ID written into the custom field",
    )
    # The write-back left the flag alone, and a later change of the item keeps both values.
    assert custom_value(fresh, "CF-ON", FLAG) is True
    with fresh.acu() as acu:
        acu.post("/records/StockItem/change", json={"keys": ["CF-ON"], "set": {"Description": "Renamed CF"}})
    await eventually(lambda: _title(fresh, "CF-ON") == "Renamed CF", what="rename reaching Rithum")
    assert custom_value(fresh, "CF-ON", PRODUCT_ID) == stored.rithum_id


async def _processed(sessionmaker: Any, key: str) -> SyncRecord | None:
    found = await record(sessionmaker, key)
    return found if found is not None and found.status == SyncStatus.PROCESSED else None


def _title(stack: Stack, sku: str) -> str | None:
    with stack.rit() as rit:
        found = rit.get("/products", params={"sku": sku}).json()["value"]
    return found[0]["Title"] if found else None
