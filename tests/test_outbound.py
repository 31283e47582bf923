"""The outbound layer against real local HTTP servers the tests make fail: the circuit breaker per target,
and credentials that never leave the configured host (Rithum nextLink, Acumatica 202 Location)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY

from shared.acumatica.client import AcumaticaClient
from shared.acumatica.errors import AcumaticaError, AcumaticaTargetUnavailable
from shared.outbound import CircuitBreaker, ForeignURLError, OutboundHTTP, TargetUnavailable
from shared.rithum.client import RithumClient
from shared.rithum.errors import RithumError, RithumTargetUnavailable, RithumUnavailable
from shared.settings import Settings
from tests.support.processes import free_port

Answer = tuple[int, dict[str, str], Any]


class FakeTarget(ThreadingHTTPServer):
    """A local HTTP server: `answers` by (method, path), else `status`; every request is noted in `hits`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.status = 200
        self.delay = 0.0
        self.answers: dict[tuple[str, str], Answer] = {}
        self.hits: list[tuple[str, str, str | None]] = []  # method, path, Authorization


class _Handler(BaseHTTPRequestHandler):
    server: FakeTarget

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        self.server.hits.append((self.command, path, self.headers.get("Authorization")))
        time.sleep(self.server.delay)
        status, headers, body = self.server.answers.get((self.command, path), (self.server.status, {}, {}))
        content = json.dumps(body).encode() if status != 204 else b""
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    yield from _serve()


@pytest.fixture
def elsewhere() -> Iterator[FakeTarget]:
    """A second server, where nothing may ever arrive."""
    yield from _serve()


def _serve() -> Iterator[FakeTarget]:
    server = FakeTarget()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class FakeUnavailable(TargetUnavailable):
    def __init__(self, target: str, until: datetime) -> None:
        super().__init__(f"{target} down until {until}")
        self.target, self.until = target, until


def circuit_open(target: str) -> float | None:
    return REGISTRY.get_sample_value("connector_target_circuit_open", {"target": target})


def outbound(url: str, breaker: CircuitBreaker, **options: Any) -> OutboundHTTP:
    return OutboundHTTP(system=breaker.target, base_url=url, breaker=breaker, **options)


# Circuit breaker -----------------------------------------------------------------------------------


