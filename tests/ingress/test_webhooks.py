"""Acumatica push notifications through the real ingress process into the real broker."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from tests.ingress.conftest import SECRET, Ingress
from tests.support.broker import drain, queues


def notification(inserted=(), deleted=(), query="RithumProducts", notification_id=None) -> dict:
    return {
        "Inserted": list(inserted),
        "Deleted": list(deleted),
        "Query": query,
        "CompanyId": "Company",
        "Id": notification_id or str(uuid.uuid4()),
        "TimeStamp": 638465233453014192,
        "AdditionalInfo": {"PXPerformanceInfoStartTime": "03/20/2025 09:22:24"},
    }


def post(ingress: Ingress, body, secret: str | None = SECRET, **kwargs):
    headers = {"Authorization": secret} if secret is not None else {}
    with ingress.client(token=None) as client:
        if isinstance(body, dict | list):
            return client.post("/webhooks/acumatica", json=body, headers=headers, **kwargs)
        return client.post("/webhooks/acumatica", content=body, headers=headers, **kwargs)


def records_queue(ingress: Ingress, entity: str = "product") -> str:
    return Topology(ingress.settings.amqp_prefix).queue(entity, "records")


async def test_notification_becomes_one_message_per_record(ingress: Ingress) -> None:
    body = notification(
        inserted=[
            {"InventoryID": "AALEGO500 ", "Description": "Lego, 500 piece set", "ItemClass": "TOYS"},
            {"InventoryID": "NEWITEM", "Description": "Brand new"},
        ],
        deleted=[
            {"InventoryID": "AALEGO500", "Description": "Lego, 499 piece set", "ItemClass": "TOYS"},
            {"InventoryID": "GONE  ", "Description": "Removed"},
        ],
    )
    response = post(ingress, body)
    assert response.status_code == 202, response.text
    assert response.json() | {} == {
        "accepted": 3,
        "entity": "product",
        "queued_in_outbox": False,
        "inserted": 1,
        "updated": 1,
        "deleted": 1,
    }
    messages = await drain(ingress.settings.amqp_url_plain, records_queue(ingress), expect=3)
    envelopes = {Envelope.from_bytes(m.body).key: (m, Envelope.from_bytes(m.body)) for m in messages}
    assert set(envelopes) == {"AALEGO500", "NEWITEM", "GONE"}
    message, updated = envelopes["AALEGO500"]
    assert updated.op == "updated" and updated.entity == "product" and updated.kind == "records"
    assert updated.payload["row"]["Description"] == "Lego, 500 piece set"
    assert updated.payload["previous"]["Description"] == "Lego, 499 piece set"
    assert updated.correlation_id == body["Id"] == message.correlation_id
    assert message.message_id == updated.message_id
    assert message.delivery_mode == 2  # persistent
    assert envelopes["NEWITEM"][1].op == "inserted" and envelopes["NEWITEM"][1].payload["previous"] is None
    assert envelopes["GONE"][1].op == "deleted" and envelopes["GONE"][1].payload["row"] is None


async def test_query_name_picks_the_entity(ingress: Ingress) -> None:
    body = notification(
        inserted=[{"Warehouse": "MAIN ", "InventoryID": "AALEGO500", "QtyAvailable": 1976}],
        query="RithumAvailability",
    )
    assert post(ingress, body).status_code == 202
    messages = await drain(ingress.settings.amqp_url_plain, records_queue(ingress, "inventory"), expect=1)
    assert Envelope.from_bytes(messages[0].body).payload["row"]["Warehouse"] == "MAIN"


async def test_same_notification_twice_is_published_once(ingress: Ingress) -> None:
    body = notification(inserted=[{"InventoryID": "DUP-1"}])
    first, second = post(ingress, body), post(ingress, body)
    assert first.status_code == second.status_code == 202
    assert second.json()["duplicate"] is True
    messages = await drain(ingress.settings.amqp_url_plain, records_queue(ingress), idle=1.0)
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("secret", "status"),
    [(None, 401), ("wrong-secret", 401), (SECRET[:-1], 401), (SECRET + "x", 401)],
)
async def test_wrong_or_missing_secret_is_401_and_publishes_nothing(ingress: Ingress, secret, status) -> None:
    response = post(ingress, notification(inserted=[{"InventoryID": "X"}]), secret=secret)
    assert response.status_code == status
    assert "Authorization" in response.json()["error"]
    assert SECRET not in response.text
    assert await drain(ingress.settings.amqp_url_plain, records_queue(ingress), idle=0.5) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"Inserted": [], "Deleted": []}).encode(), "Query"),
        (json.dumps(notification(inserted=[{"InventoryID": "X"}], query="NoSuchQuery")).encode(), "unknown Query"),
        (json.dumps(notification(inserted=[{"Description": "no key"}])).encode(), "InventoryID"),
        (json.dumps(notification(inserted=[{"InventoryID": "   "}])).encode(), "InventoryID"),
        (json.dumps(notification(inserted=["not an object"])).encode(), "Inserted"),
    ],
)
async def test_malformed_notifications_are_422_with_a_reason(ingress: Ingress, body: bytes, fragment: str) -> None:
    response = post(ingress, body)
    assert response.status_code == 422
    assert fragment in json.dumps(response.json())
    assert await drain(ingress.settings.amqp_url_plain, records_queue(ingress), idle=0.3) == []


async def test_oversize_body_is_413(ingress: Ingress) -> None:
    rows = [{"InventoryID": f"ITEM{i}", "Description": "x" * 200} for i in range(6000)]
    response = post(ingress, notification(inserted=rows))
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert await drain(ingress.settings.amqp_url_plain, records_queue(ingress), idle=0.3) == []


async def test_topology_is_declared_with_quorum_queues(ingress: Ingress) -> None:
    names = queues(ingress.settings.amqp_prefix)
    topology = Topology(ingress.settings.amqp_prefix)
    for name in topology.queue_names():
        assert name in names
