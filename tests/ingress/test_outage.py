"""Nothing accepted is lost: webhooks during a broker outage, and a job whose process dies before publishing.

Both tests stop the RabbitMQ application (`rabbitmqctl stop_app`), which takes several seconds;
keep it to these two.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import make_engine, make_sessionmaker
from shared.db.migrate import ensure_database, upgrade
from shared.db.models import OutboxMessage, SyncJob
from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from tests.conftest import TABLES, TEST_DATABASE_URL
from tests.ingress.conftest import SECRET, TOKEN, Ingress
from tests.ingress.test_webhooks import notification
from tests.support.broker import broker_stopped, drain
from tests.support.processes import free_port, service, stop, wait_http

NOTIFICATIONS = 60
STOP_AFTER = 20  # notifications answered before the broker goes down
RESUME_AT = 50  # notifications from here on are sent once the broker is back
SENDERS = 4
PACE_SECONDS = 0.3  # per sender, so the outage sees a stream rather than one burst
DOWN_SECONDS = 3.0
DELIVERY_TIMEOUT = 30.0

Pair = tuple[str, str]  # (notification Id, record key)


class Stream:
    """Sends the notifications from a few threads and stops/starts the broker part-way through.

    The first STOP_AFTER go to a running broker, the next ones while it is down, the last ones
    after it came back (while the outbox relay catches up).
    """

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self.bodies = [
            notification(inserted=[{"InventoryID": f"OUT{i:03d}-A"}, {"InventoryID": f"OUT{i:03d}-B"}])
            for i in range(NOTIFICATIONS)
        ]
        self.next = iter(enumerate(self.bodies))
        self.lock = threading.Lock()
        self.answers: dict[str, httpx.Response] = {}
        self.enough_answered = threading.Event()
        self.broker_down = threading.Event()
        self.broker_up = threading.Event()
        self.back_at = 0.0  # time.monotonic() when the broker was running again

    def sender(self) -> None:
        with httpx.Client(base_url=self.ingress.url, headers={"Authorization": SECRET}, timeout=30) as client:
            while True:
                with self.lock:
                    index, body = next(self.next, (None, None))
                if body is None:
                    return
                if index >= RESUME_AT:
                    self.broker_up.wait(60)
                elif index >= STOP_AFTER:
                    self.broker_down.wait(60)
                response = client.post("/webhooks/acumatica", json=body)
                with self.lock:
                    self.answers[body["Id"]] = response
                    if len(self.answers) >= STOP_AFTER:
                        self.enough_answered.set()
                time.sleep(PACE_SECONDS)

    def broker_outage(self) -> None:
        assert self.enough_answered.wait(60), "the first notifications were not answered"
        with broker_stopped():
            self.broker_down.set()
            time.sleep(DOWN_SECONDS)
        self.back_at = time.monotonic()
        self.broker_up.set()

    def run(self) -> None:
        with ThreadPoolExecutor(SENDERS + 1) as pool:
            futures = [pool.submit(self.sender) for _ in range(SENDERS)]
            futures.append(pool.submit(self.broker_outage))
            for future in futures:
                future.result()  # re-raises a sender's transport error: a request without an answer

    def pairs(self, accepted: bool) -> set[Pair]:
        return {
            (body["Id"], row["InventoryID"])
            for body in self.bodies
            if (self.answers[body["Id"]].status_code == 202) == accepted
            for row in body["Inserted"]
        }


async def shared_ingress_reconnected(ingress: Ingress) -> None:
    """Later tests expect the shared ingress to publish directly again, not through the outbox.

    `/readyz` is 200 while the outbox can take webhooks; `/healthz/dependencies` only once both are up."""
    await asyncio.to_thread(wait_http, f"{ingress.url}/healthz/dependencies", 30.0)
    assert (await asyncio.to_thread(httpx.get, f"{ingress.url}/readyz")).json()["broker"] == "ok"


async def collect(amqp_url: str, queue: str, expected: set[Pair]) -> tuple[dict[str, Pair], int]:
    """Read the queue until every expected pair arrived (or the timeout); (message_id → pair, deliveries)."""
    received: dict[str, Pair] = {}
    deliveries = 0
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not expected <= set(received.values()) and time.monotonic() < deadline:
        for message in await drain(amqp_url, queue, idle=1.0, timeout=5.0):
            envelope = Envelope.from_bytes(message.body)
            received[envelope.message_id] = (envelope.payload["notification_id"], envelope.key)
            deliveries += 1
    return received, deliveries


async def test_webhooks_during_a_broker_outage_are_answered_and_all_delivered(ingress: Ingress) -> None:
    stream = Stream(ingress)
    await asyncio.to_thread(stream.run)

    statuses = [r.status_code for r in stream.answers.values()]
    assert len(statuses) == NOTIFICATIONS
    assert set(statuses) <= {202, 503}, sorted(set(statuses))
    via_outbox = sum(1 for r in stream.answers.values() if r.status_code == 202 and r.json()["queued_in_outbox"])
    assert via_outbox >= 1, "no notification met the outage; the test did not exercise the outbox"

    accepted, refused = stream.pairs(accepted=True), stream.pairs(accepted=False)
    queue = Topology(ingress.settings.amqp_prefix).queue("product", "records")
    received, deliveries = await collect(ingress.settings.amqp_url_plain, queue, accepted)

    pairs = set(received.values())
    assert accepted <= pairs, f"{len(accepted - pairs)} accepted records never arrived"
    assert pairs - accepted <= refused  # a 503 may have published part of its records; the sender retries
    assert len(received) == len(pairs)  # one message_id per record: consumers can dedupe redeliveries
    print(
        f"\n{statuses.count(202)} accepted ({via_outbox} through the outbox), {statuses.count(503)} refused; "
        f"{deliveries} deliveries of {len(received)} distinct messages ({deliveries - len(received)} duplicates), "
        f"all in within {time.monotonic() - stream.back_at:.1f} s of the broker's return"
    )
    await shared_ingress_reconnected(ingress)


# A crash between the job's commit and its publish -------------------------------------------------

CRASH_DATABASE_URL = make_url(TEST_DATABASE_URL).set(database=f"{make_url(TEST_DATABASE_URL).database}_outage")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crash_db() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A database of its own: the shared ingress's outbox relay must not publish this test's job."""
    url = CRASH_DATABASE_URL.render_as_string(hide_password=False)
    await ensure_database(url)
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, pool_size=1)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield sessionmaker
    await engine.dispose()


