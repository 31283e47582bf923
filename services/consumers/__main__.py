"""`python -m services.consumers <entity>`: the entity's record consumer and job runner."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.consumers.context import ConsumerContext
from services.consumers.product.consumer import ProductConsumer
from shared.logging import setup_logging
from shared.messaging.consumer import BatchConsumer, ConsumerConfig, run_until_signal
from shared.settings import get_settings

CONSUMERS = {"product": ProductConsumer}


async def serve(entity: str) -> None:
    settings = get_settings()
    ctx = await ConsumerContext.build(settings, f"consumer-{entity}")
    consumer = CONSUMERS[entity](ctx)

    async def job_config() -> ConsumerConfig:
        """Jobs run one at a time per process: each is already a long, paged batch."""
        base = await ctx.config.consumer_config()
        return ConsumerConfig(prefetch=1, batch_size=1, batch_window_ms=0, max_attempts=base.max_attempts)

    records = BatchConsumer(
        settings.amqp_url_plain,
        ctx.topology,
        ctx.topology.queue(entity, "records"),
        consumer.handle_records,
        ctx.config.consumer_config,
        name=f"{entity}-records",
    )
    jobs = BatchConsumer(
        settings.amqp_url_plain,
        ctx.topology,
        ctx.topology.queue(entity, "jobs"),
        consumer.handle_jobs,
        job_config,
        name=f"{entity}-jobs",
    )
    try:
        await run_until_signal(records, jobs)
    finally:
        await ctx.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.consumers")
    parser.add_argument("entity", choices=sorted(CONSUMERS), help="which entity's consumer to run")
    args = parser.parse_args()
    setup_logging(get_settings().log_level, f"consumer-{args.entity}")
    asyncio.run(serve(args.entity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
