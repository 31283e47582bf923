"""With RabbitMQ unreachable the queue figures say so (503), and /metrics still answers."""

from __future__ import annotations

from contextlib import closing

from tests.console.conftest import Ingress
from tests.support.processes import free_port

INGRESS_ENV = {"AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}  # nothing listens there


async def test_no_broker_is_a_503_not_a_500(ingress: Ingress) -> None:
    with ingress.api() as api:
        response = api.get("/api/v1/queues")
        assert response.status_code == 503 and "not reachable" in response.json()["error"]
        assert api.get("/metrics").status_code == 200
    client, _ = ingress.signed_in()
    with closing(client):
        page = client.get("/console")
        assert page.status_code == 200 and "not reachable" in page.text
