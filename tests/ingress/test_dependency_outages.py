"""The ingress while PostgreSQL, RabbitMQ or both are away: webhooks are 202 while either can take them, 503
only when neither can; `/readyz` stays ready while either can; `/healthz/dependencies` names what is down.

Each outage is the ingress's alone: it reaches both through TCP proxies the test closes (tests/ingress/proxy.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from shared.settings import Settings
from shared.siteconfig import DEFAULT_QUERY_MAP
from tests.conftest import TEST_DATABASE_URL
from tests.ingress.conftest import SECRET, Ingress, ingress_env
from tests.ingress.proxy import TcpProxy
from tests.ingress.test_webhooks import notification
from tests.support.broker import drain, purge
from tests.support.processes import free_port, service

BURST = 400
SENDERS = 40
OWN_QUERY = "HardenedQuery"  # configured at run time: only the last-known configuration knows it


@dataclass
class Proxied:
    ingress: Ingress
    database: TcpProxy
    broker: TcpProxy


@pytest.fixture(scope="module")
def proxied(settings: Settings, sessionmaker) -> Iterator[Proxied]:
    db = make_url(TEST_DATABASE_URL)
    with (
        TcpProxy.running(db.host or "127.0.0.1", db.port or 5432) as database,
        TcpProxy.running("127.0.0.1", 5672) as broker,
    ):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = ingress_env(
            settings,
            port,
            DATABASE_URL=database.url(TEST_DATABASE_URL),
            AMQP_URL=broker.url(settings.amqp_url_plain),
        )
        with service(["services.ingress"], f"{url}/readyz", env=env):
            yield Proxied(Ingress(url, env, settings), database, broker)


def send(ingress: Ingress, key: str, query: str = "RithumProducts") -> httpx.Response:
    body = notification(inserted=[{"InventoryID": key}], query=query)
    return httpx.post(f"{ingress.url}/webhooks/acumatica", json=body, headers={"Authorization": SECRET}, timeout=30)


def health(ingress: Ingress, path: str) -> httpx.Response:
    return httpx.get(f"{ingress.url}{path}", timeout=30)


def wait_until(check, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def test_webhooks_are_accepted_while_either_dependency_is_up(proxied: Proxied, clean_db) -> None:
    ingress, settings = proxied.ingress, proxied.ingress.settings
    queue = Topology(settings.amqp_prefix).queue("product", "records")
    await purge(settings.amqp_url_plain, [queue])
    with ingress.client() as api:
        query_map = {**DEFAULT_QUERY_MAP, OWN_QUERY: "product"}
        assert api.put("/api/v1/config", json={"query_map": query_map}).status_code == 200
    wait_until(lambda: send(ingress, "BEFORE", OWN_QUERY).status_code == 202, what="the new query map")
    accepted = {"BEFORE"}

    # PostgreSQL down, RabbitMQ up: every webhook is published, with the configuration read last.
    proxied.database.down()
    ready = health(ingress, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True and ready.json()["broker"] == "ok"
    assert ready.json()["database"].startswith("unavailable")
    dependencies = health(ingress, "/healthz/dependencies")
    assert (dependencies.status_code, dependencies.json()["degraded"]) == (503, ["database"])
    keys = [f"DBDOWN{i:04d}" for i in range(BURST)]
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(lambda k: send(ingress, k, OWN_QUERY if k.endswith("1") else "RithumProducts"), keys))
    statuses = sorted({a.status_code for a in answers})
    assert statuses == [202], [a.text for a in answers if a.status_code != 202][:3]
    assert not any(a.json()["queued_in_outbox"] for a in answers)
    accepted |= set(keys)
    with ingress.client() as api:
        jobs = api.get("/api/v1/jobs")
    assert (jobs.status_code, jobs.json()) == (503, {"error": "database unavailable; retry later"})

    # RabbitMQ down, PostgreSQL up: webhooks go to the outbox, still 202, and the ingress stays ready.
    proxied.database.up()
    proxied.broker.down()
    wait_until(lambda: health(ingress, "/healthz/dependencies").json()["degraded"] == ["broker"], what="the database")
    assert health(ingress, "/readyz").status_code == 200
    held = send(ingress, "BROKERDOWN")
    assert held.status_code == 202 and held.json()["queued_in_outbox"] is True, held.text
    accepted.add("BROKERDOWN")

    # Both down: nothing can keep the message, so 503 and Acumatica resends; not ready either.
    proxied.database.down()
    assert send(ingress, "BOTHDOWN").status_code == 503
    not_ready = health(ingress, "/readyz")
    assert (not_ready.status_code, not_ready.json()["ready"]) == (503, False)
    assert set(not_ready.json()["degraded"]) == {"broker", "database"}

    proxied.database.up()
    proxied.broker.up()
    wait_until(lambda: health(ingress, "/healthz/dependencies").status_code == 200, timeout=30, what="recovery")
    received: set[str] = set()
    deadline = time.monotonic() + 30
    while not accepted <= received and time.monotonic() < deadline:
        for message in await drain(settings.amqp_url_plain, queue, idle=1.0, timeout=5.0):
            received.add(Envelope.from_bytes(message.body).key or "")
    assert accepted <= received, f"{len(accepted - received)} accepted records never arrived"
    assert "BOTHDOWN" not in received


async def test_built_in_defaults_serve_when_the_configuration_was_never_read(settings: Settings, sessionmaker) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    nowhere = make_url(TEST_DATABASE_URL).set(host="127.0.0.1", port=free_port()).render_as_string(False)
    env = ingress_env(settings, port, DATABASE_URL=nowhere)
    with service(["services.ingress"], f"{url}/healthz", env=env):
        ingress = Ingress(url, env, settings)
        ready = health(ingress, "/readyz").json()
        assert ready["ready"] is True and ready["degraded"] == ["database"]
        assert send(ingress, f"NEVERREAD-{uuid.uuid4().hex[:6]}").status_code == 202
        unknown = send(ingress, "NEVERREAD-X", OWN_QUERY)
        assert unknown.status_code == 422 and "unknown Query" in unknown.json()["error"]
        with ingress.client() as api:
            assert api.get("/api/v1/config").status_code == 503
