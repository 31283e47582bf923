"""Start project services as real child processes for tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@contextmanager
def service(
    args: Sequence[str], health_url: str | None = None, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[subprocess.Popen]:
    """Run `python -m <args>` from the repo root; wait for `health_url`; terminate on exit.

    CONNECTOR_ENV=sandbox unless `env` says otherwise: tests run on the sandboxes' credentials."""
    full_env = {**os.environ, "CONNECTOR_ENV": "sandbox", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=full_env, start_new_session=True)
    try:
        if health_url:
            wait_http(health_url, timeout, proc)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
