"""One Rithum sandbox process (HTTP + FTP) for these tests, reset before each test, and clients for it."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from shared.requestlog import RequestLog
from shared.rithum.client import RithumClient
from shared.rithum.ftp import FeedUploader
from shared.settings import Settings
from tests.support.processes import free_port, service


@dataclass(frozen=True)
class SandboxAddress:
    url: str
    ftp_port: int


@pytest.fixture(scope="session")
def rithum_sandbox() -> Iterator[SandboxAddress]:
    port, ftp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["services.sandbox.rithum", "--port", str(port), "--ftp-port", str(ftp_port), "--feed-delay", "0.2"]
    with service(args, f"{url}/_sandbox/health"):
        yield SandboxAddress(url, ftp_port)


class Admin:
    """The sandbox's `/_sandbox` control API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"{url}/_sandbox", timeout=60)

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = await self.http.request(method, path, json=body, params=params or None)
        assert response.status_code < 400, response.text
        return response.json() if response.content else None

    async def faults(self, **values: Any) -> dict[str, Any]:
        return await self.call("PATCH", "/faults", values)

    async def config(self, **values: Any) -> dict[str, Any]:
        return await self.call("PATCH", "/config", values)

    async def stats(self) -> dict[str, Any]:
        return await self.call("GET", "/stats")

    async def seed_products(self, count: int, prefix: str = "SEED-") -> dict[str, Any]:
        return await self.call("POST", "/products/seed", {"count": count, "prefix": prefix})

    async def seed_orders(self, count: int, seed: int = 7) -> list[int]:
        return (await self.call("POST", "/orders/seed", {"count": count, "seed": seed}))["ids"]

    async def product(self, sku: str) -> dict[str, Any] | None:
        found = (await self.call("GET", "/products", sku=sku))["value"]
        return found[0] if found else None

    async def feed(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """The summary of processed feed file `name` (Rithum's Upload/Download Status), once there."""
        deadline = time.monotonic() + timeout
        while True:
            found = [f for f in await self.call("GET", "/feeds") if f["file"].endswith("/" + name)]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"feed {name} was not processed within {timeout}s"
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="session")
async def admin(rithum_sandbox: SandboxAddress) -> AsyncIterator[Admin]:
    """Admin client; the sandbox is reset first, so every test starts empty with default limits."""
    admin = Admin(rithum_sandbox.url)
    await admin.call("POST", "/reset")
    yield admin
    await admin.http.aclose()


@pytest.fixture
def rithum_settings(rithum_sandbox: SandboxAddress) -> Settings:
    return Settings(
        rithum_api_url=rithum_sandbox.url,
        rithum_ftp_url=f"ftp://sandbox:sandbox@127.0.0.1:{rithum_sandbox.ftp_port}",
        rithum_feed_poll_seconds=0.1,
        rithum_feed_result_timeout=30,
    )


@pytest.fixture
def request_log(rithum_settings: Settings) -> RequestLog:
    return RequestLog.memory(secrets=rithum_settings.secret_values())


@pytest_asyncio.fixture(loop_scope="session")
async def client(admin: Admin, rithum_settings: Settings, request_log: RequestLog) -> AsyncIterator[RithumClient]:
    client = RithumClient.from_settings(rithum_settings, request_log)
    yield client
    await client.aclose()


@pytest.fixture
def uploader(admin: Admin, rithum_settings: Settings, request_log: RequestLog) -> FeedUploader:
    return FeedUploader.from_settings(rithum_settings, request_log)


@pytest_asyncio.fixture(loop_scope="session")
async def api(admin: Admin, rithum_sandbox: SandboxAddress) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP against `/v1` with a valid token, for checking the sandbox's own answers."""
    basic = base64.b64encode(b"sandbox-app:sandbox-secret").decode()
    async with httpx.AsyncClient(base_url=rithum_sandbox.url, timeout=30) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "sandbox-refresh"},
            headers={"Authorization": f"Basic {basic}"},
        )
        http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield http
