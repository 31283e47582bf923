"""Mappings and the batch screen as an API: list records with their sync state, process them.

For product the screen lists live candidates read from Acumatica (so an item whose push notification
was lost still shows up), each with the connector's sync state; `source=connector` lists the
connector's own records, which is all the other entities have.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from services.ingress.auth import require_api_token
from services.ingress.guards import Limit, Offset, Timestamp
from services.ingress.runtime import Runtime
from shared import syncrecords
from shared.acumatica import filters as F
from shared.acumatica.client import AcumaticaClient
from shared.acumatica.errors import AcumaticaError, AuthError, LicenseLimit
from shared.acumatica.values import parse_datetime
from shared.db.models import Mapping, SyncMode, SyncRecord, SyncStatus
from shared.jobs import JobRequestError, create_job
from shared.messaging.topology import ENTITIES
from shared.redaction import Redactor
from shared.requestlog import log_context
from shared.settings import Settings

log = logging.getLogger("connector.ingress")
router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_token)], tags=["batch screen"])
MAPPING_KINDS = ("item_class", "variation", "ship_via", "warehouse")
MAX_SELECTED = 10_000
Source = Literal["acumatica", "connector"]
LIVE_ENTITIES = ("product",)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Only what the screen shows ($select): a page of 1,000 stays small, no attributes or details.
TEMPLATE_FIELDS = ("InventoryID", "Description", "ItemClass", "ItemStatus", "LastModified")
ITEM_FIELDS = (*TEMPLATE_FIELDS, "IsAKit", "TemplateItemID")
SYNC_FIELDS = ("status", "rithum_id", "last_operation", "last_error", "attempt_count", "job_id", "updated_at")


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=128)
    target: str = Field(min_length=1, max_length=256)
    options: dict[str, Any] = Field(default_factory=dict)


def check_kind(kind: str) -> str:
    if kind not in MAPPING_KINDS:
        raise HTTPException(404, f"unknown mapping kind {kind!r}; expected one of {list(MAPPING_KINDS)}")
    return kind


@router.get("/mappings/{kind}")
async def list_mappings(kind: str, request: Request) -> dict[str, Any]:
    async with runtime_of(request).sessionmaker() as session:
        rows = await session.scalars(select(Mapping).where(Mapping.kind == check_kind(kind)).order_by(Mapping.source))
        return {"kind": kind, "items": [{"source": m.source, "target": m.target, "options": m.options} for m in rows]}


@router.put("/mappings/{kind}")
async def replace_mappings(kind: str, items: list[MappingIn], request: Request) -> dict[str, Any]:
    """Replace every mapping of one kind (the mapping screen is saved as a whole)."""
    check_kind(kind)
    sources = [m.source.strip() for m in items]
    if len(set(sources)) != len(sources):
        raise HTTPException(422, "each source value may be mapped only once")
    async with runtime_of(request).sessionmaker() as session, session.begin():
        await session.execute(delete(Mapping).where(Mapping.kind == kind))
        if items:
            await session.execute(
                insert(Mapping),
                [
                    {"kind": kind, "source": m.source.strip(), "target": m.target.strip(), "options": m.options}
                    for m in items
                ],
            )
    return {"kind": kind, "count": len(items)}


def known_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise HTTPException(404, f"unknown entity {entity!r}; expected one of {list(ENTITIES)}")
    return entity


def source_of(entity: str, source: Source | None) -> Source:
    """Which list the screen shows: Acumatica's live candidates where the connector can read them (product),
    else the connector's own records, the only list the other entities have."""
    if source is None:
        return "acumatica" if entity in LIVE_ENTITIES else "connector"
    if source == "acumatica" and entity not in LIVE_ENTITIES:
        raise HTTPException(
            422,
            f"live listing (source=acumatica) exists only for {', '.join(LIVE_ENTITIES)}; "
            f"use source=connector for {entity}",
        )
    return source


def check_live_filters(status_: str | None, since: datetime | None, until: datetime | None) -> None:
    """Acumatica holds no sync state, so a status filter cannot be paged there: only `source=connector` can."""
    if status_:
        raise HTTPException(
            422, "status filtering needs source=connector (Acumatica's live list cannot be filtered by sync status)"
        )
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"'{name}' needs a time zone offset (e.g. 2026-01-01T00:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise HTTPException(422, "'from' must be earlier than 'to'")


