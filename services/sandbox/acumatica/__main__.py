"""`python -m services.sandbox.acumatica --port N [--host H] [--seed N] [--seed-random S]`."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from .app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.sandbox.acumatica", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="start with a catalogue of N stock items")
    parser.add_argument("--seed-random", type=int, default=1, metavar="S", help="random seed of the catalogue")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.seed, args.seed_random)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
