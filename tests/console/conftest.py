"""The console's tests: an ingress process of their own (queue figures, sessions and CSRF), and the whole
stack with the product consumer for the browser tests (test_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge
from tests.support.processes import free_port, service

TOKEN = "console-test-token-0123"
SECRET = "console-test-webhook-secret"


@dataclass
class Ingress:
    url: str
    settings: Settings

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def browser(self) -> httpx.Client:
        """A client with no session yet; redirects are not followed, so tests see them."""
        return httpx.Client(base_url=self.url, timeout=30)

    def signed_in(self) -> tuple[httpx.Client, str]:
        """A client holding a console session, and the CSRF token of its forms."""
        client = self.browser()
        response = client.post("/console/login", data={"token": TOKEN, "next": "/console/settings"})
        assert response.status_code == 303, response.text
        page = client.get("/console/settings")
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match
        return client, match.group(1)


@pytest.fixture(scope="module")
def ingress_process(request: pytest.FixtureRequest, settings: Settings, sessionmaker) -> Iterator[Ingress]:
    """A module may add to the ingress's environment with an `INGRESS_ENV` dict of its own."""
    port = free_port()
    env = {
        "DATABASE_URL": settings.database_url_plain,
        "AMQP_PREFIX": settings.amqp_prefix,
        "INGRESS_PORT": str(port),
        "API_TOKEN": TOKEN,
        "WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        **getattr(request.module, "INGRESS_ENV", {}),
    }
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env=env):
        yield Ingress(url, settings)


@pytest_asyncio.fixture(loop_scope="session")
async def ingress(ingress_process: Ingress, clean_db) -> Ingress:
    settings = ingress_process.settings
    await purge(settings.amqp_url_plain, Topology(settings.amqp_prefix).queue_names())
    return ingress_process
