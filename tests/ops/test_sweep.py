"""Topologies left by test sessions that are gone are swept; a live session's are never touched."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aio_pika
import httpx
import psutil

from shared.messaging.topology import Topology
from tests.support.broker import (
    AUTH,
    MANAGEMENT,
    PID_PREFIX,
    delete_topology,
    new_prefix,
    other_pytest_running,
    queues,
    stale_prefixes,
    sweep_stale_topologies,
)


def test_stale_prefixes() -> None:
    alive = {100, os.getpid()}.__contains__
    names = ["t100xab12cd", "t999xab12cd", f"t{os.getpid()}x0f0f0f", "tdeadbeef", "test-0123456789", "connector"]
    assert stale_prefixes(names, alive=alive, others_running=True) == {"t999xab12cd"}
    assert stale_prefixes(names, alive=alive, others_running=False) == {"t999xab12cd", "tdeadbeef", "test-0123456789"}
    match = PID_PREFIX.match(new_prefix())
    assert match and int(match[1]) == os.getpid()


async def declare(amqp_url: str, prefix: str) -> Topology:
    topology = Topology(prefix, entities=("product",), retry_delays=(1,))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await topology.declare(await connection.channel())
    return topology


async def test_sweep_removes_a_dead_sessions_topology_and_keeps_a_live_one(amqp_url: str) -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    pid = child.pid
    await child.wait()
    assert not psutil.pid_exists(pid)
    dead = await declare(amqp_url, f"t{pid}x{os.urandom(3).hex()}")
    live = await declare(amqp_url, new_prefix())
    try:
        assert len(queues(dead.prefix)) == len(dead.queue_names())
        swept = await asyncio.to_thread(sweep_stale_topologies, amqp_url, unattributed=False)
        assert dead.prefix in swept and live.prefix not in swept
        assert queues(dead.prefix) == {}
        gone = httpx.get(f"{MANAGEMENT}/exchanges/%2F/{dead.events_exchange}", auth=AUTH)
        assert gone.status_code == 404
        assert len(queues(live.prefix)) == len(live.queue_names())
    finally:
        await asyncio.to_thread(delete_topology, live.prefix)
        await asyncio.to_thread(delete_topology, dead.prefix)


def test_another_pytest_on_the_machine_is_seen() -> None:
    """A process named like pytest that is neither this session nor its child counts as a live session."""
    started = subprocess.run(
        ["bash", "-c", "bash -c 'exec -a fake-pytest sleep 30' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
    )
    pid = int(started.stdout)
    try:
        assert other_pytest_running()
    finally:
        os.kill(pid, signal.SIGTERM)
