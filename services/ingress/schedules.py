"""Automation schedules under /api/v1/schedules: manage them, and run one now.

The scheduler process fires schedules when they are due; this API only edits the rows (computing
`next_run_at` the same way) and can start a schedule's job on demand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingress.api import runtime_of
from services.ingress.auth import require_api_token
from services.ingress.guards import ScheduleId
from shared.db.models import Schedule
from shared.messaging.topology import ENTITIES
from shared.schedules import (
    CRON_FIELDS,
    SCHEDULE_MODES,
    apply_changes,
    check_cron,
    check_entity,
    check_mode,
    plan_next_run,
    schedule_view,
    start_job,
)

router = APIRouter(prefix="/api/v1/schedules", dependencies=[Depends(require_api_token)], tags=["schedules"])

ENTITY_DOC = {"description": f"one of {', '.join(ENTITIES)}", "json_schema_extra": {"enum": list(ENTITIES)}}
MODE_DOC = {"description": "batch mode", "json_schema_extra": {"enum": [m.value for m in SCHEDULE_MODES]}}
CRON_DOC = {"description": f"5-field cron ({' '.join(CRON_FIELDS)}), UTC", "examples": ["0 2 * * *"]}


class ScheduleRules(BaseModel):
    """Validation shared by create/replace and partial update; messages come from shared.schedules."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("entity", check_fields=False)
    @classmethod
    def _entity(cls, value: str) -> str:
        return check_entity(value)

    @field_validator("mode", check_fields=False)
    @classmethod
    def _mode(cls, value: str) -> str:
        return check_mode(value).value

    @field_validator("cron", check_fields=False)
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class ScheduleIn(ScheduleRules):
    """Body of POST (create) and PUT (replace)."""

    name: str = Field(min_length=1, max_length=128)
    entity: str = Field(**ENTITY_DOC)
    mode: str = Field(**MODE_DOC)
    cron: str = Field(max_length=128, **CRON_DOC)
    active: bool = True


class SchedulePatch(ScheduleRules):
    """Body of PATCH: only the fields given change."""

    name: str | None = Field(None, min_length=1, max_length=128)
    entity: str | None = Field(None, **ENTITY_DOC)
    mode: str | None = Field(None, **MODE_DOC)
    cron: str | None = Field(None, max_length=128, **CRON_DOC)
    active: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(name for name, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"fields cannot be null: {', '.join(nulls)} (leave a field out to keep it)")
        return data


async def locked_schedule(session: AsyncSession, schedule_id: int) -> Schedule:
    """Load for change; the row lock keeps a concurrent scheduler tick from interleaving."""
    schedule = await session.scalar(select(Schedule).where(Schedule.id == schedule_id).with_for_update())
    if schedule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"schedule {schedule_id} not found")
    return schedule


@router.get("")
async def list_schedules(request: Request) -> dict[str, Any]:
    async with runtime_of(request).sessionmaker() as session:
        schedules = (await session.scalars(select(Schedule).order_by(Schedule.id))).all()
    return {"items": [schedule_view(s) for s in schedules]}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_schedule(body: ScheduleIn, request: Request) -> dict[str, Any]:
    schedule = Schedule(**body.model_dump())
    plan_next_run(schedule, datetime.now(UTC))
    async with runtime_of(request).sessionmaker() as session, session.begin():
        session.add(schedule)
        await session.flush()
        await session.refresh(schedule)
    return schedule_view(schedule)


@router.get("/{schedule_id}")
async def get_schedule(schedule_id: ScheduleId, request: Request) -> dict[str, Any]:
    async with runtime_of(request).sessionmaker() as session:
        schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"schedule {schedule_id} not found")
    return schedule_view(schedule)


async def update_schedule(schedule_id: int, changes: dict[str, Any], request: Request) -> dict[str, Any]:
    async with runtime_of(request).sessionmaker() as session, session.begin():
        schedule = await locked_schedule(session, schedule_id)
        apply_changes(schedule, changes, datetime.now(UTC))
        await session.flush()
        await session.refresh(schedule)
    return schedule_view(schedule)


@router.put("/{schedule_id}")
async def replace_schedule(schedule_id: ScheduleId, body: ScheduleIn, request: Request) -> dict[str, Any]:
    return await update_schedule(schedule_id, body.model_dump(), request)


@router.patch("/{schedule_id}")
async def patch_schedule(schedule_id: ScheduleId, body: SchedulePatch, request: Request) -> dict[str, Any]:
    """Changing `cron` or `active` recomputes `next_run_at` (null while inactive)."""
    return await update_schedule(schedule_id, body.model_dump(exclude_unset=True), request)


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(schedule_id: ScheduleId, request: Request) -> Response:
    """Jobs it started stay; their `schedule_id` becomes null."""
    async with runtime_of(request).sessionmaker() as session, session.begin():
        await session.delete(await locked_schedule(session, schedule_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{schedule_id}/run", status_code=status.HTTP_202_ACCEPTED)
async def run_schedule(schedule_id: ScheduleId, request: Request) -> dict[str, Any]:
    """Start the schedule's job now (also when inactive); its regular next run stays as planned."""
    runtime = runtime_of(request)
    async with runtime.sessionmaker() as session, session.begin():
        schedule = await locked_schedule(session, schedule_id)
        job, _ = await start_job(session, schedule, now=datetime.now(UTC), source="api")
    runtime.relay.wake()
    return {
        "job_id": job.id,
        "status": job.status,
        "schedule_id": schedule.id,
        "entity": job.entity,
        "mode": job.mode,
    }
