"""Transactional outbox: a message written in the same transaction as the state it announces.

A job row and its "run" message must both exist or neither: the caller adds the envelope to the
outbox inside its transaction, and the relay publishes it (confirmed) after commit. A crash between
commit and publish only delays the message; the relay finds it on its next pass. Rows are claimed
with `FOR UPDATE SKIP LOCKED`, so several relays (ingress, scheduler) can run side by side.
Delivery is at-least-once: a publish whose confirm was lost is sent again, and consumers are
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import aiormq.exceptions
from pydantic import ValidationError
from sqlalchemy import Update, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import OutboxMessage
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher, PublishError, Unroutable

log = logging.getLogger("connector.outbox")


async def add(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Stage envelopes in the caller's transaction; duplicates by message_id are kept once."""
    if not envelopes:
        return
    rows = [{"message_id": e.message_id, "envelope": e.model_dump(mode="json")} for e in envelopes]
    await session.execute(pg_insert(OutboxMessage).on_conflict_do_nothing(index_elements=["message_id"]), rows)


class Failure(NamedTuple):
    reason: str
    blamed: bool  # the row itself caused it: counts towards setting it aside
    fatal: bool = False  # it can never be published: set aside now


def refused(exc: BaseException) -> bool:
    """The broker answered about this very message: returned it as unroutable, or nacked it."""
    return isinstance(exc, Unroutable) or isinstance(exc.__cause__, aiormq.exceptions.DeliveryError)


class OutboxRelay:
    """Publishes outbox rows; a row that keeps failing on its own account is set aside rather than retried forever.

    A message can be poison: one whose header frame exceeds RabbitMQ's frame size makes the broker close
    the connection, failing every publish in flight with it, and the relay used to resend it forever. So
    a row that failed while the broker was reachable (refused by it, or in flight when the connection
    broke) is *suspect* and from then on published alone, where the blame is unambiguous; once it is to
    blame more than `max_failures` times it is set aside (`set_aside_at`, `last_error`) and listed by
    `GET /api/v1/outbox?state=set_aside`. An outage (not connected) or a missing confirm counts against
    no row, and a nack counts only alone or when the broker took other rows of the same pass.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        batch_size: int = 200,
        interval: float = 0.5,
        max_backoff: float = 60.0,
        max_failures: int = 3,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._publisher = publisher
        self._batch_size = batch_size
        self._interval = interval
        self._max_backoff = max_backoff
        self._max_failures = max_failures
        self._wake = asyncio.Event()
        self._broker_back = False

    def wake(self) -> None:
        """Ask for a pass now (after a commit that added rows), instead of at the next tick."""
        self._wake.set()

    def broker_back(self) -> None:
        """The broker is reachable again: rows that backed off during the outage are due now, not up to
        `max_backoff` seconds later (the publisher calls this when its connection is restored)."""
        self._broker_back = True
        self._wake.set()

    async def _due_now(self) -> None:
        async with self._sessionmaker() as session, session.begin():
            now = datetime.now(UTC)
            held_back = update(OutboxMessage).where(
                OutboxMessage.available_at > now, OutboxMessage.set_aside_at.is_(None)
            )
            await session.execute(held_back.values(available_at=now))

    async def relay_once(self, message_ids: Sequence[str] | None = None) -> int:
        """Publish due rows (or just `message_ids`); returns how many were published and removed."""
        async with self._sessionmaker() as session, session.begin():
            query = (
                select(OutboxMessage)
                .where(OutboxMessage.set_aside_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(self._batch_size)
            )
            if message_ids is not None:
                query = query.where(OutboxMessage.message_id.in_(message_ids))
            else:
                query = query.where(OutboxMessage.available_at <= datetime.now(UTC))
            rows = (await session.scalars(query.with_for_update(skip_locked=True))).all()
            if not rows:
                return 0
            envelopes: dict[int, Envelope] = {}
            failed: dict[int, Failure] = {}
            for row in rows:
                try:
                    envelopes[row.id] = Envelope.model_validate(row.envelope)
                except ValidationError as exc:
                    failed[row.id] = Failure(f"not a valid envelope: {exc}", blamed=True, fatal=True)
            valid = [r for r in rows if r.id in envelopes]
            failed |= await self._publish_together([r for r in valid if not r.failures], envelopes)
            for row in (r for r in valid if r.failures):
                if failure := await self._publish_alone(envelopes[row.id]):
                    failed[row.id] = failure
            done = [r.id for r in rows if r.id not in failed]
            if done:
                await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(done)))
            for row in rows:
                if row.id in failed:
                    await session.execute(self._after_failure(row, failed[row.id]))
            if failed:
                log.warning("outbox: %d messages not published (%s)", len(failed), next(iter(failed.values())).reason)
            return len(done)

    async def _publish_together(
        self, rows: Sequence[OutboxMessage], envelopes: dict[int, Envelope]
    ) -> dict[int, Failure]:
        if not rows:
            return {}
        connected = self._publisher.is_connected
        results = await asyncio.gather(
            *(self._publisher.publish(envelopes[r.id]) for r in rows), return_exceptions=True
        )
        broke = connected and not self._publisher.is_connected
        others_taken = any(result is None for result in results)
        return {
            row.id: Failure(
                describe(result),
                blamed=broke or (refused(result) and others_taken) or not isinstance(result, PublishError),
            )
            for row, result in zip(rows, results, strict=True)
            if isinstance(result, BaseException)
        }

    async def _publish_alone(self, envelope: Envelope) -> Failure | None:
        if not self._publisher.is_connected:
            return Failure("broker unavailable", blamed=False)
        try:
            await self._publisher.publish(envelope)
        except Exception as exc:
            blamed = refused(exc) or not self._publisher.is_connected or not isinstance(exc, PublishError)
            return Failure(describe(exc), blamed=blamed)
        return None

    def _after_failure(self, row: OutboxMessage, failure: Failure) -> Update:
        failures = row.failures + int(failure.blamed)
        values: dict[str, object] = {"attempts": row.attempts + 1, "failures": failures}
        if failure.fatal or failures > self._max_failures:
            values["set_aside_at"] = datetime.now(UTC)
            values["last_error"] = f"set aside after failure {failures}: {failure.reason}"[:2000]
            log.error("outbox: message %s set aside: %s", row.message_id, values["last_error"])
        else:
            delay = min(self._max_backoff, 2 ** min(row.attempts, 10))
            values["available_at"] = datetime.now(UTC) + timedelta(seconds=delay)
            values["last_error"] = failure.reason[:2000]
        return update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values)

    async def run(self) -> None:
        """Relay until cancelled; while passes fail (the database is down) it logs once and waits up to 5 s."""
        failing = 0
        while True:
            try:
                if self._broker_back:
                    self._broker_back = False
                    await self._due_now()
                while await self.relay_once() == self._batch_size:
                    pass
                failing = 0
            except Exception:
                failing += 1
                if failing == 1:
                    log.exception("outbox relay pass failed; retrying with back-off")
            wait = min(5.0, self._interval * 2**failing) if failing else self._interval
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def pending(session: AsyncSession) -> int:
    """Rows still to be published (set-aside rows are not)."""
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.set_aside_at.is_(None))
    return await session.scalar(query) or 0


async def start_publisher(publisher: Publisher, relay: OutboxRelay) -> None:
    """Connect (retrying while the broker is down: webhooks meanwhile go to the outbox), then relay."""
    publisher.on_reconnect.append(relay.broker_back)
    delay = 1.0
    while not publisher.is_connected:
        try:
            await publisher.start()
        except PublishError as exc:
            log.warning("broker not reachable yet (%s); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
    await relay.run()
