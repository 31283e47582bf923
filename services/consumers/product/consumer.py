"""Product consumer wiring: the record handler (real time), the job runner (batch) and the
CA Product ID write-back handler."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from services.consumers.context import ConsumerContext
from services.consumers.product.pipeline import ENTITY, ProductPipeline
from services.consumers.product.rules_config import load_rules
from services.consumers.product.source import ProductSource, Unit
from services.consumers.product.transform import ProductRules
from services.consumers.product.writeback import WriteBack, WriteBackHandler, attempts, envelopes
from shared import jobs, syncrecords
from shared.asynciter import read_ahead
from shared.db.models import SyncMode, SyncStatus
from shared.messaging.consumer import Ack, DeadLetter, Delivery, Outcome, Retry
from shared.requestlog import log_context
from shared.syncrecords import Outcome as RecordOutcome

log = logging.getLogger("connector.product")
SELECTED_PAGE = 500


class ProductConsumer:
    def __init__(self, ctx: ConsumerContext) -> None:
        self.ctx = ctx
        self.source = ProductSource(ctx.acumatica, page_size=ctx.settings.acumatica_page_size)
        self.pipeline = ProductPipeline(
            acumatica=ctx.acumatica, rithum=ctx.rithum, feeds=ctx.feeds, sessionmaker=ctx.sessionmaker
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
        return rules, config.feed_threshold, config.max_attempts

    async def _sync(
        self, units: Sequence[Unit], job_id: int | None
    ) -> tuple[list[RecordOutcome], list[WriteBack], int]:
        rules, feed_threshold, max_attempts = await self._rules()
        outcomes, write_backs = await self.pipeline.sync(units, rules, feed_threshold=feed_threshold, job_id=job_id)
        return outcomes, write_backs, max_attempts

    async def _queue_write_backs(self, write_backs: Sequence[WriteBack], job_id: int | None) -> None:
        """After the outcomes are saved, so the write-back handler finds the records it stamps."""
        if write_backs:
            await self.ctx.publisher.publish_many(envelopes(write_backs, job_id))

    async def handle_records(self, batch: list[Delivery]) -> list[Outcome]:
        """Real time: repeated changes to one key in the batch collapse into one sync."""
        keys = list(dict.fromkeys(d.envelope.key for d in batch if d.envelope.key))
        units = await self.source.resolve(keys)
        outcomes, write_backs, max_attempts = await self._sync(units, None)
        by_key = {o.key: o for o in outcomes}
        final_attempt = {d.envelope.key: d.attempt + 1 >= max_attempts for d in batch}
        for outcome in outcomes:
            if outcome.status is SyncStatus.FAILED and final_attempt.get(outcome.key):
                outcome.status = SyncStatus.ABORTED
        retried_jobs = {int(d.envelope.payload["job_id"]) for d in batch if d.envelope.payload.get("job_id")}
        async with self.ctx.sessionmaker() as session, session.begin():
            counted = await syncrecords.failed_by_job(session, ENTITY, list(by_key), retried_jobs)
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
                log.info("job %s already finished or unknown; ignoring its message", job_id)
                return Ack()
            start, end = await jobs.window(session, job, began)
            mode, keys = job.mode, (job.keys or {}).get("keys")
        log.info("job %d (%s %s) started: window %s to %s", job_id, ENTITY, mode, start, end)
        failed_keys: list[str] = []
        seen: set[str] = set()  # a family's parent comes with every page of its variants: count it once
        try:
            if mode == SyncMode.SELECTED:
                for i in range(0, len(keys or []), SELECTED_PAGE):
                    units = await self.source.resolve(keys[i : i + SELECTED_PAGE])
                    failed_keys += await self._job_page(job_id, units, seen)
            else:
                async for units in read_ahead(self.source.pages(start, end)):
                    failed_keys += await self._job_page(job_id, units, seen)
        except Exception as exc:
            log.exception("job %d failed", job_id)
            async with self.ctx.sessionmaker() as session, session.begin():
                await jobs.finish(session, job_id, error=f"{type(exc).__name__}: {exc}")
            return Ack()
        if failed_keys:
            await self.ctx.requeue(ENTITY, failed_keys, job_id)
        async with self.ctx.sessionmaker() as session, session.begin():
            await jobs.finish(session, job_id, watermark=began)
        log.info("job %d finished (%d records handed to the retry path)", job_id, len(failed_keys))
        return Ack()

    async def _job_page(self, job_id: int, units: Sequence[Unit], seen: set[str]) -> list[str]:
        outcomes, write_backs, _ = await self._sync(units, job_id)
        outcomes = [o for o in outcomes if o.key not in seen]
        seen.update(o.key for o in outcomes)
        async with self.ctx.sessionmaker() as session, session.begin():
            await syncrecords.save(session, ENTITY, outcomes, job_id=job_id)
            await syncrecords.count_into_job(session, job_id, outcomes)
            await jobs.add_found(session, job_id, len(outcomes))
        await self._queue_write_backs(write_backs, job_id)
        return [o.key for o in outcomes if o.status is SyncStatus.FAILED]
