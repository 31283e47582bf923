"""The sandbox answers an `or` of leading-key equalities from its index: exactly what a full scan answers.

Each query is compared byte for byte with the same query plus a clause that is true for every row
(`InventoryID ne null`), which the index cannot serve, so the sandbox scans the table.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.acumatica import filters as F

from .conftest import API, Admin


def _any_of(field: str, keys: list[str]) -> str:
    """What the connector sends for a batch of keys (`shared.acumatica.filters.any_of`)."""
    return str(F.any_of(*(F.field(field).eq(key) for key in keys)))


async def _same_as_scan(
    session: httpx.AsyncClient, entity: str, expression: str, always_true: str, **params: str
) -> list[dict[str, Any]]:
    fast = await session.get(f"{API}/{entity}", params={"$filter": expression, **params})
    scan = await session.get(f"{API}/{entity}", params={"$filter": f"({expression}) and {always_true}", **params})
    assert fast.status_code == scan.status_code == 200, (fast.text, scan.text)
    assert fast.content == scan.content, (expression, params)
    return fast.json()


async def test_item_keys_are_looked_up_in_table_order_with_scan_semantics(
    admin: Admin, session: httpx.AsyncClient
) -> None:
    await admin.seed(300)
    items = [r["InventoryID"] for r in await admin.records("StockItem", limit=1000)]
    item_class = (await admin.records("StockItem", limit=1))[0]["ItemClass"]
    # deleted and put back: the record now comes last in the table, so in a scan's answer
    moved = items[3]
    assert (await session.delete(f"{API}/StockItem/{moved}")).status_code == 204
    await admin.upsert("StockItem", {"InventoryID": moved, "ItemClass": item_class})
    # stored with trailing blanks and mixed case, and a key that only full case folding matches ('ß' ~ 'SS')
    await admin.upsert("StockItem", {"InventoryID": "Odd-Key  ", "ItemClass": item_class})
    await admin.upsert("StockItem", {"InventoryID": "STRASSE", "ItemClass": item_class})

    keys = [
        items[250],
        moved.lower(),
        "NO-SUCH-ITEM",
        items[0] + "   ",
        items[250],  # twice
        "odd-key",
        "straße",
        items[10],
        "O'Brien",
    ]
    expression = _any_of("InventoryID", keys)
    rows = await _same_as_scan(session, "StockItem", expression, "InventoryID ne null")
    assert [r["InventoryID"]["value"] for r in rows] == [items[0], items[10], items[250], moved, "Odd-Key  ", "STRASSE"]
    assert [r["rowNumber"] for r in rows] == [1, 2, 3, 4, 5, 6]

    for params in (
        {"$top": "2"},
        {"$skip": "2", "$top": "3"},
        {"$skip": "5"},
        {"$skip": "6"},
        {"$top": "0"},
        {"$expand": "Attributes", "$select": "InventoryID,Attributes/Value", "$skip": "1"},
    ):
        await _same_as_scan(session, "StockItem", expression, "InventoryID ne null", **params)
    single = await _same_as_scan(session, "StockItem", f"InventoryID eq '{items[42]}'", "InventoryID ne null")
    assert [r["InventoryID"]["value"] for r in single] == [items[42]]
    assert await _same_as_scan(session, "StockItem", _any_of("InventoryID", ["NOPE-1", "NOPE-2"]), "true") == []

    # the index follows later writes: a new item, a deleted one
    await admin.upsert("StockItem", {"InventoryID": "NEW-ITEM", "ItemClass": item_class})
    assert (await session.delete(f"{API}/StockItem/{items[10]}")).status_code == 204
    rows = await _same_as_scan(session, "StockItem", _any_of("InventoryID", [*keys, "new-item"]), "InventoryID ne null")
    assert [r["InventoryID"]["value"] for r in rows] == [
        items[0],
        items[250],
        moved,
        "Odd-Key  ",
        "STRASSE",
        "NEW-ITEM",
    ]


async def test_kit_specifications_are_found_with_every_revision(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(300)
    specs = await admin.records("KitSpecification", limit=1000)
    kits = [s["KitInventoryID"] for s in specs]
    component = specs[0]["StockComponents"][0]["StockInventoryID"]
    await admin.upsert(
        "KitSpecification",
        {"KitInventoryID": kits[1], "RevisionID": "2", "StockComponents": [{"StockInventoryID": component}]},
    )
    keys = [kits[2], kits[1].lower(), "NO-SUCH-KIT", kits[1]]
    expression = _any_of("KitInventoryID", keys)
    params = {"$expand": "StockComponents"}
    rows = await _same_as_scan(session, "KitSpecification", expression, "KitInventoryID ne null", **params)
    assert [(r["KitInventoryID"]["value"], r["RevisionID"]["value"]) for r in rows] == [
        (kits[1], specs[1]["RevisionID"]),
        (kits[2], specs[2]["RevisionID"]),
        (kits[1], "2"),
    ]
    await _same_as_scan(
        session, "KitSpecification", expression, "KitInventoryID ne null", **{"$top": "2", "$skip": "1"}
    )


async def test_a_string_never_equals_a_numeric_key(admin: Admin, session: httpx.AsyncClient) -> None:
    await admin.seed(20)
    assert await _same_as_scan(session, "ItemSalesCategory", "CategoryID eq '1'", "CategoryID ne null") == []
    by_number = await session.get(f"{API}/ItemSalesCategory", params={"$filter": "CategoryID eq 1"})
    assert [r["CategoryID"]["value"] for r in by_number.json()] == [1]