@pytest.fixture
def crash_env(ingress: Ingress) -> Iterator[dict[str, str]]:
    yield {**ingress.env, "DATABASE_URL": CRASH_DATABASE_URL.render_as_string(hide_password=False)}


def start_full_sync(url: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/sync/product", json={"mode": "full"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


async def test_job_survives_a_crash_between_commit_and_publish(
    ingress: Ingress, crash_db: async_sessionmaker[AsyncSession], crash_env: dict[str, str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env={**crash_env, "INGRESS_PORT": str(port)}) as first:
        with broker_stopped():
            response = start_full_sync(url)
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            async with crash_db() as session:
                staged = (await session.scalars(select(OutboxMessage))).all()
                job = await session.get(SyncJob, job_id)
            assert [row.envelope["payload"]["job_id"] for row in staged] == [job_id]
            assert job is not None and job.status == "queued"
            stop(first, signal.SIGKILL)  # dies with the message only in the outbox

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/healthz", env={**crash_env, "INGRESS_PORT": str(port)}):
        queue = Topology(ingress.settings.amqp_prefix).queue("product", "jobs")
        messages = await drain(ingress.settings.amqp_url_plain, queue, expect=1, timeout=30.0)
        assert [Envelope.from_bytes(m.body).payload for m in messages] == [{"job_id": job_id, "mode": "full"}]

        deadline = time.monotonic() + 5
        async with crash_db() as session:
            while await session.scalar(select(OutboxMessage.id).limit(1)) is not None:
                assert time.monotonic() < deadline, "the outbox row stayed after its message was published"
                await asyncio.sleep(0.1)
    await shared_ingress_reconnected(ingress)
