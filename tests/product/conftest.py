"""The whole stack as real processes: both sandboxes, the ingress and the product consumer."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from deploy.demo import configure
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge
from tests.support.processes import ROOT, free_port, service, stop, wait_http

TOKEN = "product-test-token"
SECRET = "product-test-webhook-secret"


@dataclass
class Stack:
    env: dict[str, str]
    ingress: str
    acumatica: str
    rithum: str
    settings: Settings
    consumer: subprocess.Popen | None = None
    _exit: ExitStack = field(default_factory=ExitStack)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.ingress}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)

    def acu(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.acumatica}/_sandbox", timeout=60)

    def rit(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.rithum}/_sandbox", timeout=60)

    def start_consumer(self) -> None:
        self.consumer = subprocess.Popen(
            [sys.executable, "-m", "services.consumers", "product"], cwd=ROOT, env=self.env, start_new_session=True
        )

    def kill_consumer(self, sig: int = signal.SIGKILL) -> None:
        if self.consumer is not None:
            stop(self.consumer, sig)
            self.consumer = None

    def wait_job(self, job_id: int, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while True:
                job = api.get(f"/jobs/{job_id}").raise_for_status().json()
                if job["status"] in ("succeeded", "failed"):
                    return job
                assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job['counts']}"
                time.sleep(0.3)

    def run_job(self, mode: str = "full", timeout: float = 180, **extra: Any) -> dict[str, Any]:
        with self.api() as api:
            job_id = api.post("/sync/product", json={"mode": mode, **extra}).raise_for_status().json()["job_id"]
        return self.wait_job(job_id, timeout)

    def reset(self, items: int) -> None:
        """Fresh catalogue in Acumatica, an empty Rithum, demo mappings and push definitions."""
        with self.acu() as acu, self.rit() as rit:
            acu.post("/reset").raise_for_status()
            acu.post("/seed", json={"items": items, "random_seed": 7}).raise_for_status()
            rit.post("/reset").raise_for_status()
            rit.patch("/config", json={"feed_delay": 0.2}).raise_for_status()
        configure(ingress=self.ingress, token=TOKEN, acumatica=self.acumatica, webhook_secret=SECRET)


@pytest.fixture(scope="module")
def stack(settings: Settings, sessionmaker) -> Iterator[Stack]:
    acu_port, rit_port, ftp_port, ingress_port = free_port(), free_port(), free_port(), free_port()
    env = {
        "DATABASE_URL": settings.database_url_plain,
        "AMQP_PREFIX": settings.amqp_prefix,
        "INGRESS_PORT": str(ingress_port),
        "API_TOKEN": TOKEN,
        "WEBHOOK_SECRET": SECRET,
        "ACUMATICA_URL": f"http://127.0.0.1:{acu_port}",
        "RITHUM_API_URL": f"http://127.0.0.1:{rit_port}",
        "RITHUM_FTP_URL": f"ftp://sandbox:sandbox@127.0.0.1:{ftp_port}",
        "RITHUM_FEED_POLL_SECONDS": "0.2",
        "ACUMATICA_REQUESTS_PER_MINUTE": "6000",  # the sandbox license has no per-minute limit
        "LOG_LEVEL": "INFO",
    }
    env = {**os.environ, **env}
    s = Stack(
        env=env,
        ingress=f"http://127.0.0.1:{ingress_port}",
        acumatica=env["ACUMATICA_URL"],
        rithum=env["RITHUM_API_URL"],
        settings=settings,
    )
    with s._exit:
        s._exit.enter_context(
            service(["services.sandbox.acumatica", "--port", str(acu_port)], f"{s.acumatica}/_sandbox/health", env=env)
        )
        s._exit.enter_context(
            service(
                ["services.sandbox.rithum", "--port", str(rit_port), "--ftp-port", str(ftp_port)],
                f"{s.rithum}/_sandbox/health",
                env=env,
            )
        )
        s._exit.enter_context(service(["services.ingress"], f"{s.ingress}/readyz", env=env))
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
