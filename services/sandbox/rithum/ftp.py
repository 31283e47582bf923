"""The FTP side: an aioftp server over a real directory, and the intake that processes dropped feeds.

A file is picked up once it exists under a final name in `/Inventory` or `/Inventory/Transform`
(written there, or renamed into place), after the configured delay. Names starting with `.` or ending
in `.tmp` / `.part` are uploads in progress and are left alone. The result goes to
`/Inventory/Results/<name>.results.txt`, written under a temporary name and renamed, so a client never
reads half a result; the processed input file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aioftp

from . import feed
from .state import Sandbox

log = logging.getLogger(__name__)
INTAKE = ("Inventory", "Inventory/Transform")
RESULTS = "Inventory/Results"
TEMPORARY_SUFFIXES = (".tmp", ".part")
YIELD_EVERY = 500  # rows between yields to the event loop, so the API stays responsive


def is_final_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(TEMPORARY_SUFFIXES)


class FeedIntake:
    def __init__(self, sandbox: Sandbox, root: Path) -> None:
        self.sb = sandbox
        self.root = root.resolve()
        self.intake_dirs = {self.root / d for d in INTAKE}
        self.results_dir = self.root / RESULTS
        for directory in (*self.intake_dirs, self.results_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._pending: dict[Path, asyncio.Task[None]] = {}
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

    async def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        for task in list(self._pending.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        path = path.resolve()
        (self.results_dir / f"{path.name}.results.txt").unlink(missing_ok=True)  # never serve a stale result
        previous = self._pending.pop(path, None)
        if previous is not None:
            previous.cancel()
        self._pending[path] = asyncio.create_task(self._process_later(path))

    async def _process_later(self, path: Path) -> None:
        await asyncio.sleep(self.sb.config.feed_delay)
        self._pending.pop(path, None)
        try:
            await self.process(path)
        except Exception:
            log.exception("processing feed %s failed", path)

    # --- processing ------------------------------------------------------------------------------

    async def process(self, path: Path) -> dict[str, Any]:
        started = time.monotonic()
        try:
            data = await asyncio.to_thread(path.read_bytes)
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
            results = [feed.Result(1, "", f"File rejected: {file_error}")]
        result_name = f"{path.name}.results.txt"
        await asyncio.to_thread(self._finish, path, result_name, results)
        errors = sum(1 for r in results if r.error is not None)
        summary = {
            "file": "/" + path.relative_to(self.root).as_posix(),
            "result_file": f"/{RESULTS}/{result_name}",
            "rows": len(results) if file_error is None else 0,
            "errors": errors,
            "file_error": file_error,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.sb.feeds.append(summary)
        self.sb.stats.ftp["files_processed"] += 1
        self.sb.stats.ftp["rows"] += summary["rows"]
        self.sb.stats.ftp["row_errors"] += errors if file_error is None else 0
        log.info("processed feed %s: %d rows, %d errors", summary["file"], summary["rows"], errors)
        return summary

    def _finish(self, path: Path, name: str, results: list[feed.Result]) -> None:
        """Publish the result file atomically, then drop the processed input."""
        text = "\t".join(feed.RESULT_HEADER) + "\n" + "".join(feed.result_line(r) for r in results)
        temporary = self.results_dir / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.results_dir / name)
        path.unlink(missing_ok=True)


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
