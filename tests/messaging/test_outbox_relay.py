"""The outbox relay against the real broker and database: rows held back by an outage leave as soon as
the publisher's connection is restored, not when their back-off runs out.

Stops the RabbitMQ application (`rabbitmqctl stop_app`) for a moment, like tests/ingress/test_outage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from shared import outbox
from shared.db.models import OutboxMessage
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from tests.messaging.helpers import envelope, eventually
from tests.support.broker import broker_stopped, drain

BACK_OFF = timedelta(minutes=10)  # far beyond the test's wait: only the reconnect can release the row


@pytest.mark.timeout(120)
async def test_rows_held_back_by_an_outage_leave_once_the_broker_is_back(
    amqp_url: str, topology: Topology, clean_db
) -> None:
    publisher = Publisher(amqp_url, topology, name="outbox-relay-test", confirm_timeout=2.0)
    relay = outbox.OutboxRelay(clean_db, publisher, interval=0.2)
    relaying = asyncio.create_task(outbox.start_publisher(publisher, relay))
    try:
        await eventually(lambda: publisher.is_connected, what="the publisher to connect")
        # As a webhook accepted during an outage leaves it: in the outbox, backed off after failed tries.
        held = envelope("HELD-1")
        async with clean_db() as session, session.begin():
            await outbox.add(session, [held])
            await session.execute(update(OutboxMessage).values(attempts=6, available_at=datetime.now(UTC) + BACK_OFF))
        await asyncio.to_thread(_outage)
        # Reconnecting takes the robust connection's interval (5 s); the back-off alone would hold it 10 min.
        await eventually(lambda: _empty(clean_db), timeout=30, what="the held-back row to be relayed")
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await publisher.close()

    [message] = await drain(amqp_url, topology.queue("product", "records"), expect=1)
    assert Envelope.from_bytes(message.body).message_id == held.message_id


def _outage() -> None:
    with broker_stopped():
        time.sleep(1.0)


async def _empty(sessionmaker) -> bool:
    async with sessionmaker() as session:
        return not await session.scalar(select(func.count()).select_from(OutboxMessage))
