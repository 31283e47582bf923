"""Publisher against the real broker: confirmed delivery with full properties, unroutable raised."""

from __future__ import annotations

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher, PublishError, Unroutable
from shared.messaging.topology import Topology
from tests.messaging.helpers import drain, envelope


async def test_publish_routes_a_persistent_message_with_its_ids(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    sent = envelope("AALEGO500", correlation_id="corr-7", payload={"qty": 4})
    async with Publisher(amqp_url, topology, name="test-publisher") as publisher:
        await publisher.publish(sent)

    [message] = await drain(channel, topology.queue("product", "records"))
    assert Envelope.from_bytes(message.body) == sent
    assert message.message_id == sent.message_id
    assert message.correlation_id == "corr-7"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.type == "product.records.upsert"
    assert message.routing_key == "product.records.upsert"
    assert message.headers["x-envelope-version"] == 1
    assert message.headers["x-key"] == "AALEGO500"


async def test_publish_many_confirms_all_and_jobs_go_to_the_jobs_queue(
    amqp_url: str, topology: Topology, channel: AbstractChannel
) -> None:
    records = [envelope(f"item-{i}") for i in range(20)]
    job = Envelope(entity="product", kind="jobs", op="run", source="scheduler", payload={"mode": "delta"})
    async with Publisher(amqp_url, topology) as publisher:
        await publisher.publish_many([*records, job])

    received = await drain(channel, topology.queue("product", "records"))
    assert sorted(m.message_id for m in received) == sorted(e.message_id for e in records)
    [job_message] = await drain(channel, topology.queue("product", "jobs"))
    assert job_message.message_id == job.message_id


async def test_unroutable_message_raises(amqp_url: str, topology: Topology) -> None:
    # The test topology only declares product queues: nothing is bound for category.
    stray = Envelope(entity="category", kind="records", op="upsert", source="test")
    async with Publisher(amqp_url, topology) as publisher:
        with pytest.raises(Unroutable, match=r"category\.records\.upsert"):
            await publisher.publish(stray)
        with pytest.raises(Unroutable, match="1 of 2 messages not confirmed"):
            await publisher.publish_many([envelope("fine"), stray])
        await publisher.publish(envelope("still-usable"))


async def test_publish_before_start_is_an_error(amqp_url: str, topology: Topology) -> None:
    with pytest.raises(PublishError, match="not started"):
        await Publisher(amqp_url, topology).publish(envelope("x"))


async def test_start_against_no_broker_raises_publish_error(topology: Topology) -> None:
    with pytest.raises(PublishError, match="could not start"):
        await Publisher("amqp://guest:guest@127.0.0.1:1/", topology).start()
