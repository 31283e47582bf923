"""Queue figures on a bare RabbitMQ: depth and consumers over AMQP, the management API never required.

The ingress here is pointed at a closed port for the management API (as on a broker without the plugin).
"""

from __future__ import annotations

import asyncio
import json
import re

import aio_pika

from shared.messaging.envelope import Envelope
from shared.messaging.topology import ENTITIES, Topology
from tests.console.conftest import Ingress
from tests.support.processes import free_port

INGRESS_ENV = {"RABBITMQ_MANAGEMENT_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens there


async def publish(amqp_url: str, queue: str, count: int, entity: str = "customer", kind: str = "records") -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for i in range(count):
            envelope = Envelope(entity=entity, kind=kind, op="upsert", key=f"Q-{i}", source="test")
            await channel.default_exchange.publish(aio_pika.Message(envelope.to_bytes()), routing_key=queue)


async def test_figures_without_the_management_api(ingress: Ingress) -> None:
    topology = Topology(ingress.settings.amqp_prefix)
    amqp = ingress.settings.amqp_url_plain
    await publish(amqp, topology.queue("customer", "records"), 3)
    await publish(amqp, topology.dlq("customer"), 2)
    await publish(amqp, topology.retry_queue("customer", "records", 300), 1)

    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.queue("category", "jobs"), ensure=False)
        await queue.consume(lambda m: asyncio.sleep(0), no_ack=False)  # one consumer, takes nothing we count

        with ingress.api() as api:
            response = api.get("/api/v1/queues")
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["management"].startswith("unavailable")
    assert set(body["entities"]) == set(ENTITIES)
    customer = body["entities"]["customer"]
    assert customer["ready"] == 3 and customer["dead_lettered"] == 2 and customer["retrying"] == 1
    assert customer["consumers"] == 0 and customer["unacked"] is None
    assert body["entities"]["category"]["consumers"] == 1
    by_name = {q["name"]: q for q in body["queues"]}
    assert by_name[topology.queue("customer", "records")]["ready"] == 3
    assert by_name[topology.dlq("customer")]["kind"] == "dlq"
    assert by_name[topology.queue("category", "jobs")]["consumers"] == 1
    assert {topology.queue(e, k) for e in ENTITIES for k in ("records", "jobs")} <= set(by_name)


async def test_metrics_export_per_queue_gauges(ingress: Ingress) -> None:
    topology = Topology(ingress.settings.amqp_prefix)
    await publish(ingress.settings.amqp_url_plain, topology.queue("shipment", "records"), 4, entity="shipment")
    await publish(ingress.settings.amqp_url_plain, topology.dlq("shipment"), 1, entity="shipment")
    await asyncio.sleep(1.1)  # past the figures' cache
    with ingress.api() as api:
        text = api.get("/metrics").text
    work = topology.queue("shipment", "records")
    ready = re.search(rf'connector_queue_messages_ready\{{[^}}]*queue="{re.escape(work)}"[^}}]*\}} (\S+)', text)
    consumers = re.search(rf'connector_queue_consumers\{{[^}}]*queue="{re.escape(work)}"[^}}]*\}} (\S+)', text)
    dead = re.search(r'connector_dlq_messages\{entity="shipment"\} (\S+)', text)
    assert ready and float(ready.group(1)) == 4, json.dumps(text[-2000:])
    assert consumers and float(consumers.group(1)) == 0
    assert dead and float(dead.group(1)) == 1
