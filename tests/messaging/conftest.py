"""Fixtures for messaging tests against the real RabbitMQ: a unique topology per test, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel

from shared.messaging.topology import Topology
from shared.settings import get_settings


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return get_settings().amqp_url_plain


@pytest.fixture(scope="session")
async def management(amqp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    parts = urlsplit(amqp_url)
    auth = (parts.username or "guest", parts.password or "guest")
    async with httpx.AsyncClient(base_url=get_settings().rabbitmq_management_url, auth=auth, timeout=10) as client:
        yield client


@pytest.fixture
async def topology(management: httpx.AsyncClient) -> AsyncIterator[Topology]:
    topo = Topology(f"test-{uuid.uuid4().hex[:10]}", entities=("product",), retry_delays=(0.2, 0.4))
    yield topo
    # Through the management API, so queues made by any test (extra delay tiers too) all go.
    queues = (await management.get("/api/queues/%2F", params={"columns": "name"})).json()
    for name in [q["name"] for q in queues if q["name"].startswith(f"{topo.prefix}.")]:
        await management.delete(f"/api/queues/%2F/{quote(name, safe='')}")
    await management.delete(f"/api/exchanges/%2F/{quote(topo.events_exchange, safe='')}")


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel for inspecting queues; per test, as the broker-restart test drops connections."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()
