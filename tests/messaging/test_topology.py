"""Topology names, and idempotent declaration with the arguments the runtime relies on."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest
from aio_pika.abc import AbstractChannel

from shared.messaging.consumer import ConsumerConfig
from shared.messaging.topology import ENTITIES, Topology


def test_names_follow_the_documented_layout() -> None:
    topology = Topology("connector")
    assert topology.events_exchange == "connector.events"
    assert topology.queue("sales_order", "records") == "connector.sales_order.records"
    assert topology.dlq("shipment") == "connector.shipment.dlq"
    assert topology.retry_queue("product", "jobs", 5) == "connector.product.jobs.retry.5s"
    assert topology.retry_queue("product", "jobs", 0.25) == "connector.product.jobs.retry.250ms"
    assert topology.routing_key("product", "records", "upsert") == "product.records.upsert"
    assert topology.parse_queue("connector.sales_order.jobs") == ("sales_order", "jobs")
    assert topology.queue("product", "writeback") == "connector.product.writeback"
    assert topology.parse_queue("connector.product.writeback") == ("product", "writeback")
    # per entity: a DLQ, and per kind a work queue and three delay tiers; only product writes back
    assert len(topology.queue_names()) == len(ENTITIES) * (1 + 2 * 4) + 4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.queue("invoice", "records"), "unknown entity 'invoice'"),
        (lambda t: t.queue("product", "bulk"), "unknown kind 'bulk'"),
        (lambda t: t.parse_queue("other.product.records"), "is not a work queue"),
        (lambda t: t.parse_queue("connector.product.dlq"), "is not a work queue"),
        (lambda t: t.queue("customer", "writeback"), "unknown kind 'writeback' for customer"),
        (lambda t: t.parse_queue("connector.customer.writeback"), "is not a work queue"),
        (lambda t: Topology("x", retry_delays=(0,)), "at least 1 ms"),
    ],
)
def test_bad_names_are_refused(call: Callable[[Topology], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(Topology("connector"))


def test_consumer_config_reports_every_problem() -> None:
    with pytest.raises(ValueError) as caught:
        ConsumerConfig(prefetch=0, batch_size=0, batch_window_ms=-1, max_attempts=0, retry_delays=())
    text = str(caught.value)
    for problem in ("prefetch", "batch_size", "batch_window_ms", "max_attempts", "retry_delays"):
        assert f"{problem} must" in text


def test_a_batch_never_exceeds_the_prefetch() -> None:
    assert ConsumerConfig(prefetch=5, batch_size=50, batch_window_ms=0, max_attempts=1).batch_limit == 5
    assert ConsumerConfig(prefetch=100, batch_size=50, batch_window_ms=0, max_attempts=1).batch_limit == 50


async def test_declare_is_idempotent_and_sets_quorum_arguments(
    topology: Topology, channel: AbstractChannel, management: httpx.AsyncClient
) -> None:
    await topology.declare(channel)
    await topology.declare(channel)  # again: no error, nothing changes

    async def arguments(name: str) -> dict:
        response = await management.get(f"/api/queues/%2F/{quote(name, safe='')}")
        assert response.status_code == 200, name
        return response.json()["arguments"]

    work = await arguments(topology.queue("product", "records"))
    assert work == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 10,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.dlq("product"),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    tier = await arguments(topology.retry_queue("product", "records", 0.4))
    assert tier["x-message-ttl"] == 400
    assert tier["x-dead-letter-routing-key"] == topology.queue("product", "records")
    assert (await arguments(topology.dlq("product")))["x-queue-type"] == "quorum"
    for name in topology.queue_names():
        await arguments(name)
