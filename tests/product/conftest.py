"""The whole stack as real processes: both sandboxes, the ingress and the product consumer."""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge
from tests.support.processes import stop, wait_http
from tests.support.stack import Stack as SharedStack

TOKEN = "product-test-token"
SECRET = "product-test-webhook-secret"


@dataclass
class Stack(SharedStack):
    """The stack with the product consumer as one process reading all of its queues, which tests kill."""

    settings: Settings
    consumer: subprocess.Popen | None = None

    def start_consumer(self) -> None:
        self.consumer = self.spawn("services.consumers", "product")

    def kill_consumer(self, sig: int = signal.SIGKILL) -> None:
        if self.consumer is not None:
            stop(self.consumer, sig)
            self.consumer = None


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, settings: Settings, sessionmaker) -> Iterator[Stack]:
    """A module may tune the processes' environment with a `STACK_ENV` dict of its own."""
    with Stack.start(
        database_url=settings.database_url_plain,
        amqp_prefix=settings.amqp_prefix,
        token=TOKEN,
        secret=SECRET,
        extra_env={
            "ACUMATICA_REQUESTS_PER_MINUTE": "6000",  # the sandbox license has no per-minute limit
            "RITHUM_FEED_RECONCILE_SECONDS": "1",  # look for fed rows every second, not every minute
            "JOB_HEARTBEAT_SECONDS": "1",  # a killed consumer's job is taken over after 5 s, not a minute
            "JOB_STALE_SECONDS": "5",
            "CIRCUIT_OPEN_SECONDS": "2",  # a target back after an outage is tried again within seconds
            "CIRCUIT_OPEN_MAX_SECONDS": "4",
            "LOG_LEVEL": "INFO",
            **getattr(request.module, "STACK_ENV", {}),
        },
        settings=settings,
    ) as s:
        s.start_consumer()
        yield s
        s.kill_consumer(signal.SIGTERM)


@pytest_asyncio.fixture(loop_scope="session")
async def fresh(stack: Stack, clean_db) -> Stack:
    """Empty state store and queues; consumer running."""
    await asyncio.to_thread(wait_http, f"{stack.ingress}/readyz")  # the ingress has declared the topology
    await purge(stack.settings.amqp_url_plain, Topology(stack.settings.amqp_prefix).queue_names())
    if stack.consumer is None or stack.consumer.poll() is not None:
        stack.start_consumer()
    return stack


async def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll `check` (plain or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)
