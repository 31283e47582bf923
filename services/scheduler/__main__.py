"""`python -m services.scheduler`: run the scheduler until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.scheduler.service import Scheduler
from shared.logging import setup_logging
from shared.settings import get_settings, refuse_sandbox_credentials


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Scheduler(get_settings()).run(stop)


def main() -> None:
    settings = get_settings()
    refuse_sandbox_credentials(settings)
    setup_logging(settings.log_level, "scheduler")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
