"""Webhook intake: the real ingress against a bare FastAPI endpoint, same client, same concurrency.

Each server runs as one uvicorn worker in a process of its own; this process is the load client:
one keep-alive HTTP/1.1 connection per concurrent client on asyncio streams (uvloop). httpx was
measured here as the bottleneck (a shared AsyncClient with 32 connections managed ~200 requests/s
against the bare endpoint, raw streams ~4,000), so it would have timed the client. Every request is a
small one-row Acumatica push notification with a distinct Id. The ingress answers 202 only after
RabbitMQ confirmed the message (quorum queue, persistent); the bare endpoint parses the JSON and
answers 202. The ingress gets its own AMQP prefix and the test database; its topology is deleted
afterwards.

    .venv/bin/python bench/ingress_bench.py [--requests 5000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import psutil
import uvloop
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.db.migrate import ensure_database, upgrade
from shared.messaging.topology import Topology
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret"
WARMUP_REQUESTS = 300

bare_app = FastAPI()


@bare_app.post("/webhooks/acumatica", status_code=202)
async def bare_webhook(request: Request) -> JSONResponse:
    """The floor: what FastAPI on uvicorn costs for the same request, with no work behind it."""
    notification = json.loads(await request.body())
    return JSONResponse({"accepted": len(notification["Inserted"])}, status_code=202)


@bare_app.get("/healthz")
async def bare_health() -> dict[str, str]:
    return {"status": "ok"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(args: list[str], ready_url: str, env: dict[str, str]) -> Iterator[psutil.Process]:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {proc.returncode}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready_url} not ready within 60 s")
            time.sleep(0.2)
        yield psutil.Process(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


@dataclass
class Result:
    seconds: float
    accepted: int
    latencies: list[float]
    server_cpu: float = 0.0  # CPU seconds the server process used during the run

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[p - 1] * 1000

    def summary(self) -> str:
        return (
            f"{self.rate:6.0f}/s p50 {self.percentile(50):5.1f} ms p99 {self.percentile(99):5.1f} ms "
            f"cpu {100 * self.server_cpu / self.seconds:3.0f}%"
        )


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def bodies(count: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "Query": "RithumProducts",
                "CompanyId": "Company",
                "Id": str(uuid.uuid4()),
                "TimeStamp": 638465233453014192,
                "Inserted": [{"InventoryID": f"BENCH{i:06d}", "Description": "bench item", "ItemClass": "TOYS"}],
                "Deleted": [],
            }
        ).encode()
        for i in range(count)
    ]


def request_bytes(payload: bytes) -> bytes:
    head = (
        f"POST /webhooks/acumatica HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {SECRET}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def send_all(port: int, requests: Iterator[bytes], latencies: list[float], statuses: Counter[int]) -> None:
    """One keep-alive connection sending requests back to back (the responses carry Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(lines[0].split()[1])
            if status != 202 and not statuses[status]:
                print(f"  port {port}: {status} {body[:200]!r}", file=sys.stderr)
            statuses[status] += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def load(port: int, payloads: list[bytes], concurrency: int) -> Result:
    """`concurrency` clients send the payloads back to back; latency of each request, wall time of all."""
    requests = iter([request_bytes(p) for p in payloads])
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(send_all(port, requests, latencies, statuses) for _ in range(concurrency)))
    return Result(time.perf_counter() - started, statuses[202], latencies)


async def measure(
    target: psutil.Process, port: int, requests: int, concurrency: int, empty_first: tuple[str, str] | None
) -> Result:
    """Warm up, then the timed run; `empty_first` (AMQP URL, queue) is purged in between."""
    await load(port, bodies(WARMUP_REQUESTS), concurrency)
    if empty_first:  # every ingress run meets the same (empty) quorum queue, as with a consumer attached
        await purge(*empty_first)
    cpu_before = cpu_seconds(target)
    result = await load(port, bodies(requests), concurrency)
    result.server_cpu = cpu_seconds(target) - cpu_before
    return result


async def purge(amqp_url: str, queue: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await (await channel.get_queue(queue, ensure=False)).purge()


async def delete_topology(amqp_url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in topology.queue_names():
            await channel.queue_delete(name)
        await channel.exchange_delete(topology.events_exchange)


def main(args: argparse.Namespace) -> None:
    amqp_url = get_settings().amqp_url_plain
    database_url = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/connector_test")
    asyncio.run(ensure_database(database_url))
    upgrade(database_url)
    topology = Topology(f"bench-{uuid.uuid4().hex[:8]}")
    ingress_port, bare_port = free_port(), free_port()
    ingress_env = {
        "DATABASE_URL": database_url,
        "AMQP_PREFIX": topology.prefix,
        "INGRESS_PORT": str(ingress_port),
        "WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    bare_args = ["-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "ingress_bench:bare_app", "--port", str(bare_port)]
    bare_args += ["--no-access-log", "--log-level", "warning"]
    print(
        f"{args.requests} one-row notifications per run, {args.concurrency} concurrent clients, "
        f"one uvicorn worker each, {args.rounds} round(s), {os.cpu_count()} CPUs"
    )
    results: dict[str, list[Result]] = {"ingress": [], "bare": []}
    try:
        with (
            server(["-m", "services.ingress"], f"http://127.0.0.1:{ingress_port}/readyz", ingress_env) as ingress,
            server(bare_args, f"http://127.0.0.1:{bare_port}/healthz", {}) as bare_server,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            for round_no in range(1, args.rounds + 1):
                # Alternate which goes first, so neither always meets a colder or busier machine.
                order = ["bare", "ingress"] if round_no % 2 else ["ingress", "bare"]
                targets = {
                    "bare": (bare_server, bare_port, None),
                    "ingress": (ingress, ingress_port, (amqp_url, topology.queue("product", "records"))),
                }
                for name in order:
                    process, port, empty_first = targets[name]
                    results[name].append(
                        runner.run(measure(process, port, args.requests, args.concurrency, empty_first))
                    )
                ours, bare = results["ingress"][-1], results["bare"][-1]
                print(
                    f"round {round_no}: bare {bare.summary()} | ingress {ours.summary()} | "
                    f"ratio {ours.rate / bare.rate:.2f}",
                    flush=True,
                )
    finally:
        asyncio.run(delete_topology(amqp_url, topology))
    failed = sum(args.requests - r.accepted for rs in results.values() for r in rs)
    ratios = [o.rate / b.rate for o, b in zip(results["ingress"], results["bare"], strict=True)]
    print(f"median ratio ingress / bare FastAPI: {statistics.median(ratios):.2f} (goal >= 0.5); not 202: {failed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args())
