"""The FTP side: an aioftp server over a real directory, and the intake that processes dropped feeds.

A file is picked up once it exists under a final name in `/Inventory` or `/Inventory/Transform`
(written there, or renamed into place), `feed_delay` seconds after it arrived (the delay in force at
its arrival; Rithum picks files up within an hour). Names starting with `.` or ending in `.tmp` /
`.part` are uploads in progress and are left alone. Files are processed one at a time in arrival order,
so a parent's file dropped before its children's is applied first even if the delay changed meanwhile.

The outcome is kept as a summary for the admin API (`GET /_sandbox/feeds`, the stand-in for Rithum's
Upload/Download Status page). Real Rithum writes no result file over FTP; with `feed_results` on (a
debugging aid) the sandbox also writes `/Inventory/Results/<name>.results.txt`, under a temporary name
then renamed, so a client never reads half a result. The processed input file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aioftp

from . import feed
from .catalog import utcnow
from .odata import format_datetime
from .state import Sandbox

log = logging.getLogger(__name__)
INTAKE = ("Inventory", "Inventory/Transform")
RESULTS = "Inventory/Results"
TEMPORARY_SUFFIXES = (".tmp", ".part")
YIELD_EVERY = 500  # rows between yields to the event loop, so the API stays responsive
MAX_REPORTED_ERRORS = 1000  # row errors kept per feed summary (the count stays exact)


def is_final_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(TEMPORARY_SUFFIXES)


@dataclass
class PendingFeed:
    """A file received and not processed yet; `due` is on the monotonic clock."""

    path: Path
    received_at: datetime
    due_at: datetime
    due: float


class FeedIntake:
    def __init__(self, sandbox: Sandbox, root: Path) -> None:
        self.sb = sandbox
        self.root = root.resolve()
        self.intake_dirs = {self.root / d for d in INTAKE}
        self.results_dir = self.root / RESULTS
        for directory in self.intake_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self._pending: dict[Path, PendingFeed] = {}  # insertion order is arrival order
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one file at a time, whether its timer fired or an admin call asked
        self._worker: asyncio.Task[None] | None = None
        self.server: aioftp.Server | None = None

    # --- FTP server ------------------------------------------------------------------------------

    async def start(self, host: str, port: int, passive_ports: Iterable[int] | None = None) -> None:
        creds = self.sb.credentials
        user = aioftp.User(
            creds.ftp_user,
            creds.ftp_password,
            base_path=self.root,
            permissions=[
                aioftp.Permission("/", readable=True, writable=True),
                aioftp.Permission("/" + RESULTS, readable=True, writable=False),
            ],
        )
        self.server = aioftp.Server([user], path_io_factory=_path_io(self), data_ports=passive_ports)
        await self.server.start(host, port)
        self._worker = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.server is not None:
            await self.server.close()

    # --- events from the path layer --------------------------------------------------------------

    def file_written(self, path: Path) -> None:
        self.sb.stats.ftp["uploads"] += 1
        if self._is_intake(path):
            self._schedule(path)

    def file_renamed(self, destination: Path) -> None:
        if self._is_intake(destination):
            self._schedule(destination)

    def file_read(self, path: Path) -> None:
        if path.resolve().parent == self.results_dir:
            self.sb.stats.ftp["result_downloads"] += 1

    def _is_intake(self, path: Path) -> bool:
        return path.resolve().parent in self.intake_dirs and is_final_name(path.name)

    def _schedule(self, path: Path) -> None:
        """A (re)written file is a new arrival: it goes to the back of the queue with the current delay."""
        path = path.resolve()
        (self.results_dir / f"{path.name}.results.txt").unlink(missing_ok=True)  # never serve a stale result
        self._pending.pop(path, None)
        delay = self.sb.config.feed_delay
        received = utcnow()
        self._pending[path] = PendingFeed(path, received, received + timedelta(seconds=delay), time.monotonic() + delay)
        self._wake.set()

    # --- the queue -------------------------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        return [
            {
                "file": self._name(p.path),
                "received_at": format_datetime(p.received_at),
                "due_at": format_datetime(p.due_at),
            }
            for p in self._pending.values()
        ]

    async def process_pending(self) -> list[dict[str, Any]]:
        """Process every pending file now, in arrival order (the admin API's fast-forward)."""
        async with self._lock:
            summaries = [await self._process_one(self._pending.pop(path)) for path in list(self._pending)]
        self._wake.set()  # the worker may be sleeping towards a file that is gone now
        return [s for s in summaries if s]

    def clear(self) -> int:
        """Forget pending files and delete them (admin reset); returns how many there were."""
        count = len(self._pending)
        for path in self._pending:
            path.unlink(missing_ok=True)
        self._pending.clear()
        self._wake.set()
        return count

    async def _run(self) -> None:
        """Wait for the oldest pending file to be due, process it, repeat: files go in arrival order."""
        while True:
            self._wake.clear()
            head = next(iter(self._pending.values()), None)
            wait = None if head is None else head.due - time.monotonic()
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            async with self._lock:
                if self._pending.get(head.path) is head:
                    await self._process_one(self._pending.pop(head.path))

    async def _process_one(self, pending: PendingFeed) -> dict[str, Any]:
        try:
            return await self.process(pending.path, pending.received_at)
        except Exception:
            log.exception("processing feed %s failed", pending.path)
            return {}

    # --- processing ------------------------------------------------------------------------------

    def _name(self, path: Path) -> str:
        return "/" + path.relative_to(self.root).as_posix()

    async def process(self, path: Path, received_at: datetime | None = None) -> dict[str, Any]:
        started = time.monotonic()
        try:
            data = await asyncio.to_thread(_take, path)
        except FileNotFoundError:
            return {}
        results: list[feed.Result] = []
        file_error = None
        try:
            text = data.decode("utf-8-sig")
            for n, result in enumerate(feed.process(text, self.sb.catalog), 1):
                results.append(result)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except UnicodeDecodeError as exc:
            file_error = f"The file is not valid UTF-8: {exc}."
        except feed.FileError as exc:
            file_error = str(exc)
        if file_error is not None:
            results = []
        failed = [r for r in results if r.error is not None]
        result_file = None
        if self.sb.config.feed_results:
            result_file = f"/{RESULTS}/{path.name}.results.txt"
            rows = results or [feed.Result(1, "", f"File rejected: {file_error}")]
            await asyncio.to_thread(self._write_results, path.name, rows)
        summary = {
            "file": self._name(path),
            "received_at": format_datetime(received_at),
            "processed_at": format_datetime(utcnow()),
            "rows": len(results),
            "errors": len(failed),
            "file_error": file_error,
            "row_errors": [{"line": r.line, "sku": r.sku, "message": r.error} for r in failed[:MAX_REPORTED_ERRORS]],
            "result_file": result_file,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.sb.feeds.append(summary)
        self.sb.stats.ftp["files_processed"] += 1
        self.sb.stats.ftp["rows"] += len(results)
        self.sb.stats.ftp["row_errors"] += len(failed)
        log.info(
            "processed feed %s: %d rows, %d errors, file error %s",
            summary["file"],
            len(results),
            len(failed),
            file_error,
        )
        return summary

    def _write_results(self, feed_name: str, results: list[feed.Result]) -> None:
        """The debugging result file, published atomically."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        name = f"{feed_name}.results.txt"
        text = "\t".join(feed.RESULT_HEADER) + "\n" + "".join(feed.result_line(r) for r in results)
        temporary = self.results_dir / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.results_dir / name)


def _take(path: Path) -> bytes:
    """Read the file and remove it, so a later upload under the same name is a new arrival."""
    data = path.read_bytes()
    path.unlink(missing_ok=True)
    return data


def _path_io(intake: FeedIntake) -> type[aioftp.PathIO]:
    """aioftp's blocking path layer, telling the intake when an upload is closed or renamed."""

    class IntakePathIO(aioftp.PathIO):
        async def close(self, file: Any) -> None:
            await super().close(file)
            if "r" in file.mode and "+" not in file.mode:
                intake.file_read(Path(file.name))
            else:
                intake.file_written(Path(file.name))

        async def rename(self, source: Path, destination: Path) -> Path:
            result = await super().rename(source, destination)
            intake.file_renamed(destination)
            return result

    return IntakePathIO
