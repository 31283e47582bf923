"""The request log (buffer, redaction, database sink, retention) and the outbound HTTP policy it audits."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import make_engine, make_sessionmaker
from shared.db.models import RequestLogRow
from shared.db.requestlog_sink import DatabaseSink
from shared.outbound import OutboundHTTP, minute_limiter, retry_after_seconds
from shared.requestlog import RequestLog, RequestLogEntry, log_context
from shared.settings import Settings

Sessions = async_sessionmaker[AsyncSession]
MISSING_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/connector_test_does_not_exist"
# Host names unique to this run: other test runs may write request logs to the same test database.
RUN = uuid.uuid4().hex[:8]
ACU, CA, FTP = f"acu-{RUN}", f"ca-{RUN}", f"ftp-{RUN}"


async def stored(sessionmaker: Sessions) -> list[RequestLogRow]:
    query = select(RequestLogRow).where(RequestLogRow.url.contains(RUN)).order_by(RequestLogRow.id)
    async with sessionmaker() as session:
        return list((await session.scalars(query)).all())


def entry(url: str, created_at: datetime) -> RequestLogEntry:
    return RequestLogEntry("acumatica", "GET", url, 200, 1.0, created_at=created_at)


# Buffer, context and sink ------------------------------------------------------------------------


async def test_flush_writes_the_buffer_in_one_batch_with_its_context(clean_db: Sessions) -> None:
    request_log = RequestLog(DatabaseSink(clean_db))
    request_log.record(system="rithum", method="post", url=f"http://{CA}/oauth2/token", status=200, duration_ms=12.345)
    with log_context(entity="product", job_id=41):
        request_log.record(system="acumatica", method="get", url=f"http://{ACU}/StockItem", status=200, duration_ms=3)
        with log_context(record_key="AALEGO500"):
            request_log.record(
                system="rithum", method="put", url=f"http://{CA}/v1/Products(1)", status=500, duration_ms=7
            )
    assert await stored(clean_db) == []  # recording never waits for the database

    assert await request_log.flush() == 3
    assert await request_log.flush() == 0
    rows = [
        (r.system, r.method, r.status, r.duration_ms, r.entity, r.record_key, r.job_id) for r in await stored(clean_db)
    ]
    assert rows == [
        ("rithum", "POST", 200, 12.35, None, None, None),
        ("acumatica", "GET", 200, 3.0, "product", None, 41),
        ("rithum", "PUT", 500, 7.0, "product", "AALEGO500", 41),
    ]


async def test_secrets_are_redacted_in_urls_excerpts_and_errors(clean_db: Sessions) -> None:
    settings = Settings(
        _env_file=None,
        acumatica_password="acu-Pa55word",
        rithum_refresh_token="ca-refresh-t0ken",
        webhook_secret="hook-s3cret",
        api_token="api-t0ken-xyz",
        rithum_ftp_url=f"ftp://feeds:ftp-Pa55@{FTP}:2121",
    )
    issued = "runtime-issued-9f8e7d"  # a token handed out at run time: unknown to the settings
    request_log = RequestLog(DatabaseSink(clean_db), secrets=settings.secret_values())
    login = {"name": "admin", "password": "acu-Pa55word", "company": "Company"}
    request_log.record(
        system="acumatica", method="post", url=f"http://{ACU}/entity/auth/login", status=204, duration_ms=1,
        request_excerpt=json.dumps(login),
    )  # fmt: skip
    request_log.record(
        system="rithum", method="post", url=f"http://{CA}/oauth2/token", status=200, duration_ms=1,
        request_excerpt="grant_type=refresh_token&refresh_token=ca-refresh-t0ken",
        response_excerpt=json.dumps({"access_token": issued, "expires_in": 3600}).encode(),
    )  # fmt: skip
    request_log.record(
        system="rithum", method="get", url=f"http://{CA}/v1/Products?access_token={issued}&$filter=Sku eq 'A1'",
        status=200, duration_ms=1, request_excerpt=f"Authorization: Bearer {issued}.sig",
    )  # fmt: skip
    request_log.record(
        system="ftp", method="stor", url=f"ftp://feeds:ftp-Pa55@{FTP}:2121/inbox/products.csv", status=None,
        duration_ms=1, error="530 login incorrect for feeds / ftp-Pa55",
    )  # fmt: skip
    request_log.record(
        system="acumatica", method="get", url=f"http://{ACU}/x", status=401, duration_ms=1,
        response_excerpt="header was hook-s3cret, token api-t0ken-xyz",
    )  # fmt: skip
    await request_log.flush()

    rows = await stored(clean_db)
    everything = " ".join(
        str(getattr(r, c.key)) for r in rows for c in RequestLogRow.__table__.columns if c.key != "created_at"
    )
    for secret in [*settings.secret_values(), issued]:
        assert secret not in everything
    assert json.loads(rows[0].request_excerpt) == {**login, "password": "***"}
    assert rows[1].request_excerpt == "grant_type=refresh_token&refresh_token=***"
    assert json.loads(rows[1].response_excerpt) == {"access_token": "***", "expires_in": 3600}
    assert rows[2].url == f"http://{CA}/v1/Products?access_token=***&$filter=Sku eq 'A1'"
    assert rows[2].request_excerpt == "Authorization: Bearer ***"
    assert rows[3].url == f"ftp://feeds:***@{FTP}:2121/inbox/products.csv"
    assert rows[3].error == "530 login incorrect for feeds / ***"
    assert rows[4].response_excerpt == "header was ***, token ***"


async def test_excerpts_are_truncated_after_redaction(clean_db: Sessions) -> None:
    request_log = RequestLog(DatabaseSink(clean_db), secrets=["known-secret-abcdef"], excerpt_chars=40)
    body = json.dumps({"name": "admin", "password": "supersecretvalue123", "x": "known-secret-abcdef"})
    request_log.record(
        system="rithum", method="post", url=f"http://{CA}/v1/Products", status=400, duration_ms=1,
        request_excerpt=body, response_excerpt=b"y" * 5000, error="z" * 5000,
    )  # fmt: skip
    # The cut falls inside each secret: neither part of one may remain.
    request_log.excerpt_chars = body.index("supersecret") + 8
    cut_in_field = request_log.excerpt(body)
    request_log.excerpt_chars = body.index("known-secret") + 8
    cut_in_known = request_log.excerpt(body)
    await request_log.flush()

    [row] = await stored(clean_db)
    assert row.request_excerpt == '{"name": "admin", "password": "***", "x"'
    assert (row.response_excerpt, row.error) == ("y" * 40, "z" * 40)
    assert "supersec" not in cut_in_field and cut_in_field.startswith('{"name": "admin", "password": "***"')
    assert "known-se" not in cut_in_known and cut_in_known.endswith('"x": "***"}')


async def test_purge_removes_only_rows_older_than_the_retention(clean_db: Sessions) -> None:
    sink = DatabaseSink(clean_db)
    now = datetime.now(UTC)
    await sink.write([entry(f"http://{ACU}/{age}d", now - timedelta(days=age)) for age in (20, 15, 13, 0)])
    assert await sink.purge(now - timedelta(days=14)) == 2
    assert [r.url for r in await stored(clean_db)] == [f"http://{ACU}/13d", f"http://{ACU}/0d"]

    # The background task flushes and applies the retention on its own.
    request_log = RequestLog(sink, retention=timedelta(days=10), flush_interval=0.05)
    request_log.record(system="rithum", method="get", url=f"http://{CA}/new", status=200, duration_ms=1)
    await request_log.start()
    try:
        deadline = time.monotonic() + 5
        while [r.url for r in await stored(clean_db)] != [f"http://{ACU}/0d", f"http://{CA}/new"]:
            assert time.monotonic() < deadline, [r.url for r in await stored(clean_db)]
            await asyncio.sleep(0.05)
    finally:
        await request_log.close()


async def test_a_failed_write_keeps_the_buffer_for_a_later_flush(clean_db: Sessions) -> None:
    engine = make_engine(MISSING_DATABASE_URL, pool_size=1)
    try:
        request_log = RequestLog(DatabaseSink(make_sessionmaker(engine)))
        for key in ("A", "B"):
            request_log.record(system="acumatica", method="get", url=f"http://{ACU}/{key}", status=200, duration_ms=1)
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            await request_log.flush()
        request_log.record(system="acumatica", method="get", url=f"http://{ACU}/C", status=200, duration_ms=1)
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            await request_log.flush()

        request_log.sink = DatabaseSink(clean_db)
        assert await request_log.flush() == 3
        assert [r.url for r in await stored(clean_db)] == [f"http://{ACU}/A", f"http://{ACU}/B", f"http://{ACU}/C"]
    finally:
        await engine.dispose()


# Outbound HTTP policy against a real local server ------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


class ScriptedServer(ThreadingHTTPServer):
    """Answers each request with the next scripted reply (200 `{}` once the script is used up)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.replies: deque[Reply] = deque()
        self.received: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path))
        status, headers, body = self.server.replies.popleft() if self.server.replies else (200, {}, b"{}")
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(scripted_server: ScriptedServer) -> ScriptedServer:
    scripted_server.replies.clear()
    scripted_server.received.clear()
    return scripted_server


