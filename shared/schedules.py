"""Automation schedules: cron arithmetic, the rules a schedule must follow, and turning due ones into jobs.

Both the scheduler process and the ingress API (`POST /api/v1/schedules/{id}/run`) start jobs from
schedules, so the rules and the job-starting code live here rather than in either service.
All times are UTC; cron expressions are the standard five fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cronsim import CronSim, CronSimError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Schedule, SyncJob, SyncMode
from shared.jobs import create_job
from shared.messaging.envelope import Envelope
from shared.messaging.topology import ENTITIES

log = logging.getLogger("connector.schedules")

SCHEDULE_MODES: tuple[SyncMode, ...] = (SyncMode.FULL, SyncMode.DELTA)
"""Custom needs a from-to window, which a recurring schedule has no sensible value for."""

CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


class ScheduleError(ValueError):
    """A schedule definition that cannot run; the message says which part is wrong."""


def check_cron(expr: str) -> str:
    """The expression with its whitespace normalised; raises ScheduleError with the parser's reason."""
    fields = expr.split()
    if len(fields) != len(CRON_FIELDS):
        raise ScheduleError(
            f"cron expression needs {len(CRON_FIELDS)} fields ({' '.join(CRON_FIELDS)}), got {len(fields)}"
        )
    normalised = " ".join(fields)
    try:
        CronSim(normalised, datetime.now(UTC))
    except CronSimError as exc:
        raise ScheduleError(f"invalid cron expression {normalised!r}: {exc}") from None
    return normalised


def check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ScheduleError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return entity


def check_mode(mode: str) -> SyncMode:
    if mode == SyncMode.CUSTOM:
        raise ScheduleError("mode 'custom' needs a from-to window, which schedules do not have; use 'full' or 'delta'")
    if mode not in SCHEDULE_MODES:
        raise ScheduleError(f"unknown mode {mode!r}; expected 'full' or 'delta'")
    return SyncMode(mode)


def check_definition(schedule: Schedule) -> None:
    """The API validates every field; this catches rows written to the database by other means."""
    check_entity(schedule.entity)
    check_mode(schedule.mode)
    check_cron(schedule.cron)


def next_run(expr: str, after: datetime) -> datetime:
    """The first time the cron expression matches strictly after `after`, in UTC."""
    return next(CronSim(expr, after.astimezone(UTC)))


def describe(expr: str) -> str:
    """Plain-English reading of the expression, e.g. "At 02:00 on Monday through Friday"."""
    return CronSim(expr, datetime.now(UTC)).explain()


def plan_next_run(schedule: Schedule, now: datetime) -> None:
    schedule.next_run_at = next_run(schedule.cron, now) if schedule.active else None


def apply_changes(schedule: Schedule, changes: Mapping[str, Any], now: datetime) -> None:
    """Set validated fields; the next run moves only when the cron or the active flag changed."""
    timing = (schedule.cron, schedule.active)
    for name, value in changes.items():
        setattr(schedule, name, value)
    if (schedule.cron, schedule.active) != timing:
        plan_next_run(schedule, now)


def schedule_view(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "name": schedule.name,
        "entity": schedule.entity,
        "mode": schedule.mode,
        "cron": schedule.cron,
        "description": describe(schedule.cron),
        "active": schedule.active,
        "last_run_at": schedule.last_run_at,
        "next_run_at": schedule.next_run_at,
        "last_job_id": schedule.last_job_id,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }


async def start_job(
    session: AsyncSession, schedule: Schedule, *, now: datetime, source: str
) -> tuple[SyncJob, Envelope]:
    """Create the schedule's job (run message staged in the outbox) and record it as the last run."""
    job, envelope = await create_job(
        session, entity=schedule.entity, mode=SyncMode(schedule.mode), source=source, schedule_id=schedule.id
    )
    schedule.last_run_at = now
    schedule.last_job_id = job.id
    return job, envelope


async def fire_due(session: AsyncSession, now: datetime, *, limit: int = 100) -> list[Envelope]:
    """Start one job for each active schedule due at `now` and move it to its next cron time.

    Rows are claimed `FOR UPDATE SKIP LOCKED` and `next_run_at` moves in the same transaction as the
    job insert, so two schedulers can never start the same due run twice, whatever the leader
    election does. Runs missed while no scheduler was running collapse into this one.
    Returns the staged run messages; the caller commits, then publishes them.
    """
    query = (
        select(Schedule)
        .where(Schedule.active.is_(True), Schedule.next_run_at <= now)
        .order_by(Schedule.next_run_at, Schedule.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    envelopes: list[Envelope] = []
    for schedule in (await session.scalars(query)).all():
        due = schedule.next_run_at
        assert due is not None  # guaranteed by the query
        try:
            check_definition(schedule)
        except ScheduleError as exc:
            # One broken row must not stop every other schedule: park it where operators will see it.
            schedule.active, schedule.next_run_at = False, None
            log.error("schedule %d (%s) deactivated: %s", schedule.id, schedule.name, exc)
            continue
        job, envelope = await start_job(session, schedule, now=now, source="scheduler")
        schedule.next_run_at = next_run(schedule.cron, now)
        if next_run(schedule.cron, due) <= now:
            log.warning(
                "schedule %d (%s) was due at %s: the runs missed since then are collapsed into this one",
                schedule.id,
                schedule.name,
                due.isoformat(),
            )
        log.info(
            "schedule %d (%s) started job %d (%s %s); next run %s",
            schedule.id,
            schedule.name,
            job.id,
            schedule.entity,
            schedule.mode,
            schedule.next_run_at.isoformat(),
        )
        envelopes.append(envelope)
    return envelopes
