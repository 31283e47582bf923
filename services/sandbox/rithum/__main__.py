"""`python -m services.sandbox.rithum --port N --ftp-port M`: the REST API and the FTP server in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
from pathlib import Path

import uvicorn

from .app import create_app
from .ftp import FeedIntake
from .seed import seed_orders
from .state import Config, Credentials, Sandbox
from .webhooks import WebhookSender


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.sandbox.rithum", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="HTTP port of the REST API")
    parser.add_argument("--ftp-port", type=int, required=True, help="port of the FTP server")
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="start with N seeded orders")
    parser.add_argument(
        "--feed-delay",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="delay before a dropped feed file is processed (default 1800; Rithum: within one hour)",
    )
    parser.add_argument(
        "--feed-results",
        action="store_true",
        help="debugging aid: write /Inventory/Results/<name>.results.txt per feed (real Rithum does not)",
    )
    parser.add_argument(
        "--token-ttl", type=float, default=3600.0, metavar="SECONDS", help="lifetime of access tokens (default 3600)"
    )
    parser.add_argument(
        "--ftp-root", type=Path, default=None, help="directory behind the FTP server (default: a temporary directory)"
    )
    parser.add_argument(
        "--ftp-passive-ports",
        type=_port_range,
        default=None,
        metavar="FIRST-LAST",
        help="ports for passive FTP data connections, e.g. 30000-30009 (default: any free port)",
    )
    return parser.parse_args(argv)


def _port_range(text: str) -> range:
    first, _, last = text.partition("-")
    if not first.isdigit() or not last.isdigit() or int(first) > int(last):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range like 30000-30009")
    return range(int(first), int(last) + 1)


async def serve(args: argparse.Namespace, root: Path) -> None:
    sandbox = Sandbox(
        Credentials(), Config(token_ttl=args.token_ttl, feed_delay=args.feed_delay, feed_results=args.feed_results)
    )
    if args.seed:
        seed_orders(sandbox, args.seed, seed=args.seed)
    webhooks = WebhookSender(sandbox)
    intake = FeedIntake(sandbox, root)
    await webhooks.start()
    await intake.start(args.host, args.ftp_port, args.ftp_passive_ports)
    server = uvicorn.Server(
        uvicorn.Config(create_app(sandbox, webhooks, intake), host=args.host, port=args.port, log_level="warning")
    )
    try:
        await server.serve()
    finally:
        await intake.close()
        await webhooks.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioftp").setLevel(logging.WARNING)
    if args.ftp_root is not None:
        args.ftp_root.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(args, args.ftp_root))
        return
    with tempfile.TemporaryDirectory(prefix="rithum-ftp-") as root:
        asyncio.run(serve(args, Path(root)))


if __name__ == "__main__":
    main()
