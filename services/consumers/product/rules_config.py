"""Building the product rules from the mappings table and the site configuration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.consumers.product.transform import FieldRef, ProductRules
from shared.db.models import Mapping

ITEM_CLASS = "item_class"  # source: Acumatica item class → target: Rithum classification
VARIATION = "variation"  # source: item class → target: relationship name, options.attributes: [IDs]
UNLIST_CHOICES = ("zero_quantity", "delete")


def rules_from(mappings: list[Mapping], options: dict[str, Any]) -> ProductRules:
    product = options.get("product", {})
    on_unlist = product.get("on_unlist", "zero_quantity")
    if on_unlist not in UNLIST_CHOICES:
        raise ValueError(f"options.product.on_unlist must be one of {UNLIST_CHOICES}, not {on_unlist!r}")
    return ProductRules(
        classifications={m.source: m.target for m in mappings if m.kind == ITEM_CLASS},
        relationships={
            m.source: (m.target, tuple(m.options.get("attributes", ()))) for m in mappings if m.kind == VARIATION
        },
        active_flag=FieldRef.parse(product.get("active_flag", "attribute:ACTIVERITHUM")),
        fba_flag=FieldRef.parse(product.get("fba_flag", "attribute:ALLOWFBA")),
        product_id_field=FieldRef.parse(product.get("product_id_field", "attribute:CAPRODUCTID")),
        on_unlist=on_unlist,
    )


async def load_rules(session: AsyncSession, options: dict[str, Any]) -> ProductRules:
    mappings = list(await session.scalars(select(Mapping).where(Mapping.kind.in_([ITEM_CLASS, VARIATION]))))
    return rules_from(mappings, options)
