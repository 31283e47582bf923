"""Product consumer wiring: the record handler (real time), the job runner (batch), the CA Product
ID write-back handler and the feed reconciler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.consumers.context import ConsumerContext
from services.consumers.product.feeds import LOCK_KEY, FeedReconciler
from services.consumers.product.pipeline import ENTITY, WAITING, ProductPipeline
from services.consumers.product.rules_config import load_rules
from services.consumers.product.source import ProductSource, Unit
from services.consumers.product.spool import FeedSpool
from services.consumers.product.transform import ProductRules
from services.consumers.product.writeback import WriteBack, WriteBackHandler, attempts, envelopes
from shared import jobs, syncrecords
from shared.asynciter import read_ahead
from shared.db.models import SyncJob, SyncMode, SyncStatus
from shared.messaging.consumer import Ack, DeadLetter, Delivery, Outcome, Retry
from shared.periodic import Periodic
from shared.requestlog import log_context
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
        units = await self.source.resolve(keys)
        outcomes, write_backs = await self.pipeline.sync(units, rules, feed_threshold=feed_threshold)
        by_key = {o.key: o for o in outcomes}
        final_attempt = {d.envelope.key: d.attempt + 1 >= max_attempts for d in batch}
        for outcome in outcomes:
            if outcome.status is SyncStatus.FAILED and final_attempt.get(outcome.key):
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
                results.append(Retry(outcome.error or "failed"))
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
        return [await self.run_job(int(d.envelope.payload["job_id"])) for d in batch]

    async def run_job(self, job_id: int) -> Outcome:
        """Enumerate the job's records page by page through the pipeline; failures go to the retry path."""
        with log_context(entity=ENTITY, job_id=job_id):
            return await self._run_job(job_id)

    async def _run_job(self, job_id: int) -> Outcome:
        began = datetime.now(UTC)
        async with self.ctx.sessionmaker() as session, session.begin():
            job = await jobs.start(session, job_id)
            if job is None:
                log.info("job %s already enumerated, finished or unknown; ignoring its message", job_id)
                return Ack()
            start, end = await jobs.window(session, job, began)
            mode, keys, force = job.mode, (job.keys or {}).get("keys"), job.force
        log.info("job %d (%s %s%s) started: window %s to %s", job_id, ENTITY, mode, " forced" * force, start, end)
        rules, feed_threshold, _ = await self._rules()
        spool = FeedSpool()
        page = _JobPage(self, job_id, rules, spool, force)  # every write but bundles goes into the spool
        # A full job is the repair tool: Rithum's catalogue is listed while Acumatica is paged, and the
        # records left alone as unchanged are then checked against it.
        listing = asyncio.create_task(self.pipeline.on_rithum()) if mode == SyncMode.FULL and not force else None
        try:
            if mode == SyncMode.SELECTED:
                for i in range(0, len(keys or []), SELECTED_PAGE):
                    await page.run(await self.source.resolve(keys[i : i + SELECTED_PAGE]))
            else:
                async for units in read_ahead(self.source.pages(start, end)):
                    await page.run(units)
            if listing is not None:
                await page.recreate_lost(await listing)
            outcomes, write_backs = await self.pipeline.flush(
                spool, rules, feed_threshold=feed_threshold, job_id=job_id
            )
            await page.save(outcomes, write_backs)
        except Exception as exc:
            log.exception("job %d failed", job_id)
            if listing is not None:
                listing.cancel()
            async with self.ctx.sessionmaker() as session, session.begin():
                await jobs.finish(session, job_id, error=f"{type(exc).__name__}: {exc}")
            return Ack()
        finally:
            spool.close()
        if page.failed:
            await self.ctx.requeue(ENTITY, page.failed, job_id)
        submitted = any(o.status is SyncStatus.SUBMITTED for o in outcomes)
        if page.waiting and not submitted:  # what they waited for went through the REST API just now
            await self.ctx.requeue(ENTITY, page.waiting, job_id)
        async with self.ctx.sessionmaker() as session, session.begin():
            if submitted or page.waiting:  # the feed reconciler finishes it once nothing is on its way
                await jobs.enumerated(session, job_id)
            else:
                await jobs.finish(session, job_id, watermark=began)
        log.info(
            "job %d enumerated: %d records handed to the retry path%s",
            job_id,
            len(page.failed),
            f", {len(spool)} in a feed file awaiting Rithum" if submitted else "",
        )
        return Ack()


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
        self.seen: set[str] = set()  # a family's parent comes with every page of its variants: count it once
        self.failed: list[str] = []
        self.waiting: list[str] = []

    async def run(self, units: Sequence[Unit], on_rithum: dict[str, int] | None = None) -> None:
        outcomes, write_backs = await self.consumer.pipeline.sync(
            units,
            self.rules,
            feed_threshold=0,
            job_id=self.job_id,
            spool=self.spool,
            force=self.force,
            on_rithum=on_rithum,
            unchanged=self.unchanged if on_rithum is None else None,
        )
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
            await session.execute(
                update(SyncJob)
                .where(SyncJob.id == self.job_id)
                .values(skipped=SyncJob.skipped - len(counted), found=SyncJob.found - len(counted))
            )
        self.seen.difference_update(lost)
        for i in range(0, len(lost), SELECTED_PAGE):
            await self.run(await self.consumer.source.resolve(lost[i : i + SELECTED_PAGE]), on_rithum)

    async def save(self, outcomes: list[RecordOutcome], write_backs: list[WriteBack]) -> None:
        outcomes = [o for o in outcomes if o.key not in self.seen]
        self.seen.update(o.key for o in outcomes)
        ctx = self.consumer.ctx
        async with ctx.sessionmaker() as session, session.begin():
            await syncrecords.save(session, ENTITY, outcomes, job_id=self.job_id)
            await syncrecords.count_into_job(session, self.job_id, outcomes)
            await jobs.add_found(session, self.job_id, len(outcomes))
        await self.consumer._queue_write_backs(write_backs, self.job_id)
        self.skipped.update(o.key for o in outcomes if o.status is SyncStatus.SKIPPED)
        self.failed += [o.key for o in outcomes if o.status is SyncStatus.FAILED]
        self.waiting += [o.key for o in outcomes if o.status is SyncStatus.PENDING and o.operation == WAITING]
