"""Product sync throughput: a full sync through the FTP path, and the real-time path vs plain aio-pika.

The whole stack runs as real processes (both sandboxes, the ingress, the product consumer) with
an AMQP prefix and a database of its own (`connector_bench`, emptied first), so it can share the
broker and Postgres with test runs. Peak resident memory of every child process is sampled every
0.5 s.

1. Full sync: Acumatica is seeded with N items, the demo is configured, the Rithum sandbox holds a
   feed file for `--feed-delay` seconds, and `POST /api/v1/sync/product {"mode": "full"}` is
   followed. The connector's own time runs until the job is `confirming` (enumeration, transform and
   the upload of its feed files done); the confirmation time from there until every record is
   confirmed and the job `succeeded` (the feed reconciler runs every `--reconcile-seconds`), with the
   Rithum calls that confirmation cost (`products.list` pages, and the `$batch` parts of the kits sent
   once their components are confirmed). Rithum API calls are what its limits count (each `$batch`
   part included). The CA Product IDs are written back once rows are confirmed, and timed too.
2. Real time: a small catalogue is fully synced first, then K record envelopes are published for
   items that did not change (a read from Acumatica, equal content hash, no Rithum call) and, if
   asked, for K changed items (a Rithum `$batch` update each). Timed from the first publish until the
   consumer has saved every record's outcome. Baseline: a plain aio-pika consumer acking the same
   number of envelopes from a quorum queue of the same topology, timed the same way.

    .venv/bin/python bench/product_bench.py [--items 100000] [--feed-delay 120] [--reconcile-seconds 1] \
        [--rt-items 3000] [--messages 2000] [--changed 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import aio_pika
import psutil
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ and tests/ are not installed packages

from shared.db.engine import make_engine  # noqa: E402
from shared.db.migrate import ensure_database, upgrade  # noqa: E402
from shared.db.models import Base  # noqa: E402
from shared.messaging.envelope import Envelope  # noqa: E402
from shared.messaging.publisher import Publisher  # noqa: E402
from shared.messaging.topology import Topology  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from tests.support.broker import delete_topology  # noqa: E402
from tests.support.processes import stop  # noqa: E402
from tests.support.stack import Stack as SharedStack  # noqa: E402

TOKEN = "bench-token"
SECRET = "bench-webhook-secret"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/connector_bench")
PUBLISH_CHUNK = 500
PHASE_TIMEOUT_SECONDS = 1800


class MemorySampler:
    """Peak RSS per named process (with its children), sampled in a thread every `interval` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.processes: dict[str, psutil.Process] = {}
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.processes[name] = psutil.Process(pid)

    def reset(self) -> None:
        self.peak.clear()

    def _sample(self) -> None:
        for name, proc in list(self.processes.items()):
            try:
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            except psutil.Error:
                continue
            self.peak[name] = max(self.peak.get(name, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> str:
        return ", ".join(f"{name} {rss / 2**20:.0f} MB" for name, rss in self.peak.items())


@dataclass
class Stack(SharedStack):
    """The stack with the consumers as the Procfile runs them, and the memory of every process watched."""

    memory: MemorySampler
    consumers: list[subprocess.Popen] = field(default_factory=list)

    admin_timeout: ClassVar[float] = 600  # seeding or changing a large catalogue takes minutes
    job_poll_seconds: ClassVar[float] = 0.2

    def start_consumer(self) -> None:
        """As the Procfile runs them: records and jobs in one process, the ID write-back in another."""
        for name, args in (
            ("consumer-product", ("--queues", "records,jobs")),
            ("consumer-product-writeback", ("--queues", "writeback", "--nice", "10")),
        ):
            proc = self.spawn("services.consumers", "product", *args)
            self.consumers.append(proc)
            self.memory.watch(name, proc.pid)

    def stop_consumer(self) -> None:
        while self.consumers:
            stop(self.consumers.pop())

    def wait_write_backs(self, expected: int) -> float:
        """Seconds until Acumatica has received `expected` write-back PUTs (one per new product)."""
        started = time.perf_counter()
        deadline = time.monotonic() + PHASE_TIMEOUT_SECONDS
        while True:
            acu, _ = self.stats()
            puts = sum(n for name, n in acu["requests"].items() if name.startswith("PUT "))
            if puts >= expected:
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"{puts} of {expected} write-backs after {PHASE_TIMEOUT_SECONDS}s")
            time.sleep(0.2)

    def reset_all(self, items: int, feed_threshold: int) -> None:
        """A fresh catalogue of `items`, an empty Rithum and state store, the demo configured."""
        asyncio.run(truncate())
        self.reset(items)
        with self.api() as api:
            api.put("/config", json={"feed_threshold": feed_threshold}).raise_for_status()

    def clear_stats(self) -> None:
        with self.acu() as acu, self.rit() as rit:
            acu.delete("/stats").raise_for_status()
            rit.delete("/stats").raise_for_status()

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.acu() as acu, self.rit() as rit:
            return acu.get("/stats").raise_for_status().json(), rit.get("/stats").raise_for_status().json()

    def timed_job(self, mode: str = "full") -> tuple[dict[str, Any], float]:
        """The finished job and the seconds from its request until it ended."""
        started = time.perf_counter()
        job = self.run_job(mode, timeout=PHASE_TIMEOUT_SECONDS)
        return job, time.perf_counter() - started

    def set_feed_delay(self, seconds: float) -> None:
        with self.rit() as rit:
            rit.patch("/config", json={"feed_delay": seconds}).raise_for_status()

    def followed_job(self, mode: str, timeout: float) -> Followed:
        """Start a job and follow it through its stages, with the Rithum counters at each stage."""
        run = Followed(posted=datetime.now(UTC))
        started = time.perf_counter()
        with self.api() as api, self.rit() as rit:
            job_id = api.post("/sync/product", json={"mode": mode}).raise_for_status().json()["job_id"]
            ours = f"products-{job_id}-"  # the job's feed files
            deadline = time.monotonic() + timeout
            while True:
                job = api.get(f"/jobs/{job_id}").raise_for_status().json()
                now = time.perf_counter() - started
                if run.own is None and job["status"] in ("confirming", "succeeded", "failed"):
                    run.own = now  # enumeration over: the job's last feed file is uploaded
                    run.at_upload = rit.get("/stats").raise_for_status().json()
                if run.own is not None and run.processed is None and job["status"] == "confirming":
                    waiting = [f for f in rit.get("/feeds/pending").raise_for_status().json() if ours in f["file"]]
                    done = [f for f in rit.get("/feeds").raise_for_status().json() if ours in f["file"]]
                    if done and not waiting:  # Rithum has taken every file in: what follows is the reconciler's
                        run.processed = now
                        run.at_processed = rit.get("/stats").raise_for_status().json()
                if job["status"] in ("succeeded", "failed"):
                    run.job, run.end = job, now
                    run.at_end = rit.get("/stats").raise_for_status().json()
                    run.feeds = [f for f in rit.get("/feeds").raise_for_status().json() if ours in f["file"]]
                    if job["status"] == "succeeded" and job["counts"]["submitted"] and run.processed is None:
                        run.processed, run.at_processed = now, run.at_end  # processed and confirmed in one poll
                    return run
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job['counts']}")
                time.sleep(self.job_poll_seconds)


