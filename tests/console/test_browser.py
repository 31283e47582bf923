"""The ops console in a real headless browser (Debian's Chromium driven by Playwright) against the whole
stack: both sandboxes, the ingress and the product consumer as real processes.

One scenario, in the order an operator meets the pages: sign in; the overview shows a queue's depth rising
with no consumer and turns red when its DLQ holds a message; a full product sync started from the Jobs page
finishes; the sync history filtered to Failed, two selected and processed become Processed; a dead letter
replayed is handled once; a bad configuration value and a bad mapping show their field errors and change
nothing. Each page is saved as a screenshot under docs/console/.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select, text

from shared.db.engine import make_engine, make_sessionmaker
from shared.db.models import ConsoleAudit, SyncRecord
from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.broker import purge
from tests.support.processes import ROOT, free_port, stop, wait_http
from tests.support.stack import Stack as SharedStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "docs" / "console" if os.environ.get("CONSOLE_SCREENSHOTS") else Path(tempfile.gettempdir()) / "console"
"""`CONSOLE_SCREENSHOTS=1` refreshes the README's screenshots in docs/console; otherwise they go to a
temporary directory, so a test run leaves the working tree as it was."""
TOKEN = "console-browser-token"
SECRET = "console-browser-webhook-secret"
ITEMS = 40

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (.ci/run installs it)"
)


@dataclass
class Stack(SharedStack):
    settings: Settings
    metrics_port: int = 0
    consumer: object = None

    def start_consumer(self) -> None:
        self.metrics_port = free_port()
        self.consumer = self.spawn("services.consumers", "product", "--metrics-port", str(self.metrics_port))
        wait_http(f"http://127.0.0.1:{self.metrics_port}/healthz", 30)

    def handled(self, queue: str, outcome: str = "ack") -> float:
        """The consumer's count of messages of `queue` it settled with `outcome`."""
        body = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        for line in body.splitlines():
            if line.startswith("messaging_messages_handled_total{") and f'queue="{queue}"' in line:
                if f'outcome="{outcome}"' in line:
                    return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def stack(settings: Settings, sessionmaker) -> Iterator[Stack]:
    with Stack.start(
        database_url=settings.database_url_plain,
        amqp_prefix=settings.amqp_prefix,
        token=TOKEN,
        secret=SECRET,
        extra_env={
            "ACUMATICA_REQUESTS_PER_MINUTE": "6000",
            "RITHUM_FEED_RECONCILE_SECONDS": "1",
            "JOB_HEARTBEAT_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        },
        settings=settings,
    ) as s:
        yield s
        if s.consumer is not None:
            stop(s.consumer)  # type: ignore[arg-type]


async def publish(amqp_url: str, queue: str, envelopes: list[Envelope]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for envelope in envelopes:
            message = aio_pika.Message(envelope.to_bytes(), message_id=envelope.message_id)
            await channel.default_exchange.publish(message, routing_key=queue)


def run(coro: Any) -> Any:
    """Run a coroutine from the browser scenario (Playwright's sync API owns this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_until(check, timeout: float, what: str, page: Page | None = None, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if page is not None:
            page.reload()
        time.sleep(interval)


async def test_console_in_a_browser(stack: Stack, clean_db) -> None:
    await asyncio.to_thread(wait_http, f"{stack.ingress}/readyz")
    topology = Topology(stack.amqp_prefix)
    await purge(stack.settings.amqp_url_plain, topology.queue_names())
    await asyncio.to_thread(stack.reset, ITEMS)
    await asyncio.to_thread(scenario, stack, topology)
    async with clean_db() as session:
        actions = set(await session.scalars(select(ConsoleAudit.action)))
    assert {"sign-in", "start-sync", "process", "dlq-replay"} <= actions


def scenario(stack: Stack, topology: Topology) -> None:
    amqp = stack.settings.amqp_url_plain
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(20_000)

            # Sign in: any console URL goes to the sign-in page first, and back after it.
            page.goto(f"{stack.ingress}/console/jobs")
            expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Fjobs"))
            shot(page, "login")
            page.fill("input[name=token]", "wrong")
            page.click("button[type=submit]")
            expect(page.locator("#error")).to_contain_text("not the API token")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            expect(page).to_have_url(re.compile(r"/console/jobs$"))

            # Overview: customer has no consumer; its depth rises on the page by itself, then its DLQ turns it red.
            page.goto(f"{stack.ingress}/console")
            row = page.locator('tr[data-queue="customer.records"]')
            expect(row.locator("td.ready")).to_have_text("0")
            expect(row.locator("td.consumers")).to_have_text("0")
            envelopes = [
                Envelope(entity="customer", kind="records", op="updated", key=f"C-{i}", source="test") for i in range(3)
            ]
            run(publish(amqp, topology.queue("customer", "records"), envelopes))
            expect(row.locator("td.ready")).to_have_text("3", timeout=20_000)  # auto-refresh, no reload
            expect(row).to_have_class(re.compile("bad"))
            expect(row.locator("td.state")).to_contain_text("no consumer")
            dead = Envelope(entity="customer", kind="records", op="updated", key="C-DEAD", source="test")
            run(publish(amqp, topology.dlq("customer"), [dead]))
            expect(row.locator("td.dead")).to_have_text("1", timeout=20_000)
            expect(row.locator("td.state")).to_contain_text("DLQ not empty")

            # Jobs: with the consumer running, a full product sync started from the page finishes.
            stack.start_consumer()
            page.goto(f"{stack.ingress}/console")
            product = page.locator('tr[data-queue="product.records"]')
            expect(product.locator("td.consumers")).to_have_text("1", timeout=20_000)
            expect(product).to_have_class(re.compile("good"))
            shot(page, "overview")
            page.goto(f"{stack.ingress}/console/jobs")
            form = page.locator("#start-sync")
            form.locator("select[name=entity]").select_option("product")
            form.locator("select[name=mode]").select_option("full")
            form.locator("button[type=submit]").click()
            expect(page).to_have_url(re.compile(r"/console/jobs/\d+"))
            job_id = int(re.search(r"/console/jobs/(\d+)", page.url).group(1))
            expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)  # refreshes itself
            assert int(page.locator("td.count-found").inner_text()) >= ITEMS
            shot(page, "job")
            page.goto(f"{stack.ingress}/console/jobs")
            expect(page.locator("#jobs")).to_contain_text(f"#{job_id}")
            shot(page, "jobs")

            # Sync history: three records made Failed (their hash forgotten, as after a failed write); filter to
            # Failed, select two, Process: they become Processed, the third stays Failed.
            keys = run(fail_some(stack.settings.database_url_plain, 3))
            page.goto(f"{stack.ingress}/console/history/product")
            page.locator("#history-filter select[name=status]").select_option("Failed")
            page.locator("#history-filter button[type=submit]").click()
            rows = page.locator("#records tbody tr[data-key]")
            expect(rows).to_have_count(3)
            shot(page, "history")
            for key in keys[:2]:
                page.locator(f'#records input[name=key][value="{key}"]').check()
            page.locator("#records button[type=submit]").click()
            expect(page.locator("#flash")).to_contain_text("processes 2 record(s)")
            wait_until(lambda: rows.count() == 1, 90, "two records processed", page=page)
            expect(rows.first).to_have_attribute("data-key", keys[2])
            for key in keys[:2]:
                page.goto(f"{stack.ingress}/console/history/product?key={key}")
                expect(page.locator("#records td.status")).to_have_text("Processed")

            # The live list (product): Acumatica's candidates, each with the connector's sync state.
            page.goto(f"{stack.ingress}/console/history/product?source=acumatica")
            expect(page.locator(f'#records tr[data-key="{keys[0]}"] td.status')).to_have_text("Processed")
            expect(page.locator(f'#records tr[data-key="{keys[2]}"] td.status')).to_have_text("Failed")
            shot(page, "history-live")

            # Dead letters: a product update dead-lettered earlier is replayed from the page and handled once.
            key = keys[0]
            letter = Envelope(entity="product", kind="records", op="updated", key=key, source="test")
            work = topology.queue("product", "records")
            before = stack.handled(work)
            run(publish(amqp, topology.dlq("product"), [letter]))
            page.goto(f"{stack.ingress}/console/dlq/product")
            line = page.locator(f'#dead-letters tr[data-id="{letter.message_id}"]')
            expect(line).to_contain_text(key)
            shot(page, "dead-letters")
            line.locator("input[name=id]").check()
            page.locator("#dead-letters button", has_text="Replay selected").click()
            expect(page.locator("#flash")).to_contain_text("Replayed 1")
            expect(page.locator("#dead-letters")).to_contain_text("The DLQ is empty")
            wait_until(lambda: stack.handled(work) >= before + 1, 30, "the replayed message handled")
            time.sleep(2)  # a second delivery would show by now
            assert stack.handled(work) == before + 1
            page.goto(f"{stack.ingress}/console/dlq/product")
            expect(page.locator("#dead-letters")).to_contain_text("The DLQ is empty")

            # Discard asks first.
            page.goto(f"{stack.ingress}/console/dlq/customer")
            page.locator("#dead-letters input[name=id]").first.check()
            page.locator("#dead-letters button", has_text="Discard selected").click()
            expect(page.locator("#confirm-discard")).to_be_visible()
            page.locator("#confirm-discard button").click()
            expect(page.locator("#flash")).to_contain_text("Discarded 1")

            # Request logs: search by the record, open one with its redacted request and response.
            page.goto(f"{stack.ingress}/console/logs?system=rithum")
            expect(page.locator("table.grid tbody tr").first).to_contain_text("rithum")
            shot(page, "request-logs")
            page.locator("table.grid tbody tr a").first.click()
            expect(page.locator("#response-body")).to_be_visible()
            assert "sandbox-secret" not in page.content()
            shot(page, "request-log")

            # Settings: a bad value shows the field error and changes nothing.
            with stack.api() as api:
                config_before = api.get("/config").json()
                mappings_before = api.get("/mappings/item_class").json()
            page.goto(f"{stack.ingress}/console/settings")
            page.fill("#config input[name=max_attempts]", "0")
            page.click("#config button[type=submit]")
            expect(page.locator('.field-error[data-field="max_attempts"]')).to_contain_text(
                "greater than or equal to 1"
            )
            page.goto(f"{stack.ingress}/console/settings")
            page.fill("#mappings-item_class textarea", '[{"source": "", "target": "Electronics"}]')
            page.click("#mappings-item_class button[type=submit]")
            expect(page.locator('.field-error[data-field="mapping_item_class"]')).to_contain_text("source")
            shot(page, "settings")
            with stack.api() as api:
                assert api.get("/config").json() == config_before
                assert api.get("/mappings/item_class").json() == mappings_before

            page.goto(f"{stack.ingress}/console/audit")
            expect(page.locator("table.grid")).to_contain_text("dlq-replay")
            shot(page, "audit")

            # Signing out ends the session.
            page.goto(f"{stack.ingress}/console")
            page.click("header button.link")
            page.goto(f"{stack.ingress}/console/settings")
            expect(page).to_have_url(re.compile(r"/console/login"))
        finally:
            browser.close()


async def fail_some(database_url: str, count: int) -> list[str]:
    """Mark `count` processed product records Failed, as a failed write leaves them (no stored hash)."""
    engine = make_engine(database_url)
    try:
        return await _fail_some(make_sessionmaker(engine), count)
    finally:
        await engine.dispose()


async def _fail_some(sessionmaker: Any, count: int) -> list[str]:
    async with sessionmaker() as session, session.begin():
        keys = list(
            await session.scalars(
                select(SyncRecord.acumatica_key)
                .where(
                    SyncRecord.entity == "product", SyncRecord.status == "Processed", SyncRecord.kind == "standalone"
                )
                .order_by(SyncRecord.acumatica_key)
                .limit(count)
            )
        )
        assert len(keys) == count, keys
        await session.execute(
            text(
                "UPDATE sync_records SET status = 'Failed', last_error = 'injected by the test', content_hash = NULL, "
                "attempt_count = 1, updated_at = :now WHERE entity = 'product' AND acumatica_key = ANY(:keys)"
            ),
            {"keys": keys, "now": datetime.now(UTC)},
        )
    return keys
