"""Leader election with a Postgres session-level advisory lock.

The lock belongs to one database session, held open on a dedicated connection (not a pooled one,
where a returned connection would keep the lock). If the leader dies or its connection drops,
Postgres ends the session and frees the lock, and a standby's next attempt takes it. Advisory locks
are per database, so every scheduler pointed at the same database competes for the same key.
"""

from __future__ import annotations

import logging

import asyncpg
from sqlalchemy.engine import make_url

# A connection the server ended surfaces as any of these (InternalClientError: asyncpg's state machine).
LOST = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
log = logging.getLogger("connector.scheduler.leader")

LOCK_KEY = 0x7363_6865_6475_6C65
"""Fixed bigint key ("schedule" in ASCII) that every scheduler of a database competes for."""

QUERY_TIMEOUT_SECONDS = 5.0


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://…`) as a plain libpq-style DSN for asyncpg."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class LeaderLock:
    def __init__(self, database_url: str, *, name: str, key: int = LOCK_KEY) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._name = name
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def acquire(self) -> bool:
        """One attempt, never waiting for the current leader; True when this process leads now."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=QUERY_TIMEOUT_SECONDS,
                # Shows in pg_stat_activity, so operators can see which process leads.
                server_settings={"application_name": self._name[:63]},
            )
        self.held = bool(
            await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=QUERY_TIMEOUT_SECONDS)
        )
        return self.held

    async def confirm(self) -> bool:
        """Still the leader? The lock lives exactly as long as the session, so a live connection holds it."""
        if not self.held or self._conn is None:
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=QUERY_TIMEOUT_SECONDS)
            return True
        except LOST as exc:
            log.warning("leader lock connection lost (%s)", type(exc).__name__)
            await self.release()
            return False

    async def release(self) -> None:
        """Close the session, which frees the lock (also when the server already ended it)."""
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=QUERY_TIMEOUT_SECONDS)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                conn.terminate()
