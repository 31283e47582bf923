"""Fixtures shared by every test: settings, a migrated database, broker helpers, the ingress process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import make_engine, make_sessionmaker
from shared.db.migrate import ensure_database, upgrade
from shared.settings import Settings
from tests.support.broker import delete_topology, new_prefix, sweep_stale_topologies

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/connector_test")
# Tests never touch a production database named in .env: the test URL always wins.
os.environ["DATABASE_URL"] = TEST_DATABASE_URL
TABLES = ("sync_records", "sync_jobs", "watermarks", "schedules", "mappings", "request_logs", "outbox", "site_config")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove the topologies of earlier test sessions that are gone (killed, interrupted).

    Left behind, their quorum queues pile up until the broker runs out of file handles and refuses every
    connection on the machine. Live sessions' topologies are kept (see `stale_prefixes`).
    """
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        swept = sweep_stale_topologies(Settings().amqp_url_plain)
    except Exception as exc:  # best effort: a failed sweep must not stop the session
        message = f"sweep of leftover test topologies skipped: {type(exc).__name__}: {exc} (run `make services`)"
    else:
        if not swept:
            return
        message = f"swept {len(swept)} leftover test topologies: {', '.join(swept)}"
    if reporter is not None:
        reporter.write_line(message)


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Test settings with an AMQP prefix of the session's own; its queues are removed at the end."""
    value = Settings(database_url=TEST_DATABASE_URL, amqp_prefix=new_prefix())
    yield value
    delete_topology(value.amqp_prefix)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await ensure_database(TEST_DATABASE_URL)
    await asyncio.to_thread(upgrade, TEST_DATABASE_URL)
    engine = make_engine(TEST_DATABASE_URL, pool_size=5)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def clean_db(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """An empty state store for the test."""
    async with sessionmaker() as session, session.begin():
        await session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return sessionmaker


@pytest.fixture
def unique_prefix() -> Iterator[str]:
    yield new_prefix()
