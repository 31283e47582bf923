"""`make run` starts the sandboxes empty (they keep their data in memory), so the connector's sync state
from an earlier run would claim products the fresh Rithum sandbox does not have: a delta or a real-time
change would then skip them as unchanged. `make run` therefore clears the sync state (records, jobs,
watermarks, feed files, outbox) at start; configuration (site config, mappings, schedules) and request
logs stay. `KEEP_SYNC_STATE=1 make run` keeps it all.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import text

from shared.db.engine import make_engine

SYNC_STATE = ("sync_records", "feed_uploads", "sync_jobs", "watermarks", "outbox")


async def reset_sync_state(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(SYNC_STATE)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    from shared.settings import get_settings

    asyncio.run(reset_sync_state(get_settings().database_url_plain))
    print("connector sync state cleared (the sandboxes start empty)", file=sys.stderr)
