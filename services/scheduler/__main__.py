"""`python -m services.scheduler [--metrics-port N]`: run the scheduler until SIGTERM or SIGINT.

`--metrics-port` serves /metrics and /healthz (database reached, broker connected) on a port of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from services.scheduler.service import Scheduler
from shared.logging import setup_logging
from shared.metrics import MetricsServer
from shared.settings import get_settings, refuse_sandbox_credentials


async def serve(metrics_port: int | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = get_settings()
    scheduler = Scheduler(settings)
    if metrics_port is None:
        await scheduler.run(stop)
        return
    server = MetricsServer(metrics_port, scheduler.health, host=settings.metrics_host)
    serving = asyncio.create_task(server.run(), name="metrics")
    try:
        await scheduler.run(stop)
    finally:
        await server.stop()
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.scheduler")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port (default: none)")
    args = parser.parse_args()
    settings = get_settings()
    refuse_sandbox_credentials(settings)
    setup_logging(settings.log_level, "scheduler")
    asyncio.run(serve(args.metrics_port))


if __name__ == "__main__":
    main()
