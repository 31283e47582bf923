"""Demo set-up for `make run` (and the end-to-end tests): wire the sandboxes to the connector.

It maps every seeded item class but MISC to a Rithum classification, registers the product
queries in the site configuration, and points the Acumatica sandbox's push notifications at the
ingress webhook with the shared secret. Everything goes through public HTTP APIs.
"""

from __future__ import annotations

import os
import sys
import time

import httpx

UNMAPPED_CLASS = "MISC"  # left unmapped on purpose: its items show up as Filtered
PRODUCT_FIELDS = [
    "InventoryID", "Description", "ItemClass", "ItemStatus", "DefaultPrice", "MSRP", "DimensionWeight",
    "TemplateItemID", "IsAKit", "AttributeACTIVERITHUM", "AttributeALLOWFBA",
]  # fmt: skip
PUSH_DEFINITIONS = [
    {"query": "RithumProducts", "entity": "StockItem", "fields": PRODUCT_FIELDS},
    {
        "query": "RithumProductTemplates",
        "entity": "TemplateItems",
        "fields": ["InventoryID", "Description", "ItemClass", "DefaultPrice", "AttributeACTIVERITHUM"],
    },
    {"query": "RithumKits", "entity": "KitSpecification", "fields": ["KitInventoryID", "Description", "Active"]},
]
EXTRA_QUERIES = {"RithumProductTemplates": "product", "RithumKits": "product"}


def wait(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {url} did not come up within {timeout:.0f}s")
        time.sleep(0.5)


def configure(
    *, ingress: str, token: str, acumatica: str, webhook_secret: str, webhook_header: str = "Authorization"
) -> dict[str, int]:
    api = httpx.Client(base_url=f"{ingress}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    admin = httpx.Client(base_url=f"{acumatica}/_sandbox", timeout=30)
    with api, admin:
        classes = admin.get("/records/ItemClass", params={"limit": 1000}).raise_for_status().json()
        rows = classes["records"] if isinstance(classes, dict) else classes
        mapped = [
            {"source": c["ClassID"].strip(), "target": c.get("Description") or c["ClassID"].strip()}
            for c in rows
            if c["ClassID"].strip() != UNMAPPED_CLASS
        ]
        api.put("/mappings/item_class", json=mapped).raise_for_status()
        query_map = api.get("/config").raise_for_status().json()["query_map"]
        api.put("/config", json={"query_map": {**query_map, **EXTRA_QUERIES}}).raise_for_status()
        for definition in PUSH_DEFINITIONS:
            body = {
                **definition,
                "url": f"{ingress}/webhooks/acumatica",
                "header_name": webhook_header,
                "header_value": webhook_secret,
            }
            admin.post("/push/definitions", json=body).raise_for_status()
    return {"item_classes": len(mapped), "push_definitions": len(PUSH_DEFINITIONS)}


def main() -> int:
    ingress = f"http://127.0.0.1:{os.environ.get('INGRESS_PORT', '8000')}"
    acumatica = os.environ.get("ACUMATICA_URL", "http://127.0.0.1:8101")
    wait(f"{ingress}/readyz")
    wait(f"{acumatica}/_sandbox/health")
    done = configure(
        ingress=ingress,
        token=os.environ["API_TOKEN"],
        acumatica=acumatica,
        webhook_secret=os.environ.get("WEBHOOK_SECRET", "sandbox-webhook-secret"),
        webhook_header=os.environ.get("WEBHOOK_HEADER", "Authorization"),
    )
    print(f"demo: mapped {done['item_classes']} item classes, {done['push_definitions']} push definitions", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
