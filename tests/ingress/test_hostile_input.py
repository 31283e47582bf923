"""Inputs that used to answer 500, wedge the broker connection or hold connections open: each is now a 4xx
with a reason, or a closed connection, and a valid notification still goes through afterwards."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.ingress.conftest import SECRET, Ingress, ingress_env
from tests.ingress.test_webhooks import notification
from tests.support.broker import drain, purge
from tests.support.processes import free_port, service

MAX_RECORDS = 50
API_MAX_BYTES = 100_000
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def strict_process(settings: Settings, sessionmaker) -> Iterator[Ingress]:
    port = free_port()
    env = ingress_env(
        settings,
        port,
        WEBHOOK_MAX_RECORDS=str(MAX_RECORDS),
        API_MAX_BYTES=str(API_MAX_BYTES),
        INGRESS_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        INGRESS_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env=env):
        yield Ingress(url, env, settings)


@pytest.fixture
async def strict(strict_process: Ingress, clean_db) -> Ingress:
    settings = strict_process.settings
    await purge(settings.amqp_url_plain, [Topology(settings.amqp_prefix).queue("product", "records")])
    return strict_process


def raw_json(value: Any) -> bytes:
    """As a hostile client writes it: escapes for lone surrogates, NaN allowed."""
    return json.dumps(value, ensure_ascii=True).encode()


def push(ingress: Ingress, body: bytes, secret: str | None = SECRET) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Authorization": secret} if secret else {})}
    return httpx.post(f"{ingress.url}/webhooks/acumatica", content=body, headers=headers, timeout=30)


def nested(depth: int) -> bytes:
    return b'{"Query": "RithumProducts", "Id": "deep", "Inserted": [' + b"[" * depth + b"]" * depth + b"]}"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (nested(5000), 422, "nested deeper"),
        (nested(40), 422, "nested deeper"),
        (raw_json(notification(inserted=[{"InventoryID": "A\ud800"}])), 422, "lone surrogate"),
        (raw_json(notification(inserted=[{"InventoryID": "A", "Description": "\udfff"}])), 422, "lone surrogate"),
        (raw_json(notification(inserted=[{"InventoryID": "A\x00B"}])), 422, "NUL"),
        (raw_json(notification(inserted=[{"InventoryID": "A\tB"}])), 422, "control character"),
        (raw_json(notification(inserted=[{"InventoryID": "K" * 300_000}])), 422, "at most 128"),
        (raw_json(notification(inserted=[{"InventoryID": "A"}], notification_id="I" * 256)), 422, "255 bytes"),
        (raw_json(notification(inserted=[{"InventoryID": "A"}], notification_id="é" * 128)), 422, "255 bytes"),
        (raw_json(notification(inserted=[{"InventoryID": "A", "Qty": float("nan")}])), 422, "NaN"),
        (raw_json({**notification(inserted=[{"InventoryID": "A"}]), "TimeStamp": 10**30}), 422, "64 bits"),
        (
            raw_json(notification(inserted=[{"InventoryID": "A"}])).replace(b"}", b', "N": 1' + b"0" * 5000 + b"}", 1),
            422,
            "64 bits",
        ),
        (b'{"Query": "RithumProducts", "Id": "x", "Inserted": [{"InventoryID": "\xff"}]}', 422, "not valid JSON"),
        (raw_json(notification(inserted=[{"InventoryID": f"R{i}"} for i in range(51)])), 413, "WEBHOOK_MAX_RECORDS"),
    ],
)
async def test_hostile_notifications_are_refused_with_a_reason(
    strict: Ingress, body: bytes, status: int, fragment: str
) -> None:
    response = push(strict, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert push(strict, body, secret=None).status_code == 401  # and nothing is read before the secret


async def test_the_broker_connection_survives_and_the_next_notification_goes_through(strict: Ingress) -> None:
    assert push(strict, raw_json(notification(inserted=[{"InventoryID": "K" * 300_000}]))).status_code == 422
    most = notification(
        inserted=[{"InventoryID": f"M{i}"} for i in range(MAX_RECORDS)], deleted=[{"InventoryID": "M0"}]
    )
    response = push(strict, raw_json(most))
    assert response.status_code == 202 and response.json()["queued_in_outbox"] is False, response.text
    queue = Topology(strict.settings.amqp_prefix).queue("product", "records")
    messages = await drain(strict.settings.amqp_url_plain, queue, expect=MAX_RECORDS)
    assert sorted(Envelope.from_bytes(m.body).key or "" for m in messages) == sorted(f"M{i}" for i in range(50))


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", f"/api/v1/jobs/{2**63}", None, None),
        ("GET", "/api/v1/jobs/0", None, None),
        ("GET", f"/api/v1/schedules/{2**31}", None, None),
        ("DELETE", f"/api/v1/schedules/{-(2**40)}", None, None),
        ("GET", "/api/v1/jobs", {"status": "a\x00b"}, None),
        ("GET", "/api/v1/jobs", {"offset": str(2**64)}, None),
        ("GET", "/api/v1/request-logs", {"job_id": str(2**63)}, None),
        ("GET", "/api/v1/request-logs", {"status": str(2**31)}, None),
        ("GET", "/api/v1/request-logs", {"record_key": "\x00"}, None),
        ("GET", "/api/v1/entities/product/records", {"source": "connector", "status": "\x00"}, None),
        ("PUT", "/api/v1/mappings/item_class", None, [{"source": "A\x00", "target": "B"}]),
        ("PUT", "/api/v1/mappings/item_class", None, [{"source": "A\ud800", "target": "B"}]),
        ("PUT", "/api/v1/config", None, {"feed_threshold": 2**40}),
        ("PUT", "/api/v1/config", None, {"retry_delays": [float("nan")]}),
        ("PUT", "/api/v1/config", None, {"options": {"product": {"on_unlist": "\x00"}}}),
        ("POST", "/api/v1/sync/product", None, b'{"mode": "full", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("POST", "/api/v1/entities/product/records/process", None, {"keys": ["A\x00"]}),
    ],
)
def test_hostile_api_requests_are_422(
    strict: Ingress, method: str, path: str, params: dict[str, str] | None, body: Any
) -> None:
    content = body if isinstance(body, bytes | None) else raw_json(body)
    with strict.client() as api:
        response = api.request(method, path, params=params, content=content)
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_api_bodies_are_capped_and_the_token_is_checked_before_reading_them(strict: Ingress) -> None:
    big = raw_json({"keys": ["K" * 100] * 2000})
    with strict.client() as api:
        response = api.post("/api/v1/entities/product/records/process", content=big)
        assert (response.status_code, response.json()) == (413, {"error": "request body larger than 100000 bytes"})
    with strict.client(token="wrong") as api:
        assert api.post("/api/v1/sync/product", content=big).status_code == 401


# Connections: uvicorn plus services/ingress/server.py -----------------------------------------------


def connect(ingress: Ingress) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(ingress.url.rsplit(":", 1)[1])), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_half_sent_requests_are_cut_off_and_do_not_hold_the_ingress(strict: Ingress) -> None:
    idle = [connect(strict) for _ in range(20)]
    started = time.monotonic()
    half = [connect(strict) for _ in range(100)]
    for sock in half:
        sock.sendall(b"POST /webhooks/acumatica HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
    assert push(strict, raw_json(notification(inserted=[{"InventoryID": "MEANWHILE"}]))).status_code == 202
    answers = {read_all(sock).split(b"\r\n", 1)[0] for sock in half}
    assert answers == {b"HTTP/1.1 408 Request Timeout"}
    assert all(read_all(sock) == b"" for sock in idle)  # a connection that never sends is closed too
    assert time.monotonic() - started < HEADER_TIMEOUT + 3
    for sock in half + idle:
        sock.close()


def test_oversized_headers_are_431(strict: Ingress) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
        assert read_all(sock).startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("secret", [None, SECRET])
def test_a_body_trickling_in_is_cut_off(strict: Ingress, secret: str | None) -> None:
    """Without the secret the answer (401) comes at once and the rest of the body gets BODY_TIMEOUT to
    arrive; with it, the body must be complete within BODY_TIMEOUT (408)."""
    head = "POST /webhooks/acumatica HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
    head += f"Authorization: {secret}\r\n" if secret else ""
    with connect(strict) as sock:
        sock.sendall(head.encode() + b"\r\n{")
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(100):
                time.sleep(0.1)
                sock.sendall(b" ")
        assert time.monotonic() - started < BODY_TIMEOUT + 2
        expected = b"HTTP/1.1 401 " if secret is None else b"HTTP/1.1 408 "
        assert sock.recv(65536).startswith(expected)
