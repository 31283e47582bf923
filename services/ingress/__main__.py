"""`python -m services.ingress`: the webhook ingress and trigger API on uvicorn."""

from __future__ import annotations

from services.ingress.app import create_app
from services.ingress.server import serve
from shared.logging import setup_logging
from shared.settings import get_settings, refuse_sandbox_credentials


def main() -> None:
    settings = get_settings()
    refuse_sandbox_credentials(settings)
    setup_logging(settings.log_level, "ingress")
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
