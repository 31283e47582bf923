"""Batch sync jobs: created with their "run" message in one transaction (outbox)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
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
        "checkpoint": (job.checkpoint or {}).get("position"),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "enumerated_at": job.enumerated_at,
        "finished_at": job.finished_at,
    }


COUNTERS = ("found", "submitted", "confirmed", "processed", "failed", "filtered", "skipped", "deleted", "forced")
COUNTERS += ("recreated",)
CANCELLED_ERROR = "cancelled on request"


async def claim(session: AsyncSession, entity: str, stale: timedelta) -> SyncJob | None:
    """Take the oldest job of the entity that is queued, or running with a heartbeat older than `stale`
    (its process died), and mark it running here. A job taken over resumes from its checkpoint with
    the counts it had there; a new one starts at zero. Replicas never take the same job (SKIP LOCKED)."""
    now = datetime.now(UTC)
    job = await session.scalar(
        select(SyncJob)
        .where(
            SyncJob.entity == entity,
            or_(
                SyncJob.status == JobStatus.QUEUED,
                and_(SyncJob.status == JobStatus.RUNNING, SyncJob.heartbeat_at < now - stale),
            ),
        )
        .order_by(SyncJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if job is None:
        return None
    if job.checkpoint:
        # Take back what the job's own pages counted after the checkpoint (they run again); what the
        # reconciler and the retry path counted meanwhile stays.
        since = Counter(job.checkpoint.get("live", {}))
        since.subtract(job.checkpoint.get("at", {}))
        for name, n in since.items():
            setattr(job, name, getattr(job, name) - n)
        job.checkpoint = {**job.checkpoint, "live": job.checkpoint.get("at", {})}
    else:
        job.started_at = now
        for name in COUNTERS:
            setattr(job, name, 0)
    job.status = JobStatus.RUNNING
    job.heartbeat_at = now
    job.error = None
    return job


async def heartbeat(session: AsyncSession, job_id: int) -> str | None:
    """Say the job's process is alive; returns the job's status (`cancelled` tells the runner to stop)."""
    return await session.scalar(
        update(SyncJob).where(SyncJob.id == job_id).values(heartbeat_at=datetime.now(UTC)).returning(SyncJob.status)
    )


async def count_page(session: AsyncSession, job_id: int, counts: Counter[str]) -> None:
    """Add a page's counts to the job, and to the tally of what its own pages counted (`checkpoint.live`),
    which a resumed job takes back down to the last checkpoint."""
    job = await session.get(SyncJob, job_id, with_for_update=True)
    if job is None or not counts:
        return
    for name, n in counts.items():
        setattr(job, name, getattr(job, name) + n)
    checkpoint = dict(job.checkpoint or {})
    live = Counter(checkpoint.get("live", {}))
    live.update(counts)
    job.checkpoint = {**checkpoint, "live": dict(live)}


async def checkpoint(session: AsyncSession, job_id: int, position: Any) -> None:
    """Everything before `position` is saved and its writes are durable: a restarted job resumes there."""
    job = await session.get(SyncJob, job_id, with_for_update=True)
    if job is not None:
        live = (job.checkpoint or {}).get("live", {})
        job.checkpoint = {"position": position, "at": live, "live": live}


async def cancel(session: AsyncSession, job_id: int) -> SyncJob | None:
    """Stop a job that has not ended: its runner stops at the next page; what it saved stays."""
    job = await session.get(SyncJob, job_id, with_for_update=True)
    if job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CONFIRMING):
        job.status = JobStatus.CANCELLED
        job.error = CANCELLED_ERROR
        job.finished_at = datetime.now(UTC)
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
    if job is None or job.status == JobStatus.CANCELLED:
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
        update(SyncJob)
        .where(SyncJob.id == job_id, SyncJob.status == JobStatus.RUNNING)  # not a job cancelled meanwhile
        .values(status=JobStatus.CONFIRMING, enumerated_at=datetime.now(UTC))
    )
