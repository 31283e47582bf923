"""Batch sync jobs: created with their "run" message in one transaction (outbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import outbox
from shared.db.models import JobStatus, SyncJob, SyncMode, Watermark
from shared.messaging.envelope import Envelope


class JobRequestError(ValueError):
    pass


def validate_window(mode: SyncMode, window_from: datetime | None, window_to: datetime | None) -> None:
    if mode is SyncMode.CUSTOM:
        if window_from is None or window_to is None:
            raise JobRequestError("mode 'custom' needs both 'from' and 'to'")
        if window_from >= window_to:
            raise JobRequestError("'from' must be earlier than 'to'")
    elif window_from is not None or window_to is not None:
        raise JobRequestError(f"'from'/'to' only apply to mode 'custom', not {mode.value!r}")


async def create_job(
    session: AsyncSession,
    *,
    entity: str,
    mode: SyncMode,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
    source: str = "api",
    schedule_id: int | None = None,
    keys: list[str] | None = None,
    force: bool = False,
) -> tuple[SyncJob, Envelope]:
    """Insert the job and stage its run message; the caller commits, then wakes the relay."""
    validate_window(mode, window_from, window_to)
    if (mode is SyncMode.SELECTED) != (keys is not None):
        raise JobRequestError("mode 'selected' takes a list of keys, and only it does")
    if keys is not None and not keys:
        raise JobRequestError("no keys selected")
    job = SyncJob(
        entity=entity,
        mode=mode.value,
        window_from=window_from,
        window_to=window_to,
        status=JobStatus.QUEUED,
        source=source,
        schedule_id=schedule_id,
        keys={"keys": keys} if keys is not None else None,
        force=force,
    )
    session.add(job)
    await session.flush()
    envelope = Envelope(
        entity=entity,
        kind="jobs",
        op="run",
        key=str(job.id),
        source=source,
        payload={"job_id": job.id, "mode": mode.value},
    )
    await outbox.add(session, [envelope])
    return job, envelope


def job_view(job: SyncJob) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "entity": job.entity,
        "mode": job.mode,
        "force": job.force,
        "from": job.window_from,
        "to": job.window_to,
        "status": job.status,
        "source": job.source,
        "schedule_id": job.schedule_id,
        "counts": {
            "found": job.found,
            "submitted": job.submitted,
            "confirmed": job.confirmed,
            "processed": job.processed,
            "failed": job.failed,
            "filtered": job.filtered,
            "skipped": job.skipped,
            "deleted": job.deleted,
            "forced": job.forced,
            "recreated": job.recreated,
        },
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "enumerated_at": job.enumerated_at,
        "finished_at": job.finished_at,
    }


async def start(session: AsyncSession, job_id: int) -> SyncJob | None:
    """Mark a queued (or interrupted) job running and reset its counters; None if its enumeration
    already ended (finished, or waiting for its feed files to be confirmed)."""
    job = await session.get(SyncJob, job_id, with_for_update=True)
    if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CONFIRMING):
        return None
    job.status = JobStatus.RUNNING
    job.started_at = datetime.now(UTC)
    job.found = job.processed = job.failed = job.filtered = job.skipped = job.deleted = 0
    job.submitted = job.confirmed = job.forced = job.recreated = 0
    job.error = None
    return job


async def window(session: AsyncSession, job: SyncJob, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The date window a job covers: all (full), since the watermark (delta), or as requested (custom)."""
    if job.mode == SyncMode.CUSTOM:
        return job.window_from, job.window_to
    if job.mode == SyncMode.DELTA:
        mark = await session.get(Watermark, job.entity)
        return (mark.synced_until if mark else None), now
    return None, now


async def finish(
    session: AsyncSession, job_id: int, *, error: str | None = None, watermark: datetime | None = None
) -> None:
    """Close the job; a successful full or delta job moves the entity's watermark to when it began."""
    job = await session.get(SyncJob, job_id, with_for_update=True)
    if job is None:
        return
    job.status = JobStatus.FAILED if error else JobStatus.SUCCEEDED
    job.error = error
    job.finished_at = datetime.now(UTC)
    if error is None and watermark is not None and job.mode in (SyncMode.FULL, SyncMode.DELTA):
        stmt = insert(Watermark).values(entity=job.entity, synced_until=watermark, job_id=job.id)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Watermark.entity], set_={"synced_until": watermark, "job_id": job.id}
            )
        )


async def enumerated(session: AsyncSession, job_id: int) -> None:
    """Enumeration done, feed files out: the feed reconciler finishes the job once Rithum has them all."""
    await session.execute(
        update(SyncJob).where(SyncJob.id == job_id).values(status=JobStatus.CONFIRMING, enumerated_at=datetime.now(UTC))
    )


async def add_found(session: AsyncSession, job_id: int, count: int) -> None:
    await session.execute(update(SyncJob).where(SyncJob.id == job_id).values(found=SyncJob.found + count))
