"""A small product topology of its own per test (pid-carrying prefix), removed afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import delete_topology, new_prefix


@pytest.fixture(scope="session")
def amqp_url(settings: Settings) -> str:
    return settings.amqp_url_plain


@pytest.fixture
async def topology(amqp_url: str) -> AsyncIterator[Topology]:
    topo = Topology(new_prefix(), entities=("product",), retry_delays=(1,))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await topo.declare(await connection.channel())
    yield topo
    await asyncio.to_thread(delete_topology, topo.prefix)