@dataclass
class Followed:
    """A job followed from its request: seconds since the request at each stage, Rithum stats there."""

    posted: datetime
    own: float | None = None  # enumeration, transform, upload: the job is `confirming` (or ended)
    processed: float | None = None  # no file of the job pending in the sandbox any more (polled)
    end: float = 0.0  # `succeeded` or `failed`
    job: dict[str, Any] = field(default_factory=dict)
    feeds: list[dict[str, Any]] = field(default_factory=list)  # the sandbox's summaries of the job's files
    at_upload: dict[str, Any] = field(default_factory=dict)
    at_processed: dict[str, Any] = field(default_factory=dict)
    at_end: dict[str, Any] = field(default_factory=dict)


def stamp(text: str) -> datetime:
    """A sandbox timestamp (`2026-12-02T05:21:16.212Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def calls_between(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """Rithum API calls (what its limits count) and calls by kind between two `/_sandbox/stats` snapshots."""
    kinds = {k: n - before["by_kind"].get(k, 0) for k, n in after["by_kind"].items()}
    return after["api_calls"] - before["api_calls"], {k: n for k, n in kinds.items() if n}


@contextmanager
def stack(acumatica_rpm: int, reconcile_seconds: float, log_level: str = "WARNING") -> Iterator[Stack]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with (
            MemorySampler() as memory,
            Stack.start(
                database_url=DATABASE_URL,
                amqp_prefix=prefix,
                token=TOKEN,
                secret=SECRET,
                extra_env={
                    "ACUMATICA_REQUESTS_PER_MINUTE": str(acumatica_rpm),
                    "RITHUM_FEED_RECONCILE_SECONDS": str(reconcile_seconds),
                    "LOG_LEVEL": log_level,
                },
                timeout=60,
                memory=memory,
            ) as s,
        ):
            for name, proc in s.processes.items():
                memory.watch(name, proc.pid)
            s.start_consumer()
            try:
                yield s
            finally:
                s.stop_consumer()
    finally:
        delete_topology(prefix)


async def analyze() -> None:
    """What autovacuum does soon after a bulk load: without fresh statistics, right after the table was
    emptied and refilled, Postgres scans every product row for a batch's keys instead of using the key index."""
    engine = make_engine(DATABASE_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE sync_records"))
    finally:
        await engine.dispose()


async def truncate() -> None:
    engine = make_engine(DATABASE_URL)
    try:
        async with engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def full_sync(s: Stack, items: int, feed_threshold: int, feed_delay: float, reconcile: float) -> dict[str, float]:
    print(
        f"\n== full sync: {items} Acumatica items, feed threshold {feed_threshold}, "
        f"Rithum feed delay {feed_delay:g} s, feed reconciler every {reconcile:g} s",
        flush=True,
    )
    seeded = time.perf_counter()
    s.reset_all(items, feed_threshold)
    s.set_feed_delay(feed_delay)  # applies to files received from now on
    print(f"   seeded and configured in {time.perf_counter() - seeded:.1f} s", flush=True)
    s.clear_stats()
    s.memory.reset()
    run = s.followed_job("full", timeout=PHASE_TIMEOUT_SECONDS + feed_delay)
    job, counts = run.job, run.job["counts"]
    left = asyncio.run(statuses())
    if counts.get("confirmed", 0) < counts.get("submitted", 0) or left.get("Submitted") or left.get("Pending"):
        print(
            f"   WARNING: the job {job['status']} with {counts.get('confirmed', 0)} of "
            f"{counts.get('submitted', 0)} fed records confirmed; records by status now {left}: "
            "the confirmation figures below do not hold",
            flush=True,
        )
    synced = counts.get("processed", 0)
    own = run.own if run.own is not None else run.end
    trailing = s.wait_write_backs(synced)
    wall = run.end + trailing
    acu, rit = s.stats()
    per_record = rit["api_calls"] / synced if synced else float("nan")
    print(f"   job {job['status']}: {counts}{' error ' + job['error'] if job.get('error') else ''}")
    print(
        f"   connector's own time (enumeration, transform, upload; until `confirming`): {own:.1f} s, "
        f"{counts.get('found', 0) / own:.0f} records/s found; goal ratio {own / 60:.2f} of 60 s",
        flush=True,
    )
    figures = {"own": own, "wall": wall, "rithum_per_record": per_record}
    submitted = counts.get("submitted", 0)
    if run.processed is not None and submitted:
        confirm = run.end - own
        waiting, waited_kinds = calls_between(run.at_upload, run.at_processed)
        after, after_kinds = calls_between(run.at_processed, run.at_end)
        total = waiting + after
        for f in run.feeds:
            print(
                f"   Rithum processed {f['file']}: {f['rows']} rows, {f['errors']} errors, "
                f"received {f['received_at']}, processed {f['processed_at']} (processing {f['seconds']} s)"
            )
        last = max((stamp(f["processed_at"]) for f in run.feeds), default=None)
        processed = (last - run.posted).total_seconds() if last else run.processed or run.end
        print(
            f"   confirmation at a {feed_delay:g} s feed delay: every record confirmed and the job succeeded "
            f"{confirm:.1f} s after the last upload (ratio {confirm / feed_delay if feed_delay else float('nan'):.2f} "
            f"of the delay); {run.end - processed:.1f} s after Rithum had processed the last file",
            flush=True,
        )
        kinds = Counter(waited_kinds) + Counter(after_kinds)
        print(
            f"   confirmation calls (from the last upload to the end): {total} ({total / submitted:.4f} per fed "
            f"record, {submitted} fed; {total / synced:.4f} per processed record): until Rithum had processed the "
            f"last file {waiting} {waited_kinds}, afterwards {after} {after_kinds}",
            flush=True,
        )
        # Paged queries: the reconciler's update-time pages, and the ID look-ups of the kits sent afterwards.
        pages = kinds["products.list"]
        kits = synced - counts.get("confirmed", 0)  # processed through the REST API, not the feed
        parts = sum(n for k, n in kinds.items() if k not in ("products.list", "token"))
        print(
            f"   of which products.list pages {pages} ({pages / submitted:.4f} per fed record); "
            f"{kits} records (kits) go through the REST API once their components are confirmed: "
            f"{parts} calls in this span ($batch requests and parts, {parts / kits if kits else 0:.2f} per kit)",
            flush=True,
        )
        figures.update(confirm=confirm, confirm_per_record=total / submitted, pages=pages, kit_calls=parts)
    else:
        print("   no feed file: the job succeeded without confirmation")
    print(
        f"   job {job['status']} after {run.end:.1f} s; every CA Product ID written back {trailing:.1f} s later "
        f"({wall:.1f} s after the request; write-backs start as rows are confirmed)"
    )
    print(
        f"   Rithum: {rit['api_calls']} API calls ({per_record:.4f} per record), by kind {rit['by_kind']}, "
        f"FTP {rit['ftp']}"
    )
    print(f"   Acumatica: {acu['total']} requests {acu['requests']}")
    print(f"   peak RSS: {s.memory.report()}")
    # The goal is the connector's own processes; the sandboxes stand in for the two SaaS systems.
    peak = max(rss for name, rss in s.memory.peak.items() if not name.endswith("-sandbox"))
    print(
        f"   goals: connector's own time < 60 s {met(own < 60)} ({own:.1f} s, ratio {own / 60:.2f}); "
        f"<= 0.02 Rithum calls/record {met(per_record <= 0.02)} ({per_record:.4f}, ratio {per_record / 0.02:.2f}); "
        f"< 300 MB per connector process {met(peak < 300 * 2**20)} ({peak / 2**20:.0f} MB)",
        flush=True,
    )
    figures.update(verify(s, counts.get("found", 0)))
    return figures


def verify(s: Stack, found: int) -> dict[str, float]:
    """The same full sync again on a target that holds everything: what the repair check costs."""
    s.clear_stats()
    job, seconds = s.timed_job("full")
    _, rit = s.stats()
    calls = rit["api_calls"]
    per_record = calls / found if found else float("nan")
    print(
        f"\n== full sync again, nothing changed and everything on Rithum (the repair check): job {job['status']} "
        f"in {seconds:.1f} s (ratio {seconds / 60:.2f} of 60 s); {calls} Rithum calls {rit['by_kind']}, "
        f"{per_record:.4f} per record checked (goal <= 0.011 {met(per_record <= 0.011)}); "
        f"recreated {job['counts'].get('recreated', 0)}",
        flush=True,
    )
    return {"verify_seconds": seconds, "verify_per_record": per_record}


async def statuses() -> dict[str, int]:
    """Product records by status."""
    engine = make_engine(DATABASE_URL)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT status, count(*) FROM sync_records GROUP BY 1 ORDER BY 1"))
            return {status: n for status, n in rows}
    finally:
        await engine.dispose()


async def processed_keys(limit: int) -> list[str]:
    engine = make_engine(DATABASE_URL)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT acumatica_key FROM sync_records WHERE status = 'Processed' ORDER BY id LIMIT :n"),
                {"n": limit},
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def publish(publisher: Publisher, entity: str, keys: list[str]) -> None:
    for i in range(0, len(keys), PUBLISH_CHUNK):
        await publisher.publish_many(
            Envelope(entity=entity, kind="records", op="updated", key=k, source="bench")
            for k in keys[i : i + PUBLISH_CHUNK]
        )


async def through_consumer(s: Stack, publisher: Publisher, keys: list[str]) -> float:
    """Envelopes for `keys` published while the consumer is stopped, then consumed: messages/s.

    Timed from the consumer's first saved batch to its last (the first batch's messages are not
    counted), so neither process start-up nor publishing is measured.
    """
    s.stop_consumer()
    since = datetime.now(UTC)
    await publish(publisher, "product", keys)
    s.start_consumer()
    engine = make_engine(DATABASE_URL)
    where = "entity = 'product' AND last_attempt_at >= :since AND acumatica_key = ANY(:keys)"
    try:
        async with asyncio.timeout(PHASE_TIMEOUT_SECONDS):
            while True:
                async with engine.connect() as conn:
                    done = (
                        await conn.execute(
                            text(f"SELECT count(*) FROM sync_records WHERE {where}"), {"since": since, "keys": keys}
                        )
                    ).scalar_one()
                if done >= len(keys):
                    break
                await asyncio.sleep(1.0)  # the rate comes from the stamps; polling less leaves Postgres to the consumer
            async with engine.connect() as conn:
                batches = (
                    await conn.execute(
                        text(f"SELECT last_attempt_at, count(*) FROM sync_records WHERE {where} GROUP BY 1 ORDER BY 1"),
                        {"since": since, "keys": keys},
                    )
                ).all()
    finally:
        await engine.dispose()
    span = (batches[-1][0] - batches[0][0]).total_seconds()
    if span <= 0:  # the first batch is not counted, so one batch leaves nothing to time
        raise SystemExit(f"{len(keys)} messages were handled in one batch: time needs more (--messages, --changed)")
    return (len(keys) - batches[0][1]) / span


async def plain_consume(publisher: Publisher, url: str, queue_name: str, count: int, prefetch: int) -> float:
    """Plain aio-pika acking `count` pre-published envelopes on a quorum queue: messages/s.

    Timed from the first message received to the last ack (the first message is not counted).
    """
    await publish(publisher, "category", [f"BASE{i:06d}" for i in range(count)])
    done = asyncio.Event()
    seen = 0
    first = 0.0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal seen, first
        if not seen:
            first = time.perf_counter()
        await message.ack()
        seen += 1
        if seen == count:
            done.set()

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=False)
        await queue.consume(on_message)
        async with asyncio.timeout(PHASE_TIMEOUT_SECONDS):
            await done.wait()
        return (count - 1) / (time.perf_counter() - first)


