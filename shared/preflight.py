"""`python -m shared.preflight`: are RabbitMQ and PostgreSQL reachable? Says clearly what is not."""

from __future__ import annotations

import asyncio
import sys

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from shared.settings import get_settings


async def check() -> list[str]:
    settings = get_settings()
    problems = []
    amqp = settings.amqp_url_plain
    try:
        connection = await asyncio.wait_for(aio_pika.connect(amqp), 10)
        await connection.close()
    except Exception as exc:
        host = amqp.rsplit("@", 1)[-1]
        problems.append(f"RabbitMQ is not reachable at {host}: {type(exc).__name__}: {exc}")
    db = make_url(settings.database_url_plain)
    try:
        admin = db.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        conn = await asyncio.wait_for(asyncpg.connect(admin), 10)
        await conn.close()
    except Exception as exc:
        problems.append(f"PostgreSQL is not reachable at {db.host}:{db.port}: {type(exc).__name__}: {exc}")
    return problems


def main() -> int:
    problems = asyncio.run(check())
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    if problems:
        print(
            "preflight: run `make services` (as root it starts and sets them up, otherwise it says what to run;"
            " README, 'Setting up the services'), or set AMQP_URL / DATABASE_URL",
            file=sys.stderr,
        )
        return 1
    print("preflight: RabbitMQ and PostgreSQL reachable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
