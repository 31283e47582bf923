"""Acumatica push notifications: validation and the split into one message per changed record.

Acumatica sends a transaction's changes as two arrays: `Inserted` holds new row states and
`Deleted` old ones, so an update appears in both. Key values can arrive padded with spaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.messaging.envelope import Envelope

# Record key fields per entity, in the order they form the key.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "product": ("InventoryID",),
    "category": ("CategoryID",),
    "inventory": ("InventoryID",),
    "customer": ("CustomerID",),
    "shipment": ("ShipmentNbr",),
    "order_status": ("OrderType", "OrderNbr"),
    "sales_order": ("OrderType", "OrderNbr"),
}
# Other names a key field has in some queries (a kit specification names its item KitInventoryID).
KEY_ALIASES: dict[str, tuple[str, ...]] = {"InventoryID": ("KitInventoryID",)}
_NAMESPACE = uuid.UUID("6f1c2a7e-3b1d-4c55-9a51-0f4f2f7f0c11")


class PushNotification(BaseModel):
    model_config = ConfigDict(extra="allow")
    query: str = Field(alias="Query", min_length=1)
    company_id: str | None = Field(None, alias="CompanyId")
    id: str = Field(alias="Id", min_length=1)
    timestamp: int | None = Field(None, alias="TimeStamp")
    inserted: list[dict[str, Any]] = Field(default_factory=list, alias="Inserted")
    deleted: list[dict[str, Any]] = Field(default_factory=list, alias="Deleted")
    additional_info: dict[str, Any] | None = Field(None, alias="AdditionalInfo")


class NotificationError(ValueError):
    """The notification is well-formed JSON but cannot be turned into messages."""


def trim(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k.strip(): v.strip() if isinstance(v, str) else v for k, v in row.items()}


def record_key(entity: str, row: Mapping[str, Any]) -> str:
    fields = KEY_FIELDS[entity]
    values = []
    for name in fields:
        value = row.get(name)
        for alias in KEY_ALIASES.get(name, ()):
            value = value if value is not None else row.get(alias)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise NotificationError(f"row has no value for key field {name!r} of entity {entity!r}")
        values.append(str(value).strip())
    return "|".join(values)


def split(notification: PushNotification, entity: str, *, received_at: datetime | None = None) -> list[Envelope]:
    """One envelope per changed record: `inserted`, `updated` (in both arrays) or `deleted`.

    Message IDs derive from the notification Id, so a notification Acumatica sends twice yields the
    same message IDs and collapses downstream.
    """
    new: dict[str, dict[str, Any]] = {}
    old: dict[str, dict[str, Any]] = {}
    for rows, into in ((notification.inserted, new), (notification.deleted, old)):
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise NotificationError(f"row {index} is not an object")
            clean = trim(row)
            into[record_key(entity, clean)] = clean
    occurred = received_at or datetime.now(UTC)
    envelopes = []
    for key in dict.fromkeys([*new, *old]):
        op = "updated" if key in new and key in old else "inserted" if key in new else "deleted"
        envelopes.append(
            Envelope(
                message_id=str(uuid.uuid5(_NAMESPACE, f"{notification.id}/{entity}/{key}/{op}")),
                correlation_id=notification.id,
                entity=entity,
                kind="records",
                op=op,
                key=key,
                source="acumatica.push",
                occurred_at=occurred,
                payload={
                    "row": new.get(key),
                    "previous": old.get(key),
                    "query": notification.query.strip(),
                    "company": notification.company_id,
                    "notification_id": notification.id,
                    "timestamp": notification.timestamp,
                },
            )
        )
    return envelopes


def entity_for(query: str, query_map: Mapping[str, str]) -> str | None:
    name = query.strip()
    return query_map.get(name) or next((e for q, e in query_map.items() if q.lower() == name.lower()), None)


def describe(envelopes: Sequence[Envelope]) -> dict[str, int]:
    counts = {"inserted": 0, "updated": 0, "deleted": 0}
    for env in envelopes:
        counts[env.op] += 1
    return counts
