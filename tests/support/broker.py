"""Broker helpers for tests: read what reached a queue, purge and remove a test topology."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

MANAGEMENT = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")


async def drain(
    amqp_url: str, queue: str, *, expect: int | None = None, timeout: float = 10.0, idle: float = 0.5
) -> list[AbstractIncomingMessage]:
    """Take messages off `queue` (acking them) until `expect` arrived, or none came for `idle` seconds."""
    got: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=True)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            message = await q.get(fail=False)
            if message is None:
                if expect is None and time.monotonic() - last > idle:
                    break
                if expect is not None and len(got) >= expect:
                    break
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
            last = time.monotonic()
    finally:
        await connection.close()
    return got


def queues(prefix: str) -> dict[str, dict]:
    response = httpx.get(f"{MANAGEMENT}/queues/%2F", auth=AUTH, params={"columns": "name,messages,consumers"})
    response.raise_for_status()
    return {q["name"]: q for q in response.json() if q["name"].startswith(f"{prefix}.")}


def delete_topology(prefix: str) -> None:
    for name in queues(prefix):
        httpx.delete(f"{MANAGEMENT}/queues/%2F/{name}", auth=AUTH)
    httpx.delete(f"{MANAGEMENT}/exchanges/%2F/{prefix}.events", auth=AUTH)


async def purge(amqp_url: str, names: list[str]) -> None:
    """Empty the named queues over AMQP (the management API takes ~0.1 s a queue)."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        raw = await channel.get_underlay_channel()
        for name in names:
            await raw.queue_purge(name)
    finally:
        await connection.close()


@contextmanager
def broker_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application for the block; always start it again."""
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, capture_output=True)
