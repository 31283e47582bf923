"""A real consumer process with `--metrics-port`: /healthz says whether its consumers are connected, and
the /metrics counters move as it handles messages."""

from __future__ import annotations

import aio_pika
import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.messaging.envelope import Envelope
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.messaging.helpers import eventually
from tests.support.processes import free_port, service


def sample(url: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return found.value
    return None


async def test_a_consumer_process_serves_health_and_its_counters_move(settings: Settings, clean_db) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    topology = Topology(settings.amqp_prefix)
    queue = topology.queue("product", "writeback")
    env = {"DATABASE_URL": settings.database_url_plain, "AMQP_PREFIX": settings.amqp_prefix}
    args = ["services.consumers", "product", "--queues", "writeback", "--metrics-port", str(port)]
    with service(args, f"{url}/healthz", env=env, timeout=60):  # 503 until the consumer is connected
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok", "checks": {"product-writeback": True}})
        assert sample(url, "connector_target_circuit_open", target="acumatica") == 0

        empty = Envelope(entity="product", kind="writeback", op="put", source="test", payload={"items": []})
        async with Publisher(settings.amqp_url_plain, topology) as publisher:
            await publisher.publish(empty)  # nothing to write back: acked
        async with await aio_pika.connect(settings.amqp_url_plain) as connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(aio_pika.Message(b"{oops"), routing_key=queue)  # dead-lettered

        def counted(outcome: str) -> bool:
            return sample(url, "messaging_messages_handled_total", queue=queue, outcome=outcome) == 1

        await eventually(lambda: counted("ack") and counted("dead_letter"), timeout=30, what="both counted")
        assert sample(url, "messaging_handler_duration_seconds_count", queue=queue) == 1
