"""The full stack as real processes (both sandboxes and the ingress), shared by the product tests and bench.

Each caller adds its own consumer processes and state-store handling; what is here is what both need
to be the same: one environment for every process, the sandbox admin clients, a fresh demo catalogue
and waiting for a sync job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import httpx

from deploy.demo import configure
from tests.support.processes import ROOT, free_port, service


@dataclass
class Stack:
    """Addresses and credentials of a running stack, with clients for its API and both sandboxes."""

    ingress: str
    acumatica: str
    rithum: str
    amqp_prefix: str
    token: str
    secret: str
    env: dict[str, str]  # the whole environment of every child process
    processes: dict[str, subprocess.Popen]  # "acumatica-sandbox", "rithum-sandbox", "ingress"

    # Subclasses tune these: a large seed or change can keep the Acumatica sandbox busy for minutes.
    admin_timeout: ClassVar[float] = 60
    job_poll_seconds: ClassVar[float] = 0.3

    @classmethod
    @contextmanager
    def start(
        cls,
        *,
        database_url: str,
        amqp_prefix: str,
        token: str,
        secret: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 30,
        **fields: Any,
    ) -> Iterator[Self]:
        """Start both sandboxes and the ingress on free ports, each answering within `timeout` seconds.

        `extra_env` adds to (or overrides) the common environment; `fields` are the subclass's own.
        The processes are stopped on exit.
        """
        acu_port, rit_port, ftp_port, ingress_port = free_port(), free_port(), free_port(), free_port()
        env = {
            "CONNECTOR_ENV": "sandbox",  # spawn() starts processes with this environment too
            "DATABASE_URL": database_url,
            "AMQP_PREFIX": amqp_prefix,
            "INGRESS_PORT": str(ingress_port),
            "API_TOKEN": token,
            "WEBHOOK_SECRET": secret,
            "ACUMATICA_URL": f"http://127.0.0.1:{acu_port}",
            "RITHUM_API_URL": f"http://127.0.0.1:{rit_port}",
            "RITHUM_FTP_URL": f"ftp://sandbox:sandbox@127.0.0.1:{ftp_port}",
            "RITHUM_FEED_POLL_SECONDS": "0.2",
            **(extra_env or {}),
        }
        s = cls(
            ingress=f"http://127.0.0.1:{ingress_port}",
            acumatica=env["ACUMATICA_URL"],
            rithum=env["RITHUM_API_URL"],
            amqp_prefix=amqp_prefix,
            token=token,
            secret=secret,
            env={**os.environ, **env},
            processes={},
            **fields,
        )
        commands = {
            "acumatica-sandbox": (
                ["services.sandbox.acumatica", "--port", str(acu_port)],
                f"{s.acumatica}/_sandbox/health",
            ),
            "rithum-sandbox": (
                ["services.sandbox.rithum", "--port", str(rit_port), "--ftp-port", str(ftp_port)],
                f"{s.rithum}/_sandbox/health",
            ),
            "ingress": (["services.ingress"], f"{s.ingress}/readyz"),
        }
        with ExitStack() as running:
            for name, (args, health) in commands.items():
                s.processes[name] = running.enter_context(service(args, health, env=s.env, timeout=timeout))
            yield s

    def spawn(self, *args: str) -> subprocess.Popen:
        """`python -m <args>` from the repo root with the stack's environment, in a process group of its own."""
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, start_new_session=True)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.ingress}/api/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def acu(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.acumatica}/_sandbox", timeout=self.admin_timeout)

    def rit(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.rithum}/_sandbox", timeout=60)

    def reset(self, items: int) -> None:
        """Fresh catalogue in Acumatica, an empty Rithum, demo mappings and push definitions.

        The fixed seed gives every run the same items; the feed delay lets a sync see feeds in progress.
        """
        with self.acu() as acu, self.rit() as rit:
            acu.post("/reset").raise_for_status()
            acu.post("/seed", json={"items": items, "random_seed": 7}).raise_for_status()
            rit.post("/reset").raise_for_status()
            rit.patch("/config", json={"feed_delay": 0.2}).raise_for_status()
        configure(ingress=self.ingress, token=self.token, acumatica=self.acumatica, webhook_secret=self.secret)

    def wait_job(self, job_id: int, timeout: float = 180) -> dict[str, Any]:
        """The job once it succeeded or failed; TimeoutError (with its status and counts) after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while True:
                job = api.get(f"/jobs/{job_id}").raise_for_status().json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return job
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job['counts']}")
                time.sleep(self.job_poll_seconds)

    def run_job(self, mode: str = "full", timeout: float = 180, **extra: Any) -> dict[str, Any]:
        """Start a product sync (`extra` goes into the request body) and wait for it to end."""
        with self.api() as api:
            job_id = api.post("/sync/product", json={"mode": mode, **extra}).raise_for_status().json()["job_id"]
        return self.wait_job(job_id, timeout)
