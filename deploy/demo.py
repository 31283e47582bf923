"""Demo set-up for `make run`: wait for the stack, then configure what the demo needs."""

from __future__ import annotations

import os
import sys
import time

import httpx

INGRESS = f"http://127.0.0.1:{os.environ.get('INGRESS_PORT', '8000')}"


def wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {url} did not come up within {timeout:.0f}s")
        time.sleep(0.5)


def main() -> int:
    wait(f"{INGRESS}/readyz")
    print("demo: ingress ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
