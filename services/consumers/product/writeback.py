"""The CA Product ID write-back: Rithum's product ID put on the Acumatica item, off the sync's path.

Acumatica's contract API has no bulk update, so every new product costs one PUT, and the license
caps API requests per minute and in flight. Listing products on Rithum must not wait for that: the
pipeline queues the write-backs of each pass as messages on the product's `writeback` queue (many
items per message), and this handler works them off within the Acumatica limits, in the product
consumer or in a process of its own (`--queues writeback`).

A PUT that fails for good (the item is gone, a validation error) is noted on the sync record,
which stays Processed: the product is on Rithum, only the cross-reference is missing. Transient
failures go back to the queue with only the items still to do. A write-back lost on the way (a
crash between saving the outcome and queueing it) is queued again by the next sync of the item,
which compares the ID on the Acumatica record with the stored one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.consumers.product.source import changed_at
from services.consumers.product.transform import FieldRef
from shared.acumatica.client import AcumaticaClient
from shared.acumatica.errors import AcumaticaError, LicenseLimit
from shared.messaging.consumer import Ack, DeadLetter, Delivery, Outcome, Retry
from shared.messaging.envelope import Envelope
from shared.requestlog import log_context

log = logging.getLogger("connector.product.writeback")
ENTITY = "product"
ITEMS_PER_MESSAGE = 200
ERROR_PREFIX = "CA Product ID not written back to Acumatica"
MIN_ATTEMPTS = 12
"""A write-back outlasts an Acumatica maintenance window: at least this many attempts, the later ones at
the longest retry delay (about 45 minutes with the default 5/30/300 s), before it is dead-lettered. Only
an unchanged item's next full sync would write the ID otherwise, as a delta does not see the item."""


def attempts(site_max_attempts: int) -> int:
    return max(site_max_attempts, MIN_ATTEMPTS)


@dataclass(frozen=True, slots=True)
class WriteBack:
    """One PUT: `body` sets the configured field of item `key` (Acumatica entity `entity`)."""

    entity: str
    key: str
    rithum_id: str
    body: dict[str, Any]

    @classmethod
    def of(cls, entity: str, key: str, rithum_id: str, ref: FieldRef) -> WriteBack:
        body: dict[str, Any] = {"InventoryID": key}
        if ref.source == "attribute":
            body["Attributes"] = [{"AttributeID": ref.name, "Value": rithum_id}]
        else:
            view, _, name = ref.name.partition(".")
            body["custom"] = {view: {name: rithum_id}}
        return cls(entity, key, rithum_id, body)

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "key": self.key, "rithum_id": self.rithum_id, "body": self.body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WriteBack:
        return cls(str(data["entity"]), str(data["key"]), str(data["rithum_id"]), dict(data["body"]))


def envelopes(items: Sequence[WriteBack], job_id: int | None) -> list[Envelope]:
    return [
        Envelope(
            entity=ENTITY,
            kind="writeback",
            op="put",
            source="product",
            payload={"job_id": job_id, "items": [w.to_json() for w in items[i : i + ITEMS_PER_MESSAGE]]},
        )
        for i in range(0, len(items), ITEMS_PER_MESSAGE)
    ]


def _transient(exc: Exception) -> bool:
    """Worth another attempt later: limits, server trouble, the network. Not 4xx answers."""
    if isinstance(exc, httpx.HTTPError | LicenseLimit):
        return True
    return isinstance(exc, AcumaticaError) and (exc.status >= 500 or exc.status in (401, 408))


