from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge
from tests.support.processes import free_port, service

TOKEN = "test-api-token-1234"
SECRET = "test-webhook-secret-5678"


@dataclass
class Ingress:
    url: str
    env: dict[str, str]
    settings: Settings

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def ingress_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The ingress's settings for the test database and broker; `extra` adds or overrides some."""
    return {
        "DATABASE_URL": settings.database_url_plain,
        "AMQP_PREFIX": settings.amqp_prefix,
        "INGRESS_PORT": str(port),
        "API_TOKEN": TOKEN,
        "WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


# Per module, not per session: a running ingress relays every outbox row of the shared test database,
# so one left running would take rows that later modules (the scheduler's) look for.
@pytest.fixture(scope="module")
def ingress_process(settings: Settings, sessionmaker) -> Iterator[Ingress]:
    port = free_port()
    env = ingress_env(settings, port)
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env=env):
        yield Ingress(url, env, settings)


@pytest_asyncio.fixture(loop_scope="session")
async def ingress(ingress_process: Ingress, clean_db) -> Ingress:
    settings = ingress_process.settings
    await purge(settings.amqp_url_plain, Topology(settings.amqp_prefix).queue_names())
    return ingress_process