async def test_the_circuit_opens_fails_fast_and_closes_after_one_trial_the_others_wait_for(
    target: FakeTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "connector.outbound")
    breaker = CircuitBreaker("fake-a", FakeUnavailable, failures=3, window=5, cool_down=0.5, max_cool_down=0.8)
    http = outbound(target.url, breaker, max_attempts=1)
    target.status = 503
    for _ in range(3):
        assert (await http.request("GET", "/x")).status_code == 503
    assert circuit_open("fake-a") == 1
    started = time.monotonic()
    with pytest.raises(FakeUnavailable) as refused:
        await http.request("GET", "/x")
    assert time.monotonic() - started < 0.1 and len(target.hits) == 3  # not sent
    assert refused.value.target == "fake-a"

    # Cool-down over: one trial, which fails and opens it for longer (capped); a call made meanwhile
    # waits for the trial, then fails fast with it.
    await asyncio.sleep(0.55)
    target.delay = 0.3
    trial = asyncio.create_task(http.request("GET", "/x"))
    await asyncio.sleep(0.1)
    with pytest.raises(FakeUnavailable):
        await http.request("GET", "/x")
    assert (await trial).status_code == 503
    assert len(target.hits) == 4
    with pytest.raises(FakeUnavailable):
        await http.request("GET", "/x")

    # The next trial succeeds: calls made meanwhile wait for it and then go through; the circuit is closed.
    target.status = 200
    await asyncio.sleep(0.85)
    trial = asyncio.create_task(http.request("GET", "/x"))
    await asyncio.sleep(0.1)
    waiting = [asyncio.create_task(http.request("GET", "/x")) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert len(target.hits) == 5  # only the trial was sent so far
    assert (await trial).status_code == 200
    assert [(await call).status_code for call in waiting] == [200] * 3
    assert circuit_open("fake-a") == 0
    assert len(target.hits) == 8
    messages = [r.getMessage() for r in caplog.records]
    assert sum("circuit open" in m for m in messages) == 1  # logged once, though it opened twice
    assert sum("circuit closed" in m for m in messages) == 1
    await http.aclose()


async def test_only_consecutive_failures_within_the_window_open_it(target: FakeTarget) -> None:
    breaker = CircuitBreaker("fake-b", FakeUnavailable, failures=3, window=0.5, cool_down=30)
    http = outbound(target.url, breaker, max_attempts=1)

    async def call(status: int) -> None:
        target.status = status
        await http.request("GET", "/x")

    for status in (503, 500, 200, 502, 503):  # a success in between resets the count
        await call(status)
    await asyncio.sleep(0.6)
    await call(503)
    await call(504)  # three and four in a row, but not within 0.5 s
    assert not breaker.is_open
    await call(500)  # the last three are
    assert breaker.is_open and circuit_open("fake-b") == 1
    await http.aclose()


async def test_429_and_4xx_are_answers_not_failures(target: FakeTarget) -> None:
    breaker = CircuitBreaker("fake-c", FakeUnavailable, failures=2, window=5)
    http = outbound(target.url, breaker, max_attempts=1)
    for status in (429, 404, 400, 429):
        target.status = status
        await http.request("GET", "/x")
    assert not breaker.is_open
    await http.aclose()


async def test_transport_failures_open_it_within_one_call_instead_of_spending_every_retry() -> None:
    breaker = CircuitBreaker("fake-d", FakeUnavailable, failures=3, window=5)
    http = outbound(f"http://127.0.0.1:{free_port()}", breaker, max_attempts=10, backoff_base=0.01)
    with pytest.raises(FakeUnavailable) as refused:
        await http.request("GET", "/x")
    assert isinstance(refused.value.__cause__, httpx.ConnectError)
    assert breaker.is_open
    await http.aclose()


async def test_the_clients_raise_their_own_unavailable_errors(target: FakeTarget) -> None:
    """What the product pipeline (`except (RithumError, httpx.HTTPError)`) and the write-back (an AcumaticaError
    of status 5xx is transient) already handle."""
    target.status = 503
    target.answers[("POST", "/oauth2/token")] = (200, {}, {"access_token": "t", "expires_in": 3600})
    target.answers[("POST", "/entity/auth/login")] = (204, {}, None)
    settings = Settings(
        rithum_api_url=target.url, acumatica_url=target.url, circuit_failures=2, acumatica_requests_per_minute=0
    )
    rithum = RithumClient.from_settings(settings)
    with pytest.raises(RithumTargetUnavailable) as caught:
        await rithum.get_product(1)
    assert isinstance(caught.value, RithumUnavailable) and caught.value.status == 503
    assert "circuit open after repeated failures of rithum" in str(caught.value)
    assert circuit_open("rithum") == 1

    acumatica = AcumaticaClient(settings)
    with pytest.raises(AcumaticaTargetUnavailable) as refused:
        await acumatica.get("StockItem", "AA")
    assert isinstance(refused.value, AcumaticaError) and refused.value.status == 503
    assert str(refused.value).startswith("Acumatica unavailable: circuit open")
    assert circuit_open("acumatica") == 1
    await rithum.aclose()
    await acumatica.aclose()


# Credentials stay on the configured host ------------------------------------------------------------


@pytest.mark.parametrize(
    "next_link",
    [
        "{elsewhere}/v1/Products?$skip=1",
        "https://127.0.0.1:{port}/v1/Products?$skip=1",
        "http://localhost:{port}/v1/Products?$skip=1",
    ],
    ids=["other port", "other scheme", "other host name"],
)
async def test_rithum_refuses_a_next_link_off_its_host(
    target: FakeTarget, elsewhere: FakeTarget, next_link: str
) -> None:
    link = next_link.format(elsewhere=elsewhere.url, port=target.server_address[1])
    target.answers[("POST", "/oauth2/token")] = (200, {}, {"access_token": "secret-token", "expires_in": 3600})
    target.answers[("GET", "/v1/Products")] = (200, {}, {"value": [{"ID": 1}], "@odata.nextLink": link})
    client = RithumClient.from_settings(Settings(rithum_api_url=target.url))
    seen = []
    with pytest.raises(RithumError, match="refusing to follow nextLink") as refused:
        async for product in client.iterate_products():
            seen.append(product["ID"])
    assert seen == [1]
    assert link in str(refused.value) and target.url in str(refused.value)
    assert [hit[:2] for hit in target.hits] == [("POST", "/oauth2/token"), ("GET", "/v1/Products")]
    assert elsewhere.hits == []
    with pytest.raises(ForeignURLError):  # and no other path of the client can send it there either
        await client.http.request("GET", link, headers={"Authorization": "Bearer secret-token"})
    assert elsewhere.hits == [] and len(target.hits) == 2
    await client.aclose()


async def test_acumatica_polls_a_location_only_on_its_host(target: FakeTarget, elsewhere: FakeTarget) -> None:
    action = "/entity/Default/24.200.001/Shipment/ConfirmShipment"
    target.answers[("POST", "/entity/auth/login")] = (204, {"Set-Cookie": "ASP.NET_SessionId=abc; path=/"}, None)
    target.answers[("POST", action)] = (202, {"Location": "/entity/Default/24.200.001/status/1"}, None)
    target.answers[("GET", "/entity/Default/24.200.001/status/1")] = (204, {}, None)
    client = AcumaticaClient(Settings(acumatica_url=target.url, acumatica_requests_per_minute=0), poll_interval=0.01)
    await client.action("Shipment", "ConfirmShipment", {"ShipmentNbr": "SH1"})  # a Location on its host is polled

    target.answers[("POST", action)] = (202, {"Location": f"{elsewhere.url}/status/1"}, None)
    with pytest.raises(AcumaticaError, match="Location on another host, not polled") as refused:
        await client.action("Shipment", "ConfirmShipment", {"ShipmentNbr": "SH2"})
    assert refused.value.url == f"{elsewhere.url}/status/1"
    assert elsewhere.hits == []
    assert [hit[:2] for hit in target.hits][-1] == ("POST", action)
    await client.aclose()