async def realtime_rates(s: Stack, messages: int, changed: int, repeat: int) -> None:
    settings = get_settings()
    topology = Topology(s.amqp_prefix)
    with s.api() as api:
        prefetch = api.get("/config").raise_for_status().json()["message_queue_threshold"]
    keys = await processed_keys(messages + changed)
    unchanged_keys, changed_keys = keys[:messages], keys[messages : messages + changed]
    async with Publisher(settings.amqp_url_plain, topology, name="bench-publisher") as publisher:
        # Baseline and consumer in turns, `repeat` times: this machine's speed drifts from minute to
        # minute, so each ratio compares runs made side by side, and the median is the figure.
        ratios: list[float] = []
        for run in range(1, repeat + 1):
            # The baseline reads the category queue, which no running consumer reads.
            plain = await plain_consume(
                publisher, settings.amqp_url_plain, topology.queue("category", "records"), len(unchanged_keys), prefetch
            )
            s.clear_stats()
            ours = await through_consumer(s, publisher, unchanged_keys)
            acu, rit = s.stats()
            ratios.append(ours / plain)
            print(
                f"   run {run}: plain aio-pika (prefetch {prefetch}) {plain:.0f} msg/s; product consumer, "
                f"{len(unchanged_keys)} unchanged items: {ours:.0f} msg/s, ratio {ours / plain:.2f}; "
                f"Acumatica requests {acu['total']}, Rithum API calls {rit['api_calls']}",
                flush=True,
            )
        median = statistics.median(ratios)
        print(
            f"   unchanged items: median ratio {median:.2f} over {repeat} runs "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; goal >= 0.3: {met(median >= 0.3)})",
            flush=True,
        )
        if changed_keys:
            with s.acu() as acu_admin:  # no push notifications: only the envelopes published here count
                for definition in acu_admin.get("/push/definitions").raise_for_status().json():
                    acu_admin.delete(f"/push/definitions/{definition['query']}").raise_for_status()
                acu_admin.post(
                    "/records/StockItem/change",
                    json={"keys": changed_keys, "set": {"Description": "Changed by bench"}, "single_transaction": True},
                ).raise_for_status()
            s.clear_stats()
            rate = await through_consumer(s, publisher, changed_keys)
            acu, rit = s.stats()
            print(
                f"   product consumer, {len(changed_keys)} changed items: {rate:.0f} msg/s, ratio {rate / plain:.2f}; "
                f"Acumatica requests {acu['total']}, Rithum API calls {rit['api_calls']} {rit['by_kind']}",
                flush=True,
            )