@pytest_asyncio.fixture(loop_scope="session")
async def outbound(server: ScriptedServer) -> AsyncIterator[OutboundHTTP]:
    # A backoff this long would time the tests out: they pass only if the policy is what they say.
    http = OutboundHTTP(
        system="rithum", base_url=server.url, request_log=RequestLog.memory(), max_attempts=3, backoff_base=60
    )
    yield http
    await http.aclose()


async def test_429_is_retried_after_retry_after_and_both_attempts_are_logged(
    server: ScriptedServer, outbound: OutboundHTTP
) -> None:
    server.replies.extend([(429, {"Retry-After": "0"}, b'{"error": "slow down"}'), (200, {}, b'{"value": []}')])
    response = await asyncio.wait_for(outbound.request("GET", "/v1/Products", params={"$top": 5}), 10)
    assert response.status_code == 200 and response.json() == {"value": []}
    assert server.received == [("GET", "/v1/Products?%24top=5")] * 2
    assert outbound.request_log is not None
    logged = [(e.system, e.method, e.status, e.response_excerpt) for e in outbound.request_log.entries]
    assert logged == [("rithum", "GET", 429, '{"error": "slow down"}'), ("rithum", "GET", 200, '{"value": []}')]


async def test_429_on_a_non_idempotent_post_is_retried_too(server: ScriptedServer, outbound: OutboundHTTP) -> None:
    server.replies.append((429, {"Retry-After": "0"}, b""))
    response = await asyncio.wait_for(outbound.request("POST", "/v1/Orders", json={"a": 1}, idempotent=False), 10)
    assert response.status_code == 200
    assert server.received == [("POST", "/v1/Orders")] * 2


