"""After a feed file, a product the update-time query did not show is found by its SKU, not failed.

The pipeline runs in the test process against the stack's sandboxes; its update-time mark is moved
past every product, as a Rithum clock behind ours (or a feed processed out of order) would leave it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.consumers.context import ConsumerContext
from services.consumers.product.consumer import ProductConsumer
from shared.db.models import SyncStatus
from shared.settings import Settings
from tests.product.catalog import expected, rithum_products
from tests.product.conftest import Stack


async def test_products_the_time_query_missed_are_found_by_sku(fresh: Stack, clean_db) -> None:
    fresh.reset(items=40)
    standalone = sorted(expected(fresh)["standalone"])
    assert len(standalone) >= 3, "the seeded catalogue has eligible standalone items"
    env = fresh.env
    settings = Settings(
        database_url=env["DATABASE_URL"],
        amqp_prefix=env["AMQP_PREFIX"],
        acumatica_url=env["ACUMATICA_URL"],
        rithum_api_url=env["RITHUM_API_URL"],
        rithum_ftp_url=env["RITHUM_FTP_URL"],
        rithum_feed_poll_seconds=0.2,
    )
    ctx = await ConsumerContext.build(settings, "feed-id-test")
    try:
        consumer = ProductConsumer(ctx)
        rules, _, _ = await consumer._rules()
        units = await consumer.source.resolve(standalone)
        consumer.pipeline._feed_mark = datetime.now(UTC) + timedelta(days=1)  # the time query will see nothing
        outcomes, _ = await consumer.pipeline.sync(units, rules, feed_threshold=1)  # one feed for them all
    finally:
        await ctx.close()

    on_rithum = {p["Sku"]: p["ID"] for p in rithum_products(fresh)}
    assert {o.key: o.status for o in outcomes} == dict.fromkeys(standalone, SyncStatus.PROCESSED), [
        (o.key, o.error) for o in outcomes
    ]
    assert {o.key: int(o.rithum_id) for o in outcomes} == {sku: on_rithum[sku] for sku in standalone}
