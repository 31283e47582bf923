"""`python -m services.ingress`: the webhook ingress and trigger API on uvicorn."""

from __future__ import annotations

import uvicorn

from services.ingress.app import create_app
from shared.logging import setup_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_level, "ingress")
    uvicorn.run(
        create_app(settings),
        host=settings.ingress_host,
        port=settings.ingress_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
