"""Consume throughput: the BatchConsumer runtime (handler acks only) vs plain aio-pika, same queue type.

Both consume pre-published, small, persistent messages from a quorum work queue declared by the
same Topology (the runtime reads `product.records`, plain aio-pika reads `product.jobs`: same
arguments), with the same prefetch. Only consumption is timed, from opening the connection to the
last message handled, so the runtime's set-up (topology re-declaration) counts against it.

    .venv/bin/python bench/consumer_bench.py [--messages 20000] [--prefetch 500] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.messaging.consumer import Ack, BatchConsumer, ConsumerConfig, Delivery, Outcome
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.settings import get_settings

PHASE_TIMEOUT_SECONDS = 300


async def prepublish(publisher: Publisher, kind: str, count: int) -> None:
    op = "run" if kind == "jobs" else "upsert"
    for start in range(0, count, 1000):
        await publisher.publish_many(
            Envelope(entity="product", kind=kind, op=op, key=f"ITEM{i:06d}", source="bench", payload={"qty": i})
            for i in range(start, min(start + 1000, count))
        )


async def plain_aio_pika(url: str, queue_name: str, count: int, prefetch: int) -> float:
    done = asyncio.Event()
    seen = 0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal seen
        await message.ack()
        seen += 1
        if seen == count:
            done.set()

    started = time.perf_counter()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=False)
        await queue.consume(on_message)
        await done.wait()
        return time.perf_counter() - started


async def runtime(url: str, topology: Topology, count: int, config: ConsumerConfig) -> float:
    done = asyncio.Event()
    seen = 0

    async def handler(batch: list[Delivery]) -> list[Outcome]:
        nonlocal seen
        seen += len(batch)
        if seen >= count:
            done.set()
        return [Ack()] * len(batch)

    async def config_source() -> ConsumerConfig:
        return config

    consumer = BatchConsumer(url, topology, topology.queue("product", "records"), handler, config_source, name="bench")
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    await done.wait()
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await task
    return elapsed


async def main(args: argparse.Namespace) -> None:
    url = get_settings().amqp_url_plain
    topology = Topology(f"bench-{uuid.uuid4().hex[:8]}", entities=("product",))
    config = ConsumerConfig(
        prefetch=args.prefetch, batch_size=args.batch_size, batch_window_ms=args.window_ms, max_attempts=5
    )
    print(
        f"{args.messages} messages per run, quorum queues, prefetch {args.prefetch}, "
        f"runtime batch {args.batch_size} / {args.window_ms} ms, {args.rounds} round(s)"
    )
    ratios = []
    try:
        async with Publisher(url, topology, name="bench-publisher") as publisher:
            for round_no in range(1, args.rounds + 1):
                await prepublish(publisher, "jobs", args.messages)
                await prepublish(publisher, "records", args.messages)
                # Alternate which goes first, so neither always meets a colder or busier broker.
                runs = {
                    "plain": lambda: plain_aio_pika(
                        url, topology.queue("product", "jobs"), args.messages, args.prefetch
                    ),
                    "ours": lambda: runtime(url, topology, args.messages, config),
                }
                order = ["plain", "ours"] if round_no % 2 else ["ours", "plain"]
                rates = {}
                for name in order:
                    async with asyncio.timeout(PHASE_TIMEOUT_SECONDS):  # a broker restart must not hang it
                        rates[name] = args.messages / await runs[name]()
                plain, ours = rates["plain"], rates["ours"]
                ratios.append(ours / plain)
                print(
                    f"round {round_no}: plain aio-pika {plain:8.0f} msg/s | runtime {ours:8.0f} msg/s | "
                    f"ratio {ours / plain:.2f}",
                    flush=True,
                )
        print(f"median ratio runtime / plain aio-pika: {statistics.median(ratios):.2f} (goal >= 0.8)")
    finally:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for name in topology.queue_names():
                await channel.queue_delete(name)
            await channel.exchange_delete(topology.events_exchange)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--window-ms", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
