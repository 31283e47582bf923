"""The feed reconciler: confirms products written through FTP feed files, at Rithum's pace.

Rithum picks a feed file up "within one hour" and reports row errors only in its UI or by e-mail,
never on the FTP server. So a fed record stays *Submitted* until this reconciler, every
`RITHUM_FEED_RECONCILE_SECONDS`, finds it on Rithum with one paged `UpdateDateUtc ge …` query
(`$select=ID,Sku,UpdateDateUtc`, about one call per 100 products, never one per product): a row
whose SKU shows an update after its file's upload is *Processed* with its Rithum ID, and its ID
write-back is queued. Rows not seen by the file's deadline (`RITHUM_FEED_CONFIRM_TIMEOUT`, 2 hours)
are *Failed* with the reason and handed to the retry path, which sends them through the REST API.
A job whose enumeration ended waits in `confirming` until its last file settles.

`ProductUpload` with its status token would need a UI template per account, and `ProductExport` is
limited to 10 requests a minute and answers with a zip to download: the update-time query works on
every account, costs as much as listing the IDs, and is what the connector already pages with.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update

from services.consumers.context import ConsumerContext
from services.consumers.product.pipeline import ENTITY, WAITING
from services.consumers.product.source import parse_stamp
from services.consumers.product.transform import Kind, ProductRules
from services.consumers.product.writeback import WriteBack, envelopes
from shared import jobs
from shared.db.models import FeedUpload, JobStatus, SyncJob, SyncRecord, SyncStatus
from shared.requestlog import log_context
from shared.rithum.client import odata_datetime
from shared.syncrecords import RECREATED

log = logging.getLogger("connector.product.feeds")
LOCK_KEY = 0x46454544  # "FEED": one reconciler round at a time across replicas
MARGIN = timedelta(minutes=5)  # clock skew between our upload time and Rithum's update times
OVERLAP = timedelta(seconds=30)  # a round starts this far before the newest update the last one saw
CHUNK = 5000
RELEASE_CHUNK = 500  # records sent on per confirmed publish (10,000 at once outlast the confirm timeout)
_RECORDS = SyncRecord.__table__


class FeedReconciler:
    def __init__(self, ctx: ConsumerContext, rules: Callable[[], Awaitable[ProductRules]]) -> None:
        self.ctx = ctx
        self.rules = rules
        self._mark: datetime | None = None  # newest UpdateDateUtc seen: later rounds start there

    async def tick(self) -> None:
        with log_context(entity=ENTITY):
            await self._tick()

    async def _tick(self) -> None:
        async with self.ctx.sessionmaker() as session:
            feeds = list(
                await session.scalars(
                    select(FeedUpload)
                    .where(FeedUpload.entity == ENTITY, FeedUpload.status == "submitted")
                    .order_by(FeedUpload.uploaded_at)
                )
            )
        confirmed, expired = await self._confirm(feeds) if feeds else ([], [])
        if confirmed or expired or not feeds:
            await self._release_waiting(settled=bool(confirmed or expired))
        async with self.ctx.sessionmaker() as session, session.begin():
            await self._finish_jobs(session)

    async def _confirm(
        self, feeds: list[FeedUpload]
    ) -> tuple[list[tuple[str, int, str | None, str | None, int, int | None]], list[tuple[str, int, int | None]]]:
        seen = await self._seen_since(min(f.uploaded_at for f in feeds) - MARGIN)
        by_id = {f.id: f for f in feeds}
        async with self.ctx.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        SyncRecord.acumatica_key,
                        SyncRecord.rithum_id,
                        SyncRecord.kind,
                        SyncRecord.feed_id,
                        SyncRecord.job_id,
                    ).where(
                        SyncRecord.entity == ENTITY,
                        SyncRecord.status == SyncStatus.SUBMITTED.value,
                        SyncRecord.feed_id.in_(list(by_id)),
                    )
                )
            ).all()
        now = datetime.now(UTC)
        confirmed: list[tuple[str, int, str | None, str | None, int, int | None]] = []
        expired: list[tuple[str, int, int | None]] = []
        for key, old_id, kind, feed_id, job_id in rows:
            hit = seen.get(key)
            if hit is not None and (hit[1] is None or hit[1] >= by_id[feed_id].uploaded_at - MARGIN):
                confirmed.append((key, hit[0], old_id, kind, feed_id, job_id))
            elif by_id[feed_id].confirm_by <= now:
                expired.append((key, feed_id, job_id))
        await self._save(feeds, confirmed, expired)
        ref = (await self.rules()).product_id_field
        write_backs = [
            WriteBack.of("TemplateItems" if kind == Kind.PARENT.value else "StockItem", key, str(new_id), ref)
            for key, new_id, old_id, kind, _, _ in confirmed
            if old_id != str(new_id)
        ]
        if write_backs:
            await self.ctx.publisher.publish_many(envelopes(write_backs, None))
        retry: dict[int | None, list[str]] = defaultdict(list)
        for key, _, job_id in expired:
            retry[job_id].append(key)
        for job_id, keys in retry.items():
            await self.ctx.requeue(ENTITY, keys, job_id)
        if confirmed or expired:
            log.info(
                "feeds: %d rows confirmed on Rithum, %d not seen in time (handed to the retry path)",
                len(confirmed),
                len(expired),
            )
        return confirmed, expired

    async def _seen_since(self, since: datetime) -> dict[str, tuple[int, datetime | None]]:
        """SKU → (Rithum ID, UpdateDateUtc) of every product updated since `since` (or the last mark)."""
        if self._mark is not None:  # Rithum's own clock: only writes committed out of order to allow for
            since = max(since, self._mark - OVERLAP)
        seen: dict[str, tuple[int, datetime | None]] = {}
        newest = self._mark
        query = f"UpdateDateUtc ge {odata_datetime(since)}"
        async for row in self.ctx.rithum.iterate_products(filter=query, select=("ID", "Sku", "UpdateDateUtc")):
            stamp = parse_stamp(row.get("UpdateDateUtc"))
            seen[row["Sku"]] = (int(row["ID"]), stamp)
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        self._mark = newest
        return seen

    async def _save(
        self,
        feeds: list[FeedUpload],
        confirmed: list[tuple[str, int, str | None, str | None, int, int | None]],
        expired: list[tuple[str, int, int | None]],
    ) -> None:
        now = datetime.now(UTC)
        per_job: dict[int, Counter[str]] = defaultdict(Counter)
        per_feed: dict[int, Counter[str]] = defaultdict(Counter)
        async with self.ctx.sessionmaker() as session, session.begin():
            done = [
                {
                    "k": key,
                    "rid": str(new_id),
                    "op": "Inserted Externally"
                    if old_id is None
                    else RECREATED
                    if old_id != str(new_id)
                    else "Updated Externally",
                    "now": now,
                }
                for key, new_id, old_id, _, _, _ in confirmed
            ]
            await _update_submitted(
                session,
                done,
                status=SyncStatus.PROCESSED.value,
                rithum_id=bindparam("rid"),
                last_operation=bindparam("op"),
                last_error=None,
                attempt_count=0,
            )
            for _, new_id, old_id, _, feed_id, job_id in confirmed:
                per_feed[feed_id]["confirmed"] += 1
                if job_id is not None:
                    per_job[job_id]["confirmed"] += 1
                    per_job[job_id]["processed"] += 1
                    if old_id is not None and old_id != str(new_id):
                        per_job[job_id]["recreated"] += 1
            names = {f.id: f.name for f in feeds}
            lost = [
                {
                    "k": key,
                    "err": f"feed {names[feed_id]}: not seen on Rithum within "
                    f"{self.ctx.settings.rithum_feed_confirm_timeout / 3600:g} h of its upload "
                    "(Rithum reports row errors under Inventory > Upload/Download Status); sent again",
                    "now": now,
                }
                for key, feed_id, _ in expired
            ]
            await _update_submitted(
                session,
                lost,
                status=SyncStatus.FAILED.value,
                last_operation="Not Confirmed",
                last_error=bindparam("err"),
                attempt_count=_RECORDS.c.attempt_count + 1,
                content_hash=None,
                sent=None,
            )
            for _, feed_id, job_id in expired:
                per_feed[feed_id]["failed"] += 1
                if job_id is not None:
                    per_job[job_id]["failed"] += 1
            for feed_id, counts in per_feed.items():
                await session.execute(
                    update(FeedUpload)
                    .where(FeedUpload.id == feed_id)
                    .values({name: getattr(FeedUpload, name) + n for name, n in counts.items()})
                )
            for job_id, counts in per_job.items():
                await session.execute(
                    update(SyncJob)
                    .where(SyncJob.id == job_id)
                    .values({name: getattr(SyncJob, name) + n for name, n in counts.items()})
                )
            await self._settle(session, [f.id for f in feeds], now)

    async def _settle(self, session: Any, feed_ids: list[int], now: datetime) -> None:
        """Feeds with no Submitted row left are settled."""
        open_feeds = set(
            await session.scalars(
                select(SyncRecord.feed_id)
                .where(
                    SyncRecord.entity == ENTITY,
                    SyncRecord.status == SyncStatus.SUBMITTED.value,
                    SyncRecord.feed_id.in_(feed_ids),
                )
                .distinct()
            )
        )
        settled = [f for f in feed_ids if f not in open_feeds]
        if settled:
            await session.execute(
                update(FeedUpload).where(FeedUpload.id.in_(settled)).values(status="settled", settled_at=now)
            )

    @staticmethod
    async def _finish_jobs(session: Any) -> None:
        """A job waiting in `confirming` finishes once none of its feed files is open and none of its
        records is held back for a parent or components still on their way."""
        open_feeds = select(FeedUpload.job_id).where(FeedUpload.status == "submitted", FeedUpload.job_id.is_not(None))
        held = select(SyncRecord.job_id).where(
            SyncRecord.entity == ENTITY, SyncRecord.status == SyncStatus.PENDING.value, SyncRecord.job_id.is_not(None)
        )
        done = list(
            await session.scalars(
                select(SyncJob).where(
                    SyncJob.entity == ENTITY,
                    SyncJob.status == JobStatus.CONFIRMING,
                    SyncJob.id.not_in(open_feeds),
                    SyncJob.id.not_in(held),
                )
            )
        )
        for job in done:
            await jobs.finish(session, job.id, watermark=job.started_at)
            log.info("job %d finished: its feed rows are confirmed or timed out, and nothing waits for them", job.id)

    async def _release_waiting(self, *, settled: bool) -> None:
        """Send on the children and bundles held back for rows in a feed: after rows settled, or when
        nothing is in a feed any more (an upload that failed leaves them nothing to wait for)."""
        async with self.ctx.sessionmaker() as session, session.begin():
            if not settled:
                busy = await session.scalar(
                    select(func.count())
                    .select_from(SyncJob)
                    .where(SyncJob.entity == ENTITY, SyncJob.status == JobStatus.RUNNING)
                )
                if busy:  # a running job's spool may hold what they wait for
                    return
            rows = (
                await session.execute(
                    select(SyncRecord.acumatica_key, SyncRecord.job_id).where(
                        SyncRecord.entity == ENTITY,
                        SyncRecord.status == SyncStatus.PENDING.value,
                        SyncRecord.last_operation == WAITING,
                    )
                )
            ).all()
        retry: dict[int | None, list[str]] = defaultdict(list)
        for key, job_id in rows:
            retry[job_id].append(key)
        for job_id, keys in retry.items():
            for start in range(0, len(keys), RELEASE_CHUNK):
                chunk = keys[start : start + RELEASE_CHUNK]
                await self.ctx.requeue(ENTITY, chunk, job_id)  # raises if not confirmed: the rest waits
                async with self.ctx.sessionmaker() as session, session.begin():
                    # Not picked again while the retry is on its way; held back again if still waiting.
                    await session.execute(
                        update(SyncRecord)
                        .where(
                            SyncRecord.entity == ENTITY,
                            SyncRecord.acumatica_key.in_(chunk),
                            SyncRecord.status == SyncStatus.PENDING.value,
                            SyncRecord.last_operation == WAITING,
                        )
                        .values(last_operation="Sent Again")
                    )


async def _update_submitted(session: Any, rows: list[dict[str, Any]], **values: Any) -> None:
    """Settle Submitted records in bulk: one executemany per chunk, keyed by `k`, stamped with `now`."""
    statement = (
        update(_RECORDS)
        .where(
            _RECORDS.c.entity == ENTITY,
            _RECORDS.c.acumatica_key == bindparam("k"),
            _RECORDS.c.status == SyncStatus.SUBMITTED.value,
        )
        .values(**values, updated_at=bindparam("now"))
    )
    for start in range(0, len(rows), CHUNK):
        await session.execute(statement, rows[start : start + CHUNK])
