"""A consumer process for the crash and shutdown tests: prints each batch it gets as a JSON line.

Run as `python -m tests.messaging.consumer_proc PREFIX BATCH_SIZE MODE` with AMQP_URL in the
environment. MODE `hang` never returns from the handler (the test SIGKILLs it mid-batch); MODE `slow`
acks after a second (the test sends SIGTERM meanwhile and expects the batch to be finished).
"""

from __future__ import annotations

import asyncio
import json
import sys

from shared.messaging.consumer import Ack, BatchConsumer, ConsumerConfig, Delivery, Outcome, run_until_signal
from shared.messaging.topology import Topology
from shared.settings import get_settings


async def hang(batch: list[Delivery]) -> list[Outcome]:
    print(json.dumps({"batch": [d.message_id for d in batch]}), flush=True)
    await asyncio.Event().wait()  # mid-batch for ever: nothing gets acked
    raise AssertionError("unreachable")


async def slow(batch: list[Delivery]) -> list[Outcome]:
    print(json.dumps({"batch": [d.message_id for d in batch]}), flush=True)
    await asyncio.sleep(1)
    return [Ack()] * len(batch)


async def main(prefix: str, batch_size: int, mode: str) -> None:
    topology = Topology(prefix, entities=("product",), retry_delays=(0.2, 0.4))
    config = ConsumerConfig(prefetch=2 * batch_size, batch_size=batch_size, batch_window_ms=2000, max_attempts=3)

    async def config_source() -> ConsumerConfig:
        return config

    consumer = BatchConsumer(
        get_settings().amqp_url_plain,
        topology,
        topology.queue("product", "records"),
        {"hang": hang, "slow": slow}[mode],
        config_source,
        name="crash-test-consumer",
    )
    await run_until_signal(consumer)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
