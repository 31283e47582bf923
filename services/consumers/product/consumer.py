"""Product consumer wiring: the record handler (real time), the job runner (batch), the CA Product
ID write-back handler and the feed reconciler."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from services.consumers.context import ConsumerContext
from services.consumers.product.feeds import LOCK_KEY, FeedReconciler
from services.consumers.product.pipeline import ENTITY, WAITING, ProductPipeline
from services.consumers.product.rules_config import load_rules
from services.consumers.product.source import Position, ProductSource, Unit
from services.consumers.product.spool import FeedSpool
from services.consumers.product.transform import ProductRules
from services.consumers.product.writeback import WriteBack, WriteBackHandler, attempts, envelopes
from shared import jobs, syncrecords
from shared.acumatica.errors import AcumaticaError, AcumaticaTargetUnavailable, LicenseLimit
from shared.asynciter import read_ahead
from shared.db.models import SyncJob, SyncMode, SyncStatus
from shared.jobrunner import JobRunner
from shared.messaging.consumer import Ack, DeadLetter, Delivery, Outcome, Retry
from shared.periodic import Periodic
from shared.requestlog import log_context
from shared.rithum.errors import RithumError
from shared.syncrecords import Outcome as RecordOutcome

log = logging.getLogger("connector.product")
SELECTED_PAGE = 500


class ProductConsumer:
    def __init__(self, ctx: ConsumerContext) -> None:
        self.ctx = ctx
        self.source = ProductSource(ctx.acumatica, page_size=ctx.settings.acumatica_page_size)
        self.pipeline = ProductPipeline(
            rithum=ctx.rithum,
            feeds=ctx.feeds,
            sessionmaker=ctx.sessionmaker,
            confirm_timeout=timedelta(seconds=ctx.settings.rithum_feed_confirm_timeout),
        )
        self.reconciler = FeedReconciler(ctx, self._current_rules)
        settings = ctx.settings
        self.runner = JobRunner(
            ENTITY,
            ctx.sessionmaker,
            self.run_job,
            heartbeat=settings.job_heartbeat_seconds,
            stale=settings.job_stale_seconds,
        )
        self.write_backs = WriteBackHandler(ctx.acumatica, ctx.sessionmaker, ctx.settings.acumatica_concurrency)
        self._rules_for: tuple[object, ProductRules] | None = None

    async def _rules(self) -> tuple[ProductRules, int, int]:
        """The mappings are read again whenever the site configuration cache refreshes (every ~2 s), so a
        mapping change applies as soon as a configuration change does, without a query per batch."""
        config = await self.ctx.config.get()
        if self._rules_for is None or self._rules_for[0] is not config:
            async with self.ctx.sessionmaker() as session:
                self._rules_for = (config, await load_rules(session, config.options))
        rules = replace(self._rules_for[1], class_attributes=await self.source.class_attributes())
        self.source.custom = rules.custom_fields()
        return rules, config.feed_threshold, config.max_attempts

    async def _current_rules(self) -> ProductRules:
        return (await self._rules())[0]

    def reconciler_task(self) -> Periodic:
        """Runs in the process that serves the jobs queue; one round at a time across replicas."""
        interval = self.ctx.settings.rithum_feed_reconcile_seconds
        return Periodic("product-feeds", self.reconciler.tick, interval, self.ctx.engine, LOCK_KEY)

    async def _queue_write_backs(self, write_backs: Sequence[WriteBack], job_id: int | None) -> None:
        """After the outcomes are saved, so the write-back handler finds the records it stamps."""
        if write_backs:
            await self.ctx.publisher.publish_many(envelopes(write_backs, job_id))

    async def handle_records(self, batch: list[Delivery]) -> list[Outcome]:
        """Real time: repeated changes to one key in the batch collapse into one sync."""
        keys = list(dict.fromkeys(d.envelope.key for d in batch if d.envelope.key))
        rules, feed_threshold, max_attempts = await self._rules()  # first: they name the custom fields to read
        try:
            units = await self.source.resolve(keys)
        except (AcumaticaTargetUnavailable, LicenseLimit, httpx.TransportError) as exc:
            log.warning("Acumatica unavailable for %d keys: %s", len(keys), exc)  # not the records' fault
            return [Retry(f"Acumatica unavailable: {exc}", outage=True) for _ in batch]
        except AcumaticaError as exc:
            if exc.status < 500:
                raise
            log.warning("Acumatica unavailable for %d keys: %s", len(keys), exc)
            return [Retry(f"Acumatica unavailable: {exc}", outage=True) for _ in batch]
        outcomes, write_backs = await self.pipeline.sync(units, rules, feed_threshold=feed_threshold)
        by_key = {o.key: o for o in outcomes}
        final_attempt = {d.envelope.key: d.attempt + 1 >= max_attempts for d in batch}
        for outcome in outcomes:  # an outage spends no attempts: the runtime waits it out on its own schedule
            if outcome.status is SyncStatus.FAILED and not outcome.outage and final_attempt.get(outcome.key):
                outcome.status = SyncStatus.ABORTED
        retried_jobs = {int(d.envelope.payload["job_id"]) for d in batch if d.envelope.payload.get("job_id")}
        async with self.ctx.sessionmaker() as session, session.begin():
            counted = await syncrecords.unsettled_by_job(session, ENTITY, list(by_key), retried_jobs)
            await syncrecords.save(session, ENTITY, outcomes)
            await syncrecords.recount_retried(session, counted, outcomes)
        await self._queue_write_backs(write_backs, None)
        results: list[Outcome] = []
        for delivery in batch:
            outcome = by_key.get(delivery.envelope.key or "")
            if outcome is None or outcome.status not in (SyncStatus.FAILED, SyncStatus.ABORTED):
                results.append(Ack())
            elif outcome.status is SyncStatus.ABORTED:
                results.append(DeadLetter(f"aborted after {max_attempts} attempts: {outcome.error}"))
            else:
                results.append(Retry(outcome.error or "failed", outage=outcome.outage))
        log.info(
            "batch of %d messages (%d keys): %s",
            len(batch),
            len(keys),
            {s.value: sum(o.status is s for o in outcomes) for s in SyncStatus if any(o.status is s for o in outcomes)},
        )
        return results

    async def handle_write_backs(self, batch: list[Delivery]) -> list[Outcome]:
        return await self.write_backs.handle(batch, attempts((await self.ctx.config.get()).max_attempts))

    async def handle_jobs(self, batch: list[Delivery]) -> list[Outcome]:
        """A run message only wakes the job runner, which claims the job from the database: no delivery
        stays unacked for the hours a job may take (see shared/jobrunner.py)."""
        self.runner.wake()
        return [Ack() for _ in batch]

    def background(self) -> list[Periodic | JobRunner]:
        """What the process serving the jobs queue also runs: the job runner and the feed reconciler."""
        return [self.runner, self.reconciler_task()]

    async def run_job(self, job: SyncJob) -> None:
        """Enumerate the job's records page by page through the pipeline; failures go to the retry path."""
        with log_context(entity=ENTITY, job_id=job.id):
            try:
                await self._run_job(job)
            except Exception as exc:
                log.exception("job %d failed", job.id)
                async with self.ctx.sessionmaker() as session, session.begin():
                    await jobs.finish(session, job.id, error=f"{type(exc).__name__}: {exc}")

    async def _run_job(self, job: SyncJob) -> None:
        job_id, mode, force = job.id, job.mode, job.force
        began = job.started_at or datetime.now(UTC)
        keys = (job.keys or {}).get("keys") or []
        resume = tuple((job.checkpoint or {}).get("position") or (0, 0))
        async with self.ctx.sessionmaker() as session:
            start, end = await jobs.window(session, job, began)
        log.info(
            "job %d (%s %s%s) %s: window %s to %s",
            job_id,
            ENTITY,
            mode,
            " forced" * force,
            f"resumed at {resume}" if job.checkpoint else "started",
            start,
            end,
        )
        rules, feed_threshold, _ = await self._rules()
        file_rows = self.ctx.settings.rithum_feed_file_rows
        page = _JobPage(self, job_id, rules, FeedSpool(), force)  # every write but bundles goes into the spool
        # A full job is the repair tool: Rithum's catalogue is listed while Acumatica is paged, and the
        # records left alone as unchanged are then checked against it.
        verify = mode == SyncMode.FULL and not force
        listing = asyncio.create_task(self.pipeline.on_rithum()) if verify else None
        try:
            if mode == SyncMode.SELECTED:
                for i in range(resume[1], len(keys), SELECTED_PAGE):
                    await page.run(await self.source.resolve(keys[i : i + SELECTED_PAGE]))
                    await page.checkpoint((0, i + SELECTED_PAGE), feed_threshold, file_rows)
            else:
                async for position, units in read_ahead(self.source.pages(start, end, resume)):
                    await page.run(units)
                    await page.checkpoint(position, feed_threshold, file_rows)
            if listing is not None:
                try:
                    on_rithum = await listing
                except (RithumError, httpx.HTTPError) as exc:  # the writes go on; only the check is missed
                    log.warning("job %d: Rithum's catalogue not read (%s); unchanged records not checked", job_id, exc)
                else:
                    await page.recreate_lost(on_rithum)
            await page.flush(feed_threshold)
        finally:
            page.spool.close()
            if listing is not None:
                listing.cancel()
        await page.requeue_failed()
        if page.waiting and not page.submitted:  # what they waited for went through the REST API just now
            await self.ctx.requeue(ENTITY, page.waiting, job_id)
        async with self.ctx.sessionmaker() as session, session.begin():
            if page.submitted or page.waiting:  # the feed reconciler finishes it once nothing is on its way
                await jobs.enumerated(session, job_id)
            else:
                await jobs.finish(session, job_id, watermark=began)
        log.info("job %d enumerated%s", job_id, ": its feed files await Rithum" if page.submitted else "")