def record_filters(entity: str, status_: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
    filters: list[Any] = [SyncRecord.entity == entity]
    if status_:
        allowed = [s.value for s in SyncStatus]
        if status_ not in allowed:
            raise HTTPException(422, f"unknown status {status_!r}; expected one of {allowed}")
        filters.append(SyncRecord.status == status_)
    if since is not None:
        filters.append(SyncRecord.updated_at >= since)
    if until is not None:
        filters.append(SyncRecord.updated_at < until)
    return filters


def kind_of(item: dict[str, Any]) -> str:
    if item.get("TemplateItemID"):
        return "variant"
    return "kit" if item.get("IsAKit") else "simple"


async def live_page(
    client: AcumaticaClient, since: datetime | None, until: datetime | None, limit: int, offset: int
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """Rows `offset … offset + limit` of "templates, then stock items" (each in Acumatica's own order), and
    whether more follow.

    Acumatica has no `$count`, so `limit + 1` rows are asked for and `has_more` is exact. The template
    count is needed only when a page starts past the last template: the stock items' `$skip` is then the
    offset minus that count; a page that starts among the templates gets it for free.
    """
    window = F.all_of(
        F.field("LastModified").ge(since) if since is not None else None,
        F.field("LastModified").lt(until) if until is not None else None,
    )
    want = limit + 1
    templates = await client.list("TemplateItems", filter=window, select=TEMPLATE_FIELDS, top=want, skip=offset)
    rows = [("template", t) for t in templates]
    if len(rows) < want:
        if templates or offset == 0:
            template_count = offset + len(templates)
        else:
            template_count = 0
            async for _ in client.iterate("TemplateItems", filter=window, select=("InventoryID",)):
                template_count += 1
        skip = max(0, offset + len(templates) - template_count)
        items = await client.list("StockItem", filter=window, select=ITEM_FIELDS, top=want - len(rows), skip=skip)
        rows += [(kind_of(i), i) for i in items]
    return rows[:limit], len(rows) > limit


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value  # Acumatica pads key-like values


def _stamp(value: Any) -> datetime | None:
    try:
        return parse_datetime(value) if isinstance(value, str) else value
    except ValueError:
        return None


def live_item(kind: str, record: dict[str, Any], sync: SyncRecord | None) -> dict[str, Any]:
    return {
        "key": _text(record.get("InventoryID")),
        "description": record.get("Description"),
        "item_class": _text(record.get("ItemClass")),
        "item_status": record.get("ItemStatus"),
        "kind": kind,
        "template_id": _text(record.get("TemplateItemID")) or None,
        "modified_at": _stamp(record.get("LastModified")),
        # the connector's sync state; all null when it has no record of the key ("Not Synced")
        **{name: getattr(sync, name) if sync is not None else None for name in SYNC_FIELDS},
    }


def acumatica_failure(exc: Exception, settings: Settings) -> JSONResponse:
    """Acumatica's trouble is not the caller's: 503 when it is unreachable or over its limits (retry later),
    502 when it answered with an error. The message is redacted; `error` as in every API error, `detail` too."""
    if isinstance(exc, LicenseLimit):
        code, text = 503, "request limit reached (429) after retries; try again later"
    elif isinstance(exc, AuthError):
        code, text = 502, f"sign-in refused ({exc.status}): {exc.message}"
    elif isinstance(exc, AcumaticaError):
        code, text = 502, f"{exc.status} {exc.message}"
    elif isinstance(exc, httpx.TransportError):
        code, text = 503, f"unreachable ({type(exc).__name__})"
    else:
        code, text = 502, f"unusable answer ({type(exc).__name__}: {exc})"
    message = "Acumatica: " + (Redactor(settings.secret_values()).text(text) or "")[:500]
    log.warning("batch screen: %s", message)
    return JSONResponse({"error": message, "detail": message}, status_code=code)


@router.get("/entities/{entity}/records", response_model=dict[str, Any])  # JSONResponse only for errors
async def list_records(
    entity: str,
    request: Request,
    source: Annotated[
        Source | None,
        Query(
            description="acumatica: live candidates (default for product, the only entity that has them); "
            "connector: the connector's own sync records"
        ),
    ] = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    since: Annotated[Timestamp | None, Query(alias="from")] = None,
    until: Annotated[Timestamp | None, Query(alias="to")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any] | JSONResponse:
    """The batch screen. Live (product): what Acumatica changed in [from, to), with the connector's sync
    state, so an item whose push notification was lost is listed too; `total` is null (no `$count`)."""
    if source_of(known_entity(entity), source) == "connector":
        return await connector_records(request, entity, status_, since, until, limit, offset)
    check_live_filters(status_, since, until)
    runtime = runtime_of(request)
    try:
        client = await runtime.acumatica()
        with log_context(entity=entity):
            rows, has_more = await live_page(client, since, until, limit, offset)
    except (AcumaticaError, httpx.TransportError, ValueError) as exc:
        return acumatica_failure(exc, runtime.settings)
    keys = [_text(record.get("InventoryID")) for _, record in rows]
    async with runtime.sessionmaker() as session:
        synced = await syncrecords.load(session, entity, keys)
    items = [live_item(kind, record, synced.get(key)) for (kind, record), key in zip(rows, keys, strict=True)]
    return {
        "source": "acumatica",
        "total": None,
        "has_more": has_more,
        "limit": limit,
        "offset": offset,
        "items": items,
    }


async def connector_records(
    request: Request,
    entity: str,
    status_: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The connector's own records (every entity): filterable by status, `from`/`to` on the record's update."""
    filters = record_filters(entity, status_, since, until)
    async with runtime_of(request).sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(SyncRecord).where(*filters))
        rows = await session.scalars(
            select(SyncRecord).where(*filters).order_by(SyncRecord.acumatica_key).limit(limit).offset(offset)
        )
        items = [record_view(r) for r in rows]
    total = total or 0
    return {
        "source": "connector",
        "total": total,
        "has_more": offset + len(items) < total,
        "limit": limit,
        "offset": offset,
        "items": items,
    }


def record_view(r: SyncRecord) -> dict[str, Any]:
    """A sync record as the batch screen (and the console's history) shows it."""
    return {
        "key": r.acumatica_key,
        "rithum_id": r.rithum_id,
        "kind": r.kind,
        "status": r.status,
        "last_operation": r.last_operation,
        "last_error": r.last_error,
        "attempt_count": r.attempt_count,
        "job_id": r.job_id,
        "source_modified_at": r.source_modified_at,
        "updated_at": r.updated_at,
    }


class ProcessSelected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(min_length=1, max_length=MAX_SELECTED)
    force: bool = Field(False, description="send them even if unchanged")


class ProcessAll(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: Source | None = None
    status: SyncStatus | None = None
    since: Timestamp | None = Field(None, alias="from")
    until: Timestamp | None = Field(None, alias="to")


async def _job_for_keys(request: Request, entity: str, keys: list[str], force: bool = False) -> dict[str, Any]:
    runtime = runtime_of(request)
    try:
        async with runtime.sessionmaker() as session, session.begin():
            job, _ = await create_job(session, entity=entity, mode=SyncMode.SELECTED, keys=keys, force=force)
    except JobRequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    runtime.relay.wake()
    return {"job_id": job.id, "status": job.status, "keys": len(keys)}


async def _job_for_window(
    request: Request, entity: str, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """The live list's Process All is a date-range job: the consumer enumerates Acumatica itself, so there
    is no key list to cap. A missing `to` is now, a missing `from` the epoch; no range at all is a full sync."""
    if since is None and until is None:
        mode, window_from, window_to = SyncMode.FULL, None, None
    else:
        mode, window_from, window_to = SyncMode.CUSTOM, since or EPOCH, until or datetime.now(UTC)
    runtime = runtime_of(request)
    try:
        async with runtime.sessionmaker() as session, session.begin():
            job, _ = await create_job(session, entity=entity, mode=mode, window_from=window_from, window_to=window_to)
    except JobRequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    runtime.relay.wake()
    return {
        "job_id": job.id,
        "status": job.status,
        "source": "acumatica",
        "mode": mode.value,
        "from": window_from,
        "to": window_to,
    }


@router.post("/entities/{entity}/records/process", status_code=status.HTTP_202_ACCEPTED)
async def process_selected(entity: str, body: ProcessSelected, request: Request) -> dict[str, Any]:
    keys = list(dict.fromkeys(k.strip() for k in body.keys if k.strip()))
    return await _job_for_keys(request, known_entity(entity), keys, body.force)


@router.post("/entities/{entity}/records/process-all", status_code=status.HTTP_202_ACCEPTED)
async def process_all(entity: str, body: ProcessAll, request: Request) -> dict[str, Any]:
    """Every record GET …/records lists with the same `source` and filters goes into one job."""
    if source_of(known_entity(entity), body.source) == "acumatica":
        status_ = body.status.value if body.status else None
        check_live_filters(status_, body.since, body.until)
        return await _job_for_window(request, entity, body.since, body.until)
    filters = record_filters(entity, body.status.value if body.status else None, body.since, body.until)
    async with runtime_of(request).sessionmaker() as session:
        keys = list(await session.scalars(select(SyncRecord.acumatica_key).where(*filters).limit(MAX_SELECTED + 1)))
    if len(keys) > MAX_SELECTED:
        raise HTTPException(
            422,
            f"more than {MAX_SELECTED} records match; narrow the filter, or use source=acumatica (a date-range job)",
        )
    if not keys:
        raise HTTPException(422, "no records match the filter")
    return {**await _job_for_keys(request, entity, keys), "source": "connector"}
