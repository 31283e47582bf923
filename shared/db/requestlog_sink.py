"""Writes request-log entries to Postgres in one multi-row insert per flush."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import RequestLogRow
from shared.requestlog import RequestLogEntry


class DatabaseSink:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def write(self, entries: Sequence[RequestLogEntry]) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(insert(RequestLogRow), [asdict(e) for e in entries])

    async def purge(self, older_than: datetime) -> int:
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(delete(RequestLogRow).where(RequestLogRow.created_at < older_than))
            return result.rowcount or 0
