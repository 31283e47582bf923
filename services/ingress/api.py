"""The trigger API under /api/v1: start syncs, follow jobs, tune the site configuration, audit."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from services.ingress import queues
from services.ingress.auth import require_api_token
from services.ingress.guards import BIGINT_MAX, INT_MAX, JobId, Limit, Offset, Timestamp
from services.ingress.runtime import Runtime
from shared import siteconfig
from shared.db.models import JobStatus, OutboxMessage, RequestLogRow, SyncJob, SyncMode
from shared.jobs import JobRequestError, cancel, create_job, job_view
from shared.messaging.topology import ENTITIES

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_token)], tags=["api"])
EntityName = Annotated[str, Path(description=f"one of {', '.join(ENTITIES)}")]


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def known_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown entity {entity!r}; expected one of {list(ENTITIES)}")
    return entity


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    mode: SyncMode
    window_from: Timestamp | None = Field(None, alias="from")
    window_to: Timestamp | None = Field(None, alias="to")
    force: bool = Field(False, description="send every record, changed or not (the Commerce Connector's Sync)")


@router.post("/sync/{entity}", status_code=status.HTTP_202_ACCEPTED)
async def start_sync(entity: EntityName, body: SyncRequest, request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    known_entity(entity)
    for name, value in (("from", body.window_from), ("to", body.window_to)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"'{name}' needs a time zone offset (e.g. 2026-01-01T00:00:00Z)")
    try:
        async with runtime.sessionmaker() as session, session.begin():
            job, _ = await create_job(
                session,
                entity=entity,
                mode=body.mode,
                window_from=body.window_from,
                window_to=body.window_to,
                force=body.force,
            )
    except JobRequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    runtime.relay.wake()  # the relay publishes it now, or from the outbox once the broker is back
    return {"job_id": job.id, "status": job.status, "entity": entity, "mode": body.mode.value}


@router.get("/jobs")
async def list_jobs(
    request: Request,
    entity: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    query = select(SyncJob)
    if entity:
        query = query.where(SyncJob.entity == known_entity(entity))
    if status_:
        query = query.where(SyncJob.status == status_)
    async with runtime_of(request).sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        jobs = (await session.scalars(query.order_by(SyncJob.id.desc()).limit(limit).offset(offset))).all()
    return {"total": total, "items": [job_view(j) for j in jobs]}


@router.get("/jobs/{job_id}")
async def get_job(job_id: JobId, request: Request) -> dict[str, Any]:
    async with runtime_of(request).sessionmaker() as session:
        job = await session.get(SyncJob, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job_view(job)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: JobId, request: Request) -> dict[str, Any]:
    """Stop a job that has not ended (its runner stops at its next heartbeat); 409 for one that has."""
    async with runtime_of(request).sessionmaker() as session, session.begin():
        job = await cancel(session, job_id)
        view = job_view(job) if job is not None else None
    if view is None:
        raise HTTPException(404, f"job {job_id} not found")
    if view["status"] != JobStatus.CANCELLED:
        raise HTTPException(409, f"job {job_id} has already ended ({view['status']})")
    return view


@router.get("/config", response_model=siteconfig.SiteConfigModel)
async def get_config(request: Request) -> siteconfig.SiteConfigModel:
    async with runtime_of(request).sessionmaker() as session:
        return await siteconfig.load(session)


@router.put("/config", response_model=siteconfig.SiteConfigModel)
async def put_config(changes: dict[str, Any], request: Request) -> siteconfig.SiteConfigModel:
    """Partial update: only the fields given change; the result is validated as a whole."""
    unknown = set(changes) - set(siteconfig.SiteConfigModel.model_fields)
    if unknown:
        raise HTTPException(422, f"unknown configuration fields: {sorted(unknown)}")
    too_big = sorted(name for name, value in changes.items() if isinstance(value, int) and abs(value) > INT_MAX)
    if too_big:  # the numeric fields are Integer columns
        raise HTTPException(422, f"{', '.join(too_big)}: at most {INT_MAX}")
    try:
        async with runtime_of(request).sessionmaker() as session, session.begin():
            return await siteconfig.update(session, changes)
    except ValidationError as exc:  # the merged result is invalid: a bad request, not a server error
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


@router.get("/queues")
async def get_queues(request: Request) -> dict[str, Any]:
    """Per entity and per queue: ready and consumers over AMQP (passive declares, any RabbitMQ); unacked and
    rates from the management API when it answers (else null, and `management` says why)."""
    runtime = runtime_of(request)
    config = await runtime.config.get()
    try:
        figures = await queues.figures_of(request.app.state, runtime.settings, runtime.topology, config.retry_delays)
    except queues.QueuesUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    return {
        "entities": figures.entities(),
        "queues": [asdict(q) for q in figures.queues],
        "management": figures.management,
    }


@router.get("/request-logs")
async def request_logs(
    request: Request,
    system: str | None = None,
    entity: str | None = None,
    record_key: str | None = None,
    job_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    status_: Annotated[int | None, Query(alias="status", ge=0, le=INT_MAX)] = None,
    errors_only: bool = False,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    query = select(RequestLogRow)
    filters = {
        RequestLogRow.system: system,
        RequestLogRow.entity: entity,
        RequestLogRow.record_key: record_key,
        RequestLogRow.job_id: job_id,
        RequestLogRow.status: status_,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if errors_only:
        query = query.where((RequestLogRow.status >= 400) | RequestLogRow.status.is_(None))
    if since is not None:
        query = query.where(RequestLogRow.created_at >= since)
    if until is not None:
        query = query.where(RequestLogRow.created_at < until)
    async with runtime_of(request).sessionmaker() as session:
        rows = (await session.scalars(query.order_by(RequestLogRow.id.desc()).limit(limit).offset(offset))).all()
    columns = [c.key for c in RequestLogRow.__table__.columns]
    return {"items": [{c: getattr(r, c) for c in columns} for r in rows], "limit": limit, "offset": offset}


@router.get("/outbox")
async def list_outbox(
    request: Request,
    state: Annotated[
        Literal["pending", "set_aside"] | None,
        Query(description="pending: still to be published; set_aside: given up on (see `last_error`)"),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Outbox rows, oldest first: what waits for the broker, and what the relay set aside because the broker
    refused it or it broke the connection (such a row is no longer retried)."""
    query = select(OutboxMessage)
    if state is not None:
        aside = OutboxMessage.set_aside_at.is_not(None)
        query = query.where(aside if state == "set_aside" else ~aside)
    async with runtime_of(request).sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = (await session.scalars(query.order_by(OutboxMessage.id).limit(limit).offset(offset))).all()
    return {"total": total, "items": [outbox_view(r) for r in rows], "limit": limit, "offset": offset}


def outbox_view(row: OutboxMessage) -> dict[str, Any]:
    envelope = row.envelope
    key = envelope.get("key")
    return {
        "id": row.id,
        "message_id": row.message_id,
        "state": "set_aside" if row.set_aside_at else "pending",
        "entity": envelope.get("entity"),
        "kind": envelope.get("kind"),
        "op": envelope.get("op"),
        "key": key[:200] if isinstance(key, str) else key,  # a refused key may be huge
        "attempts": row.attempts,
        "failures": row.failures,
        "last_error": row.last_error,
        "available_at": row.available_at,
        "set_aside_at": row.set_aside_at,
        "created_at": row.created_at,
    }