class WriteBackHandler:
    def __init__(
        self, acumatica: AcumaticaClient, sessionmaker: async_sessionmaker[AsyncSession], concurrency: int = 4
    ) -> None:
        self.acumatica = acumatica
        self.sessionmaker = sessionmaker
        self.slots = asyncio.Semaphore(concurrency)

    async def handle(self, batch: list[Delivery], max_attempts: int) -> list[Outcome]:
        work = [[WriteBack.from_json(i) for i in d.envelope.payload.get("items", ())] for d in batch]
        results = await asyncio.gather(*(asyncio.gather(*(self._put(w) for w in items)) for items in work))
        stamps: dict[str, tuple[str, datetime | None]] = {}
        errors: dict[str, tuple[str, str]] = {}
        outcomes: list[Outcome] = []
        for delivery, items, result in zip(batch, work, results, strict=True):
            final = delivery.attempt + 1 >= max_attempts
            retry: list[WriteBack] = []
            reason = ""
            for item, (stamp, exc) in zip(items, result, strict=True):
                if exc is None:
                    stamps[item.key] = (item.rithum_id, stamp)
                elif _transient(exc) and not final:
                    retry.append(item)
                    reason = str(exc)
                else:
                    errors[item.key] = (item.rithum_id, f"{ERROR_PREFIX}: {exc}")
            if retry:
                payload = {**delivery.envelope.payload, "items": [w.to_json() for w in retry]}
                # Acumatica unreachable or over its license: wait it out without spending attempts.
                outcomes.append(Retry(f"{len(retry)} write-backs not done: {reason}", payload=payload, outage=True))
            elif final and any(exc is not None and _transient(exc) for _, exc in result):
                outcomes.append(DeadLetter(f"write-backs still failing after {max_attempts} attempts"))
            else:
                outcomes.append(Ack())
        async with self.sessionmaker() as session, session.begin():
            await _save(session, stamps, errors)
        log.info(
            "write-back: %d written, %d failed, %d to retry",
            len(stamps),
            len(errors),
            sum(len(o.payload["items"]) for o in outcomes if isinstance(o, Retry) and o.payload),
        )
        return outcomes

    async def _put(self, item: WriteBack) -> tuple[datetime | None, Exception | None]:
        async with self.slots:
            try:
                with log_context(entity=ENTITY, record_key=item.key):
                    # If-Match: update only; a plain PUT would re-create an item deleted meanwhile.
                    saved = await self.acumatica.put(
                        item.entity, item.body, if_match=True, select=("InventoryID", "LastModified")
                    )
            except (AcumaticaError, httpx.HTTPError) as exc:
                log.warning("write-back of %s failed: %s", item.key, exc)
                return None, exc
        return changed_at(saved), None


async def _save(
    session: AsyncSession,
    stamps: dict[str, tuple[str, datetime | None]],
    errors: dict[str, tuple[str, str]],
) -> None:
    """Stamp the records (our own write moved `LastModified`: a delta must not take it for a change)
    and note failures; only while the record still points at the product the write-back was for."""
    if stamps:
        await session.execute(
            text(
                "UPDATE sync_records s SET source_modified_at = coalesce(v.stamp, s.source_modified_at),"
                " last_error = CASE WHEN s.last_error LIKE :prefix THEN NULL ELSE s.last_error END"
                " FROM unnest(CAST(:keys AS text[]), CAST(:ids AS text[]), CAST(:stamps AS timestamptz[]))"
                " AS v(key, rithum_id, stamp)"
                " WHERE s.entity = :entity AND s.acumatica_key = v.key AND s.rithum_id = v.rithum_id"
            ),
            {"entity": ENTITY, "prefix": f"{ERROR_PREFIX}%", **_columns(stamps, "ids", "stamps")},
        )
    if errors:
        await session.execute(
            text(
                "UPDATE sync_records s SET last_error = v.error"
                " FROM unnest(CAST(:keys AS text[]), CAST(:ids AS text[]), CAST(:errors AS text[]))"
                " AS v(key, rithum_id, error)"
                " WHERE s.entity = :entity AND s.acumatica_key = v.key AND s.rithum_id = v.rithum_id"
            ),
            {"entity": ENTITY, **_columns(errors, "ids", "errors")},
        )


def _columns(rows: dict[str, tuple[str, Any]], first: str, second: str) -> dict[str, list[Any]]:
    values: Iterable[tuple[str, tuple[str, Any]]] = rows.items()
    keys, pairs = zip(*values, strict=True)
    return {"keys": list(keys), first: [p[0] for p in pairs], second: [p[1] for p in pairs]}
