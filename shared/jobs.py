"""Batch sync jobs: created with their "run" message in one transaction (outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared import outbox
from shared.db.models import JobStatus, SyncJob, SyncMode
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
) -> tuple[SyncJob, Envelope]:
    """Insert the job and stage its run message; the caller commits, then wakes the relay."""
    validate_window(mode, window_from, window_to)
    job = SyncJob(
        entity=entity,
        mode=mode.value,
        window_from=window_from,
        window_to=window_to,
        status=JobStatus.QUEUED,
        source=source,
        schedule_id=schedule_id,
        keys={"keys": keys} if keys is not None else None,
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
        "from": job.window_from,
        "to": job.window_to,
        "status": job.status,
        "source": job.source,
        "schedule_id": job.schedule_id,
        "counts": {
            "found": job.found,
            "processed": job.processed,
            "failed": job.failed,
            "filtered": job.filtered,
            "skipped": job.skipped,
            "deleted": job.deleted,
        },
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
