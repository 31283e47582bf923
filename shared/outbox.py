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

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import OutboxMessage
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher, PublishError

log = logging.getLogger("connector.outbox")


async def add(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Stage envelopes in the caller's transaction; duplicates by message_id are kept once."""
    if not envelopes:
        return
    rows = [{"message_id": e.message_id, "envelope": e.model_dump(mode="json")} for e in envelopes]
    await session.execute(pg_insert(OutboxMessage).on_conflict_do_nothing(index_elements=["message_id"]), rows)


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        batch_size: int = 200,
        interval: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._publisher = publisher
        self._batch_size = batch_size
        self._interval = interval
        self._max_backoff = max_backoff
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
            held_back = update(OutboxMessage).where(OutboxMessage.available_at > now)
            await session.execute(held_back.values(available_at=now))

    async def relay_once(self, message_ids: Sequence[str] | None = None) -> int:
        """Publish due rows (or just `message_ids`); returns how many were published and removed."""
        async with self._sessionmaker() as session, session.begin():
            query = select(OutboxMessage).order_by(OutboxMessage.id).limit(self._batch_size)
            if message_ids is not None:
                query = query.where(OutboxMessage.message_id.in_(message_ids))
            else:
                query = query.where(OutboxMessage.available_at <= datetime.now(UTC))
            rows = (await session.scalars(query.with_for_update(skip_locked=True))).all()
            if not rows:
                return 0
            try:
                await self._publisher.publish_many([Envelope.model_validate(r.envelope) for r in rows])
            except Exception as exc:
                for row in rows:
                    delay = min(self._max_backoff, 2 ** min(row.attempts, 10))
                    await session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == row.id)
                        .values(
                            attempts=row.attempts + 1,
                            last_error=str(exc)[:2000],
                            available_at=datetime.now(UTC) + timedelta(seconds=delay),
                        )
                    )
                log.warning("outbox: %d messages not published yet (%s)", len(rows), exc)
                return 0
            await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in rows])))
            return len(rows)

    async def run(self) -> None:
        while True:
            try:
                if self._broker_back:
                    self._broker_back = False
                    await self._due_now()
                while await self.relay_once() == self._batch_size:
                    pass
            except Exception:
                log.exception("outbox relay pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            self._wake.clear()


async def pending(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


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