class _JobPage:
    """Saves what each page of a job decided; remembers what the retry path and the reconciler take on."""

    def __init__(
        self, consumer: ProductConsumer, job_id: int, rules: ProductRules, spool: FeedSpool, force: bool = False
    ) -> None:
        self.consumer = consumer
        self.job_id = job_id
        self.rules = rules
        self.spool = spool
        self.force = force
        self.unchanged: dict[str, str] = {}  # SKU → Rithum ID of records left alone (checked by a full job)
        self.skipped: set[str] = set()  # of those, the ones counted as skipped
        self.submitted = False  # a feed file went out
        self.seen: set[str] = set()  # a family's parent comes with every page of its variants: count it once
        self.failed: list[str] = []
        self.waiting: list[str] = []

    async def run(self, units: Sequence[Unit], on_rithum: dict[str, int] | None = None) -> None:
        unchanged: dict[str, str] = {}
        outcomes, write_backs = await self.consumer.pipeline.sync(
            units,
            self.rules,
            feed_threshold=0,
            job_id=self.job_id,
            spool=self.spool,
            force=self.force,
            on_rithum=on_rithum,
            unchanged=unchanged if on_rithum is None else None,
        )
        # What this job wrote itself (a parent seen again with its next variants) is not checked against a
        # listing taken before the job wrote it.
        self.unchanged.update({k: v for k, v in unchanged.items() if k not in self.seen})
        await self.save(outcomes, write_backs)

    async def recreate_lost(self, on_rithum: dict[str, int]) -> None:
        """Unchanged records whose product Rithum no longer has (deleted there, a restored account) are
        read again and written: re-created on the target, in the same file as the rest of the job."""
        lost = [sku for sku, rithum_id in self.unchanged.items() if on_rithum.get(sku) != int(rithum_id)]
        if not lost:
            return
        log.info("job %d: %d unchanged products are missing on Rithum; creating them again", self.job_id, len(lost))
        counted = [sku for sku in lost if sku in self.skipped]
        async with self.consumer.ctx.sessionmaker() as session, session.begin():
            await jobs.count_page(session, self.job_id, Counter(skipped=-len(counted), found=-len(counted)))
        self.seen.difference_update(lost)
        for i in range(0, len(lost), SELECTED_PAGE):
            await self.run(await self.consumer.source.resolve(lost[i : i + SELECTED_PAGE]), on_rithum)

    async def save(self, outcomes: list[RecordOutcome], write_backs: list[WriteBack]) -> None:
        outcomes = [o for o in outcomes if o.key not in self.seen]
        self.seen.update(o.key for o in outcomes)
        ctx = self.consumer.ctx
        counts = syncrecords.job_counts(outcomes)
        counts["found"] = len(outcomes)
        async with ctx.sessionmaker() as session, session.begin():
            await syncrecords.save(session, ENTITY, outcomes, job_id=self.job_id)
            await jobs.count_page(session, self.job_id, +counts)
        await self.consumer._queue_write_backs(write_backs, self.job_id)
        self.skipped.update(o.key for o in outcomes if o.status is SyncStatus.SKIPPED)
        self.submitted |= any(o.status is SyncStatus.SUBMITTED for o in outcomes)
        self.failed += [o.key for o in outcomes if o.status is SyncStatus.FAILED]
        self.waiting += [o.key for o in outcomes if o.status is SyncStatus.PENDING and o.operation == WAITING]

    async def flush(self, feed_threshold: int) -> None:
        """Send what the spool holds: a feed file if there are enough rows, else `$batch` writes."""
        outcomes, write_backs = await self.consumer.pipeline.flush(
            self.spool, self.rules, feed_threshold=feed_threshold, job_id=self.job_id
        )
        await self.save(outcomes, write_backs)
        self.spool.close()
        self.spool = FeedSpool()

    async def checkpoint(self, position: Position, feed_threshold: int, file_rows: int) -> None:
        """A full file goes out; once nothing waits in the spool, a restarted job may resume here."""
        if len(self.spool) >= file_rows:
            await self.flush(feed_threshold)
        if len(self.spool):
            return
        await self.requeue_failed()
        async with self.consumer.ctx.sessionmaker() as session, session.begin():
            await jobs.checkpoint(session, self.job_id, list(position))

    async def requeue_failed(self) -> None:
        if self.failed:
            await self.consumer.ctx.requeue(ENTITY, self.failed, self.job_id)
            self.failed = []
