"""Mappings and the batch screen as an API: list records with their sync state, process them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from services.ingress.auth import require_api_token
from services.ingress.runtime import Runtime
from shared.db.models import Mapping, SyncMode, SyncRecord, SyncStatus
from shared.jobs import JobRequestError, create_job
from shared.messaging.topology import ENTITIES

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_token)], tags=["batch screen"])
MAPPING_KINDS = ("item_class", "variation", "ship_via", "warehouse")
MAX_SELECTED = 10_000


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


@router.get("/entities/{entity}/records")
async def list_records(
    entity: str,
    request: Request,
    status_: Annotated[str | None, Query(alias="status")] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    filters = record_filters(known_entity(entity), status_, since, until)
    async with runtime_of(request).sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(SyncRecord).where(*filters))
        rows = await session.scalars(
            select(SyncRecord).where(*filters).order_by(SyncRecord.acumatica_key).limit(limit).offset(offset)
        )
        items = [
            {
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
            for r in rows
        ]
    return {"total": total, "limit": limit, "offset": offset, "items": items}


class ProcessSelected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(min_length=1, max_length=MAX_SELECTED)


class ProcessAll(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    status: SyncStatus | None = None
    since: datetime | None = Field(None, alias="from")
    until: datetime | None = Field(None, alias="to")


async def _job_for_keys(request: Request, entity: str, keys: list[str]) -> dict[str, Any]:
    runtime = runtime_of(request)
    try:
        async with runtime.sessionmaker() as session, session.begin():
            job, _ = await create_job(session, entity=entity, mode=SyncMode.SELECTED, keys=keys)
    except JobRequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    runtime.relay.wake()
    return {"job_id": job.id, "status": job.status, "keys": len(keys)}


@router.post("/entities/{entity}/records/process", status_code=status.HTTP_202_ACCEPTED)
async def process_selected(entity: str, body: ProcessSelected, request: Request) -> dict[str, Any]:
    keys = list(dict.fromkeys(k.strip() for k in body.keys if k.strip()))
    return await _job_for_keys(request, known_entity(entity), keys)


@router.post("/entities/{entity}/records/process-all", status_code=status.HTTP_202_ACCEPTED)
async def process_all(entity: str, body: ProcessAll, request: Request) -> dict[str, Any]:
    """Every record the filter matches (as listed by GET …/records) goes into one job."""
    filters = record_filters(known_entity(entity), body.status.value if body.status else None, body.since, body.until)
    async with runtime_of(request).sessionmaker() as session:
        keys = list(await session.scalars(select(SyncRecord.acumatica_key).where(*filters).limit(MAX_SELECTED + 1)))
    if len(keys) > MAX_SELECTED:
        raise HTTPException(422, f"more than {MAX_SELECTED} records match; narrow the filter or run a full sync")
    if not keys:
        raise HTTPException(422, "no records match the filter")
    return await _job_for_keys(request, entity, keys)
