"""Sync records: the per-record history operators read (status, last operation, error, attempts).

Written in bulk, one statement per batch, so a 1,000-record page costs one round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import FeedUpload, SyncJob, SyncRecord, SyncStatus

# Job counters per outcome. A Failed record counts as failed in the job's figures until the retry
# path settles it (`recount_retried`); a Submitted one as submitted until the feed reconciler confirms
# it (then confirmed and processed) or times it out (failed); a Pending one is not counted.
FINAL = {
    SyncStatus.SUBMITTED: "submitted",
    SyncStatus.FAILED: "failed",
    SyncStatus.PROCESSED: "processed",
    SyncStatus.SKIPPED: "skipped",
    SyncStatus.FILTERED: "filtered",
    SyncStatus.DELETED: "deleted",
    SyncStatus.ABORTED: "failed",
}


RECREATED = "Re-created Externally"  # the connector had it on the target, the target no longer had it
FORCED = "Forced to Resync"  # sent although unchanged, because the sync was forced


@dataclass(slots=True)
class Outcome:
    key: str
    status: SyncStatus
    operation: str
    rithum_id: str | None = None
    error: str | None = None
    content_hash: str | None = None
    kind: str | None = None
    source_modified_at: datetime | None = None
    sent: dict[str, Any] | None = None  # the body Rithum now has (or will, once the feed is picked up)
    feed_id: int | None = None
    forced: bool = False  # written only because the sync was forced
    outage: bool = False  # failed because the target was unreachable, not because of the record


async def load(session: AsyncSession, entity: str, keys: Iterable[str]) -> dict[str, SyncRecord]:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    rows = await session.scalars(
        select(SyncRecord).where(SyncRecord.entity == entity, SyncRecord.acumatica_key.in_(keys))
    )
    return {r.acumatica_key: r for r in rows}


async def save(session: AsyncSession, entity: str, outcomes: Sequence[Outcome], *, job_id: int | None = None) -> None:
    """Upsert outcomes. A failure increments the attempt count; any other outcome resets it.
    A Skipped (unchanged) outcome keeps the stored status and only updates the last operation.

    Fields an outcome does not know (hash, Rithum ID) keep their stored value, so a failed update
    never forgets which Rithum product the record belongs to.
    """
    if not outcomes:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "entity": entity,
            "acumatica_key": o.key,
            "rithum_id": o.rithum_id,
            "kind": o.kind,
            "status": o.status.value,
            "last_operation": o.operation,
            "last_error": o.error,
            "attempt_count": 1 if o.status in (SyncStatus.FAILED, SyncStatus.ABORTED) else 0,
            "content_hash": o.content_hash,
            "source_modified_at": o.source_modified_at,
            "sent": o.sent,
            "feed_id": o.feed_id,
            "job_id": job_id,
            "last_attempt_at": now,
            "updated_at": now,
        }
        for o in {o.key: o for o in outcomes}.values()
    ]
    stmt = insert(SyncRecord)
    # A literal list: expanding IN parameters cannot be used with executemany.
    failed = stmt.excluded.status.in_([literal_column(f"'{s.value}'") for s in (SyncStatus.FAILED, SyncStatus.ABORTED)])
    stmt = stmt.on_conflict_do_update(
        constraint="uq_sync_records_entity_key",
        set_={
            "rithum_id": func.coalesce(stmt.excluded.rithum_id, SyncRecord.rithum_id),
            "kind": func.coalesce(stmt.excluded.kind, SyncRecord.kind),
            # "Not changed" says nothing new about the record: it keeps its status (e.g. Processed).
            "status": case(
                (stmt.excluded.status == literal_column(f"'{SyncStatus.SKIPPED.value}'"), SyncRecord.status),
                else_=stmt.excluded.status,
            ),
            "last_operation": stmt.excluded.last_operation,
            "last_error": stmt.excluded.last_error,
            "attempt_count": case((failed, SyncRecord.attempt_count + 1), else_=0),
            "content_hash": func.coalesce(stmt.excluded.content_hash, SyncRecord.content_hash),
            "source_modified_at": func.coalesce(stmt.excluded.source_modified_at, SyncRecord.source_modified_at),
            # A Python None arrives as JSON null: keep the stored body then too.
            "sent": func.coalesce(func.nullif(stmt.excluded.sent, literal_column("'null'::jsonb")), SyncRecord.sent),
            "feed_id": func.coalesce(stmt.excluded.feed_id, SyncRecord.feed_id),
            "job_id": func.coalesce(stmt.excluded.job_id, SyncRecord.job_id),
            "last_attempt_at": stmt.excluded.last_attempt_at,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await session.execute(stmt, rows)
    feeds = {o.feed_id for o in outcomes if o.feed_id is not None and o.status is SyncStatus.SUBMITTED}
    if feeds:  # in the same transaction: the feed reconciler never sees a file without its rows
        await session.execute(
            update(FeedUpload)
            .where(FeedUpload.id.in_(feeds), FeedUpload.status == "uploaded")
            .values(status="submitted")
        )


def job_counts(outcomes: Sequence[Outcome]) -> Counter[str]:
    """A batch's final outcomes as job counters, with how many were forced or re-created on the target."""
    counts = Counter(FINAL[o.status] for o in outcomes if o.status in FINAL)
    counts["forced"] = sum(o.forced for o in outcomes)
    counts["recreated"] = sum(o.operation == RECREATED for o in outcomes)
    return +counts  # drop the zeros


async def unsettled_by_job(
    session: AsyncSession, entity: str, keys: Sequence[str], jobs: set[int]
) -> dict[str, tuple[int, str]]:
    """Of `keys`, those a job of `jobs` (whose retries are in hand) left Failed or held back (Pending):
    key → (job, status). A retried variant brings its family, so the parent's record may be settled by
    its child's retry."""
    if not keys or not jobs:
        return {}
    rows = await session.execute(
        select(SyncRecord.acumatica_key, SyncRecord.job_id, SyncRecord.status).where(
            SyncRecord.entity == entity,
            SyncRecord.acumatica_key.in_(list(keys)),
            SyncRecord.status.in_([SyncStatus.FAILED.value, SyncStatus.PENDING.value]),
            SyncRecord.job_id.in_(jobs),
        )
    )
    return {key: (job, status) for key, job, status in rows.tuples()}


async def recount_retried(
    session: AsyncSession, counted: dict[str, tuple[int, str]], outcomes: Sequence[Outcome]
) -> None:
    """A record its job counted as failed, now settled by the retry path, moves to its final counter; one
    the job held back (not counted yet) is counted now. The job's figures end up saying what became of
    every record."""
    per_job: dict[int, Counter[str]] = {}
    for o in outcomes:
        job, status = counted.get(o.key, (None, None))
        if job is None or o.status not in FINAL:
            continue
        if status == SyncStatus.PENDING.value:
            per_job.setdefault(job, Counter())[FINAL[o.status]] += 1
        elif FINAL[o.status] != "failed":
            per_job.setdefault(job, Counter())[FINAL[o.status]] += 1
            per_job[job]["failed"] -= 1
    for job, counts in per_job.items():
        values: dict[str, Any] = {name: getattr(SyncJob, name) + n for name, n in counts.items() if n}
        if values:
            await session.execute(update(SyncJob).where(SyncJob.id == job).values(values))


async def clear_hash(session: AsyncSession, entity: str, keys: Sequence[str]) -> None:
    """Forget content hashes, so the next sync writes these records even if unchanged."""
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.entity == entity, SyncRecord.acumatica_key.in_(keys))
        .values(content_hash=None)
    )
