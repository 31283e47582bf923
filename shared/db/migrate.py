"""`python -m shared.db.migrate`: create the database if it is missing, then upgrade to head.

Used by `make run`, `make test` and service start-up scripts, so a fresh machine needs no manual
database set-up.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("connector.migrate")


async def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{target.database}"')
            log.info("created database %s", target.database)
    finally:
        await conn.close()


def upgrade(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "shared/db/migrations"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = get_settings().database_url_plain
    try:
        asyncio.run(ensure_database(url))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL is not reachable at {make_url(url).render_as_string()}: {exc}", file=sys.stderr)
        return 2
    upgrade(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
