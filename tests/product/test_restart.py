"""`make run` twice in a row lists the demo catalogue both times.

The sandboxes keep their data in memory, so a restarted stack has an empty Rithum; `make run` clears the
connector's sync state as it starts them (deploy/state.py), or the second full sync would skip every
product as already synced.
"""

from __future__ import annotations

import signal

from deploy.state import reset_sync_state
from shared.settings import Settings
from tests.product.catalog import expected, rithum_products
from tests.product.conftest import SECRET, TOKEN, Stack


def full_sync_lists_the_catalogue(settings: Settings) -> tuple[int, dict]:
    with Stack.start(
        database_url=settings.database_url_plain,
        amqp_prefix=settings.amqp_prefix,
        token=TOKEN,
        secret=SECRET,
        extra_env={"ACUMATICA_REQUESTS_PER_MINUTE": "6000", "RITHUM_FEED_RECONCILE_SECONDS": "1"},
        settings=settings,
    ) as stack:
        stack.start_consumer()
        try:
            stack.reset(items=60)
            want = expected(stack)
            eligible = want["standalone"] | want["parent"] | set(want["child"]) | set(want["bundle"])
            job = stack.run_job("full")
            listed = {p["Sku"] for p in rithum_products(stack)}
            assert listed == eligible, (len(listed), len(eligible))
            return len(eligible), job
        finally:
            stack.kill_consumer(signal.SIGTERM)


async def test_two_starts_in_a_row_list_the_catalogue_both_times(settings: Settings, clean_db) -> None:
    first, job = full_sync_lists_the_catalogue(settings)
    assert job["counts"]["processed"] == first
    await reset_sync_state(settings.database_url_plain)  # what `make run` does before starting the stack
    again, job = full_sync_lists_the_catalogue(settings)
    counts = job["counts"]
    assert again == first and counts["processed"] == first and counts["skipped"] == counts["recreated"] == 0, job