async def test_503_on_a_non_idempotent_post_is_not_retried(server: ScriptedServer, outbound: OutboundHTTP) -> None:
    server.replies.append((503, {}, b"busy"))
    response = await asyncio.wait_for(outbound.request("POST", "/v1/Orders", json={"a": 1}, idempotent=False), 10)
    assert response.status_code == 503
    assert server.received == [("POST", "/v1/Orders")]


async def test_503_on_get_is_retried_up_to_max_attempts(server: ScriptedServer, outbound: OutboundHTTP) -> None:
    server.replies.extend([(503, {"Retry-After": "0"}, b"busy")] * 4)
    response = await asyncio.wait_for(outbound.request("GET", "/v1/Orders"), 10)
    assert response.status_code == 503
    assert server.received == [("GET", "/v1/Orders")] * 3
    assert outbound.request_log is not None
    assert [e.status for e in outbound.request_log.entries] == [503, 503, 503]
    assert len(server.replies) == 1  # the fourth reply was never asked for


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 7 ") == 7.0
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now.timestamp()) == 30.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:01:30 GMT", now.timestamp()) == 90.0
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", now.timestamp()) == 0.0
    for useless in (None, "", "soon", "Sun, 99 Foo 2026"):
        assert retry_after_seconds(useless) is None


@pytest.mark.parametrize("per_minute", [2, 7, 60, 600, 2000])
def test_minute_limiter_never_admits_more_than_the_limit_in_any_60_s(per_minute: int) -> None:
    """Greedy callers against a simulated clock (10 ms steps over 3 minutes), timing-free."""
    clock = [0.0]
    loop = asyncio.new_event_loop()
    loop.time = lambda: clock[0]  # type: ignore[method-assign]
    limiter = minute_limiter(per_minute)
    admitted: list[float] = []

    async def greedy() -> None:
        for step in range(18_001):
            clock[0] = step / 100
            while limiter.has_capacity():
                await limiter.acquire()
                admitted.append(clock[0])

    try:
        loop.run_until_complete(greedy())
    finally:
        loop.close()
    window_start = 0
    for index, at in enumerate(admitted):
        while admitted[window_start] <= at - 60:
            window_start += 1
        assert index - window_start + 1 <= per_minute, f"{index - window_start + 1} calls in the 60 s up to {at}"
    assert len(admitted) >= 1.5 * per_minute  # and it lets at least half of the 3-minute budget through
