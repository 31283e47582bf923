"""Broker helpers for tests: read what reached a queue, purge and remove a test topology, sweep leftovers."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import aio_pika
import aiormq.exceptions
import httpx
import psutil
from aio_pika.abc import AbstractIncomingMessage

MANAGEMENT = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")
PID_PREFIX = re.compile(r"^t(\d+)x[0-9a-f]+$")
"""`t<pid>x<hex>`, what `new_prefix` makes: the pid of the test session that owns the topology."""
UNATTRIBUTED_PREFIX = re.compile(r"^(t[0-9a-f]{8,10}|test-[0-9a-f]{10})$")
"""Test prefixes that carry no pid: older sessions' `t<hex>`, and `test-<hex>` of tests/messaging."""


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


def new_prefix() -> str:
    """A topology prefix carrying this process's pid, so a later session can tell a leftover from a live run."""
    return f"t{os.getpid()}x{uuid.uuid4().hex[:6]}"


def stale_prefixes(prefixes: Iterable[str], *, alive: Callable[[int], bool], others_running: bool) -> set[str]:
    """Which test prefixes belong to no live session.

    A `t<pid>x…` prefix is stale when its pid is gone (a reused pid only keeps a leftover longer). A prefix
    without a pid is stale only when no other pytest runs on this machine, as it could be that run's.
    Anything else (`connector`, a developer's own prefix) is never touched.
    """
    stale = set()
    for prefix in prefixes:
        if match := PID_PREFIX.match(prefix):
            if not alive(int(match[1])):
                stale.add(prefix)
        elif UNATTRIBUTED_PREFIX.match(prefix) and not others_running:
            stale.add(prefix)
    return stale


def other_pytest_running() -> bool:
    """Whether a pytest process other than this one, its ancestors and its children runs on this machine."""
    me = psutil.Process()
    mine = {me.pid} | {p.pid for p in me.parents()} | {p.pid for p in me.children(recursive=True)}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid not in mine and any("pytest" in arg for arg in process.info["cmdline"] or ()):
            return True
    return False


def sweep_stale_topologies(amqp_url: str, *, unattributed: bool = True) -> list[str]:
    """Delete the queues and exchanges of test sessions that are gone; returns the prefixes removed.

    Names are listed before liveness is checked, so a session that starts meanwhile cannot lose queues
    it creates after the listing, and one that was alive at the listing is seen alive by the check.
    `unattributed=False` leaves pid-less prefixes alone (for calls in the middle of a session, whose own
    tests/messaging topologies carry no pid).
    """
    params = {"columns": "name"}
    queue_names = [q["name"] for q in httpx.get(f"{MANAGEMENT}/queues/%2F", auth=AUTH, params=params).json()]
    exchange_names = [e["name"] for e in httpx.get(f"{MANAGEMENT}/exchanges/%2F", auth=AUTH, params=params).json()]
    prefixes = {name.partition(".")[0] for name in [*queue_names, *exchange_names] if "." in name}
    stale = stale_prefixes(prefixes, alive=psutil.pid_exists, others_running=not unattributed or other_pytest_running())
    if stale:
        queues_to_go = [n for n in queue_names if n.partition(".")[0] in stale]
        exchanges_to_go = [n for n in exchange_names if n.partition(".")[0] in stale]
        asyncio.run(_delete(amqp_url, queues_to_go, exchanges_to_go))
    return sorted(stale)


async def _delete(amqp_url: str, queue_names: list[str], exchange_names: list[str]) -> None:
    """Over AMQP: about 5 ms a quorum queue, where the management API takes about 40."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        raw = await (await connection.channel()).get_underlay_channel()
        for name, delete in [(q, "queue") for q in queue_names] + [(e, "exchange") for e in exchange_names]:
            try:
                await (raw.queue_delete(name) if delete == "queue" else raw.exchange_delete(name))
            except aiormq.exceptions.ChannelNotFoundEntity:  # gone meanwhile; the error closed the channel
                raw = await (await connection.channel()).get_underlay_channel()
