"""Runs an entity's batch jobs, one at a time per process, claimed from the database.

A job can take hours; RabbitMQ closes a channel whose delivery stays unacked past its
`consumer_timeout` (30 minutes by default) and redelivers it, so a job must not hold its run message.
The message only wakes this runner (it is acked at once); the runner claims the job row, says it is
alive every `JOB_HEARTBEAT_SECONDS`, and a job whose process died (no heartbeat for
`JOB_STALE_SECONDS`) is taken over by any replica and resumes from its last checkpoint. A job
cancelled through the API stops at its next heartbeat; a process asked to stop hands its job back
(queued, checkpoint kept) so another process resumes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import jobs
from shared.db.models import JobStatus, SyncJob

log = logging.getLogger("connector.jobs")


class JobRunner:
    def __init__(
        self,
        entity: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        run_job: Callable[[SyncJob], Awaitable[None]],
        *,
        heartbeat: float,
        stale: float,
        poll: float = 5.0,
    ) -> None:
        self.name = f"{entity}-jobs"
        self.entity = entity
        self.sessionmaker = sessionmaker
        self.run_job = run_job
        self.heartbeat = heartbeat
        self.stale = timedelta(seconds=stale)
        self.poll = poll
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._current: asyncio.Task[None] | None = None
        self._current_id: int | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                job = await self._claim()
            except Exception:
                log.exception("%s: could not claim a job; trying again in %.0f s", self.name, self.poll)
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                continue
            await self._run(job)

    async def _claim(self) -> SyncJob | None:
        async with self.sessionmaker() as session, session.begin():
            job = await jobs.claim(session, self.entity, self.stale)
            if job is not None:
                await session.flush()
                session.expunge(job)  # read after the session closes
            return job

    async def _run(self, job: SyncJob) -> None:
        self._current_id = job.id
        self._current = asyncio.create_task(self.run_job(job))
        beat = asyncio.create_task(self._beat(job.id))
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._current
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._current = self._current_id = None

    async def _beat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                async with self.sessionmaker() as session, session.begin():
                    status = await jobs.heartbeat(session, job_id)
            except Exception:
                log.warning("job %d: heartbeat not saved (database unreachable?)", job_id, exc_info=True)
                continue
            if status == JobStatus.CANCELLED and self._current is not None:
                log.info("job %d cancelled; stopping it", job_id)
                self._current.cancel()

    async def stop(self) -> None:
        """Hand the job in hand back (queued, checkpoint kept), so another process resumes it now."""
        self._stop.set()
        self._wake.set()
        job_id, task = self._current_id, self._current
        if task is None or job_id is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(SyncJob)
                .where(SyncJob.id == job_id, SyncJob.status == JobStatus.RUNNING)
                .values(status=JobStatus.QUEUED)
            )
        log.info("job %d handed back for another process to resume", job_id)
