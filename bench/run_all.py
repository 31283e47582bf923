"""`make bench`: every benchmark in turn, each in a process of its own, its figures printed as they come.

    .venv/bin/python bench/run_all.py [--quick]

`--quick` runs the product full sync with 10,000 items instead of 100,000. A benchmark that is not
there (another engineer's, not written yet) is skipped with a message; the exit status is non-zero
when any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def benchmarks(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        ("consumer_bench.py", []),
        ("ingress_bench.py", []),
        ("product_bench.py", ["--items", "10000"] if quick else []),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="product full sync of 10,000 items, not 100,000")
    args = parser.parse_args()
    failed: list[str] = []
    for script, extra in benchmarks(args.quick):
        path = BENCH / script
        print(f"\n##### {script} {' '.join(extra)}".rstrip(), flush=True)
        if not path.exists():
            print(f"skipped: {path} does not exist", flush=True)
            continue
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(path), *extra], cwd=BENCH.parent, check=False).returncode
        print(f"##### {script}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
