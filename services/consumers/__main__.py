"""`python -m services.consumers <entity> [--queues records,jobs,writeback]`: the entity's consumers.

By default one process serves every queue of the entity. The product's CA Product ID write-back
(one Acumatica PUT per new product) can run in a process of its own (`--queues writeback`, with
`--queues records,jobs` for the other), so it does not hold up listing; `--nice 10`, as the Procfile
runs it, also leaves the CPU to listing where both share a host. `--metrics-port` serves /metrics and
/healthz (whether every consumer of the process is connected) on a port of the process's own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from services.consumers.context import ConsumerContext
from services.consumers.product.consumer import ProductConsumer
from services.consumers.product.writeback import attempts as write_back_attempts
from shared.logging import setup_logging
from shared.messaging.consumer import BatchConsumer, ConsumerConfig, Service, run_until_signal
from shared.messaging.topology import kinds_of
from shared.metrics import MetricsServer
from shared.settings import get_settings, refuse_sandbox_credentials

CONSUMERS = {"product": ProductConsumer}


WRITE_BACK_MESSAGES = 4  # in hand at once, each with up to 200 items


async def serve(entity: str, queues: list[str], metrics_port: int | None = None) -> None:
    settings = get_settings()
    ctx = await ConsumerContext.build(settings, f"consumer-{entity}")
    consumer = CONSUMERS[entity](ctx)

    async def job_config() -> ConsumerConfig:
        """Jobs run one at a time per process: each is already a long, paged batch."""
        base = await ctx.config.consumer_config()
        return ConsumerConfig(prefetch=1, batch_size=1, batch_window_ms=0, max_attempts=base.max_attempts)

    async def write_back_config() -> ConsumerConfig:
        base = await ctx.config.consumer_config()
        return ConsumerConfig(
            prefetch=WRITE_BACK_MESSAGES,
            batch_size=WRITE_BACK_MESSAGES,
            batch_window_ms=0,
            max_attempts=write_back_attempts(base.max_attempts),
            retry_delays=base.retry_delays,
        )

    handlers = {
        "records": (consumer.handle_records, ctx.config.consumer_config),
        "jobs": (consumer.handle_jobs, job_config),
    }
    if "writeback" in queues:  # only entities that have the queue (see `kinds_of`)
        handlers["writeback"] = (consumer.handle_write_backs, write_back_config)
    consumers = [
        BatchConsumer(
            settings.amqp_url_plain,
            ctx.topology,
            ctx.topology.queue(entity, kind),
            handlers[kind][0],
            handlers[kind][1],
            name=f"{entity}-{kind}",
        )
        for kind in queues
    ]
    services: list[Service] = list(consumers)
    if metrics_port is not None:

        def connected() -> dict[str, bool]:
            return {c.name: c.connected for c in consumers}

        services.append(MetricsServer(metrics_port, connected, host=settings.metrics_host))
    if "jobs" in queues:  # the job runner (claims jobs the queue wakes it for) and the feed reconciler
        services += consumer.background()
    try:
        await run_until_signal(*services)
    finally:
        await ctx.close()


def parse_queues(entity: str, text: str | None) -> list[str]:
    available = kinds_of(entity)
    queues = [q.strip() for q in text.split(",") if q.strip()] if text else list(available)
    unknown = [q for q in queues if q not in available]
    if unknown or not queues:
        raise SystemExit(f"--queues: {entity} has the queues {', '.join(available)}; got {text!r}")
    return list(dict.fromkeys(queues))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.consumers")
    parser.add_argument("entity", choices=sorted(CONSUMERS), help="which entity's consumer to run")
    parser.add_argument("--queues", help="comma-separated queues to serve (default: all of the entity's)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        choices=range(20),
        metavar="0-19",
        help="lower this process's CPU priority by N (background work such as the write-back, on a shared host)",
    )
    parser.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port (default: none)")
    args = parser.parse_args()
    queues = parse_queues(args.entity, args.queues)
    refuse_sandbox_credentials(get_settings())
    setup_logging(get_settings().log_level, f"consumer-{args.entity}")
    if args.nice:
        os.nice(args.nice)  # listing on Rithum keeps the CPU when both want it; the write-back only trails
        logging.getLogger("connector.consumers").info("CPU priority lowered by %d (nice)", args.nice)
    asyncio.run(serve(args.entity, queues, args.metrics_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
