"""A message the broker refuses, or that breaks the connection, is set aside instead of retried for ever.

A 300,000-character key once went into a message header; RabbitMQ closed the connection (frame too large)
and the relay resent it for ever, failing every publish in flight with it. The relay's blame rules are
tested with a stand-in publisher (the database is real); the end-to-end case with the real ingress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import aiormq.exceptions
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from shared import outbox
from shared.db.models import OutboxMessage
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import PublishError
from shared.messaging.topology import Topology
from tests.ingress.conftest import Ingress
from tests.ingress.test_webhooks import notification, post
from tests.messaging.helpers import envelope
from tests.support.broker import drain


class StandInPublisher:
    """Publishing POISON closes the connection, as RabbitMQ does over a header frame too large, and every
    publish in flight with it fails; NACK is refused on its own; `nack_all` makes the broker refuse all."""

    def __init__(self) -> None:
        self.connected = True
        self.nack_all = False
        self.published: list[str | None] = []

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def publish(self, env: Envelope) -> None:
        if not self.connected:
            raise PublishError("publisher is not started")
        await asyncio.sleep(0)  # the others of the pass are in flight now too
        if env.key == "POISON":
            self.connected = False
        await asyncio.sleep(0)
        if not self.connected:
            raise PublishError("broker unavailable (ConnectionFrameError, channel closed)")
        if env.key == "NACK" or self.nack_all:
            raise PublishError("broker refused (nack)") from aiormq.exceptions.DeliveryError(None, None)
        self.published.append(env.key)


async def passes(relay: outbox.OutboxRelay, publisher: StandInPublisher, ids: Sequence[str], count: int) -> None:
    """`count` relay passes over `ids` (due or not), the connection restored after each, as the robust one is."""
    for _ in range(count):
        await relay.relay_once(message_ids=ids)
        publisher.connected = True


async def rows(sessionmaker) -> dict[str | None, OutboxMessage]:
    async with sessionmaker() as session:
        return {Envelope.model_validate(r.envelope).key: r for r in await session.scalars(select(OutboxMessage))}


async def stage(sessionmaker, *keys: str) -> list[str]:
    envelopes = [envelope(key) for key in keys]
    async with sessionmaker() as session, session.begin():
        await outbox.add(session, envelopes)
    return [e.message_id for e in envelopes]


async def test_a_message_that_breaks_the_connection_is_set_aside_and_the_others_go(clean_db) -> None:
    publisher = StandInPublisher()
    relay = outbox.OutboxRelay(clean_db, publisher, max_failures=2)  # type: ignore[arg-type]
    ids = await stage(clean_db, "A", "POISON", "B")
    await passes(relay, publisher, ids, 6)

    assert sorted(publisher.published) == ["A", "B"]  # each once: suspects go alone, so blame is clear
    [poison] = (await rows(clean_db)).values()
    assert poison.set_aside_at is not None and poison.failures == 3
    assert "set aside after failure 3" in (poison.last_error or "")
    assert "ConnectionFrameError" in (poison.last_error or "")
    await passes(relay, publisher, ids, 2)
    assert sorted(publisher.published) == ["A", "B"]  # the relay no longer tries it
    async with clean_db() as session:
        assert await outbox.pending(session) == 0


async def test_a_refused_message_is_set_aside_but_a_broker_refusing_everything_blames_no_one(clean_db) -> None:
    publisher = StandInPublisher()
    relay = outbox.OutboxRelay(clean_db, publisher, max_failures=2)  # type: ignore[arg-type]
    ids = await stage(clean_db, "C", "NACK")
    await passes(relay, publisher, ids, 4)
    assert publisher.published == ["C"]
    assert (await rows(clean_db))["NACK"].set_aside_at is not None

    publisher.nack_all = True  # e.g. a full queue: transient, and no message's fault
    ids = await stage(clean_db, "D", "E")
    await passes(relay, publisher, ids, 6)
    left = await rows(clean_db)
    assert (left["D"].set_aside_at, left["D"].failures, left["E"].failures) == (None, 0, 0)
    publisher.nack_all = False
    await passes(relay, publisher, ids, 1)
    assert sorted(publisher.published) == ["C", "D", "E"]


async def test_an_oversized_row_from_before_is_set_aside_listed_and_publishing_goes_on(
    ingress: Ingress, clean_db
) -> None:
    """A row the old ingress stored with a 300,000-character key: the relay cannot even build its message."""
    poison = envelope("X").model_dump(mode="json") | {"message_id": "old-poison", "key": "K" * 300_000}
    good = envelope("AFTER-POISON")
    async with clean_db() as session, session.begin():
        await session.execute(insert(OutboxMessage).values(message_id="old-poison", envelope=poison))
        await outbox.add(session, [good])
        await session.execute(update(OutboxMessage).values(available_at=datetime.now(UTC)))

    with ingress.client() as api:
        deadline = time.monotonic() + 15
        while (listed := api.get("/api/v1/outbox", params={"state": "set_aside"}).json())["total"] == 0:
            assert time.monotonic() < deadline, "the oversized row was not set aside"
            time.sleep(0.2)
        [item] = listed["items"]
        assert (item["message_id"], item["state"], len(item["key"])) == ("old-poison", "set_aside", 200)
        assert "not a valid envelope" in item["last_error"] and "key" in item["last_error"]
        assert api.get("/api/v1/outbox", params={"state": "pending"}).json()["total"] == 0
        assert api.get("/api/v1/outbox", params={"state": "elsewhere"}).status_code == 422
    fresh = post(ingress, notification(inserted=[{"InventoryID": "FRESH"}]))
    assert (fresh.status_code, fresh.json()["queued_in_outbox"]) == (202, False)
    queue = Topology(ingress.settings.amqp_prefix).queue("product", "records")
    keys = {Envelope.from_bytes(m.body).key for m in await drain(ingress.settings.amqp_url_plain, queue, expect=2)}
    assert keys == {"AFTER-POISON", "FRESH"}