def realtime(s: Stack, items: int, messages: int, changed: int, feed_threshold: int, repeat: int) -> None:
    print(f"\n== real time: catalogue of {items} items synced first, then {messages} unchanged / {changed} changed")
    s.reset_all(items, feed_threshold)
    s.clear_stats()
    job, wall = s.timed_job("full")  # until `succeeded`: its feed file confirmed (feed delay 0.2 s)
    if job["status"] != "succeeded":
        raise SystemExit(f"the catalogue job {job['status']}: {job['counts']} {job.get('error')}")
    # The write-backs trail the job; measured while they still run, they would share the sandbox's CPU.
    wall += s.wait_write_backs(job["counts"].get("processed", 0))
    print(f"   catalogue synced and written back in {wall:.1f} s: {job['counts']}", flush=True)
    asyncio.run(analyze())
    asyncio.run(realtime_rates(s, messages, changed, repeat))


def main(args: argparse.Namespace) -> None:
    asyncio.run(ensure_database(DATABASE_URL))
    upgrade(DATABASE_URL)
    print(
        f"{os.cpu_count()} CPUs, database {DATABASE_URL.rsplit('/', 1)[-1]}, "
        f"ACUMATICA_REQUESTS_PER_MINUTE={args.acumatica_rpm}",
        flush=True,
    )
    with stack(args.acumatica_rpm, args.reconcile_seconds, args.log_level) as s:
        if args.items:
            full_sync(s, args.items, args.feed_threshold, args.feed_delay, args.reconcile_seconds)
        if args.messages:
            realtime(s, args.rt_items, args.messages, args.changed, args.feed_threshold, args.repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="catalogue size of the full sync (0: skip it)")
    parser.add_argument("--feed-threshold", type=int, default=500)
    parser.add_argument(
        "--feed-delay", type=float, default=120, help="seconds the Rithum sandbox holds the full sync's feed file"
    )
    parser.add_argument(
        "--reconcile-seconds",
        type=float,
        default=1,
        help="the consumer's RITHUM_FEED_RECONCILE_SECONDS (the service default is 60)",
    )
    parser.add_argument("--rt-items", type=int, default=3000, help="catalogue size of the real-time runs")
    parser.add_argument("--messages", type=int, default=2000, help="unchanged-item envelopes (0: skip real time)")
    parser.add_argument("--changed", type=int, default=500, help="changed-item envelopes (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="baseline/consumer pairs for unchanged items")
    parser.add_argument(
        "--acumatica-rpm",
        type=int,
        default=0,
        help="client-side Acumatica requests/minute (0: none; the sandbox has none)",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level of the services")
    main(parser.parse_args())
