"""One Acumatica sandbox process for these tests (reset before each test), admin helpers, a push receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import pytest_asyncio

from shared.acumatica.client import AcumaticaClient
from shared.requestlog import RequestLog
from shared.settings import Settings
from tests.support.processes import free_port, service

API = "/entity/Default/24.200.001"


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service(["services.sandbox.acumatica", "--port", str(port)], f"{url}/_sandbox/health"):
        yield url


class Admin:
    """The sandbox's `/_sandbox` control API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"{url}/_sandbox", timeout=30)

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = await self.http.request(method, path, json=body, params=params or None)
        assert response.status_code < 400, response.text
        return response.json() if response.content else None

    async def seed(self, items: int, random_seed: int = 1) -> dict[str, int]:
        return (await self.call("POST", "/seed", {"items": items, "random_seed": random_seed}))["seeded"]

    async def knobs(self, **values: Any) -> dict[str, Any]:
        return await self.call("PATCH", "/faults", values)

    async def records(self, entity: str, **params: Any) -> list[dict[str, Any]]:
        return (await self.call("GET", f"/records/{entity}", **params))["records"]

    async def record(self, entity: str, *key: str) -> dict[str, Any]:
        return await self.call("GET", f"/records/{entity}/{'/'.join(key)}")

    async def change(self, entity: str, keys: list[Any], **body: Any) -> None:
        await self.call("POST", f"/records/{entity}/change", {"keys": keys, **body})

    async def upsert(self, entity: str, *records: dict[str, Any]) -> list[dict[str, Any]]:
        return (await self.call("POST", f"/records/{entity}", {"records": list(records)}))["records"]

    async def push_definition(self, **definition: Any) -> None:
        await self.call("POST", "/push/definitions", definition)

    async def stats(self) -> dict[str, Any]:
        return await self.call("GET", "/stats")


@pytest_asyncio.fixture(loop_scope="session")
async def admin(sandbox_url: str) -> AsyncIterator[Admin]:
    helper = Admin(sandbox_url)
    await helper.call("POST", "/reset")
    yield helper
    await helper.http.aclose()


@pytest.fixture
def acumatica_settings(sandbox_url: str) -> Settings:
    return Settings(
        acumatica_url=sandbox_url,
        acumatica_requests_per_minute=0,
        acumatica_concurrency=8,
        acumatica_max_attempts=5,
        acumatica_client_id="sandbox-client",
        acumatica_client_secret="sandbox-client-secret",
    )


@pytest.fixture
def request_log(acumatica_settings: Settings) -> RequestLog:
    return RequestLog.memory(secrets=acumatica_settings.secret_values())


@pytest_asyncio.fixture(loop_scope="session")
async def client(admin: Admin, acumatica_settings: Settings, request_log: RequestLog) -> AsyncIterator[AcumaticaClient]:
    async with AcumaticaClient(acumatica_settings, request_log=request_log, poll_interval=0.05) as api:
        yield api


@pytest_asyncio.fixture(loop_scope="session")
async def session(admin: Admin, sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client signed in with a cookie session (for sandbox behaviour tests)."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        reply = await http.post("/entity/auth/login", json={"name": "admin", "password": "admin", "tenant": "Company"})
        assert reply.status_code == 204
        yield http


class Receiver:
    """A real HTTP endpoint that records what is POSTed to it; can be told to fail."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.fail:
                    self.send_response(503)
                else:
                    receiver.received.append((dict(self.headers.items()), json.loads(body)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"expected {count} notifications, got {len(self.received)}"
            await asyncio.sleep(0.02)
        return [payload for _headers, payload in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()
