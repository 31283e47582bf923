"""Console actions over HTTP against a real ingress and broker (no consumer): each does what the API does,
says why when it cannot, and is audited."""

from __future__ import annotations

import re
from contextlib import closing
from datetime import UTC, datetime

import aio_pika
from sqlalchemy import select

from shared.db.models import ConsoleAudit, RequestLogRow, SyncRecord
from shared.messaging.envelope import Envelope
from shared.messaging.topology import Topology
from tests.console.conftest import Ingress


async def last_audit(sessionmaker) -> ConsoleAudit | None:
    async with sessionmaker() as session:
        return await session.scalar(select(ConsoleAudit).order_by(ConsoleAudit.id.desc()).limit(1))


async def test_start_and_cancel_a_job(ingress: Ingress, clean_db) -> None:
    client, csrf = ingress.signed_in()
    with closing(client):
        refused = client.post("/console/jobs", data={"entity": "product", "mode": "custom", "csrf_token": csrf})
        assert refused.status_code == 422 and "needs both" in refused.text
        started = client.post(
            "/console/jobs", data={"entity": "category", "mode": "full", "force": "on", "csrf_token": csrf}
        )
        assert started.status_code == 303
        job_id = int(re.search(r"/console/jobs/(\d+)", started.headers["location"]).group(1))
        page = client.get(f"/console/jobs/{job_id}")
        assert page.status_code == 200 and 'id="job-status"' in page.text and "Cancel" in page.text
        with ingress.api() as api:
            job = api.get(f"/api/v1/jobs/{job_id}").json()
            assert job["entity"] == "category" and job["mode"] == "full" and job["force"] is True
        audit = await last_audit(clean_db)
        assert audit and audit.action == "start-sync" and audit.details["job_id"] == job_id

        cancelled = client.post(f"/console/jobs/{job_id}/cancel", data={"csrf_token": csrf})
        assert cancelled.status_code == 303 and "cancelled" in cancelled.headers["location"]
        with ingress.api() as api:
            assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
        again = client.post(f"/console/jobs/{job_id}/cancel", data={"csrf_token": csrf}, follow_redirects=True)
        assert again.status_code == 200 and "Cancel</button>" not in again.text  # ended: no Cancel button
        jobs = client.get("/console/jobs?entity=category")
        assert f"#{job_id}" in jobs.text


async def test_history_search_process_all_and_request_logs(ingress: Ingress, clean_db) -> None:
    now = datetime.now(UTC)
    async with clean_db() as session, session.begin():
        for key, status in (("K-1", "Failed"), ("K-2", "Failed"), ("K-3", "Processed")):
            session.add(SyncRecord(entity="customer", acumatica_key=key, status=status, last_error="boom " + key))
        session.add(
            RequestLogRow(
                created_at=now,
                system="rithum",
                method="POST",
                url="http://rithum/v1/Products",
                status=400,
                duration_ms=12.0,
                entity="customer",
                record_key="K-1",
                request_excerpt='{"token": "***"}',
                response_excerpt='{"error": "bad"}',
            )
        )
    client, csrf = ingress.signed_in()
    with closing(client):
        failed = client.get("/console/history/customer?status=Failed")
        assert failed.status_code == 200
        assert re.findall(r'data-key="([^"]+)"', failed.text) == ["K-1", "K-2"]
        found = client.get("/console/history/customer?key=K-3")
        assert re.findall(r'data-key="([^"]+)"', found.text) == ["K-3"]
        bad_date = client.get("/console/history/customer?since=yesterday")
        assert "Unreadable date" in bad_date.text

        started = client.post(
            "/console/history/customer/process-all",
            data={"status": "Failed", "csrf_token": csrf, "query_string": "status=Failed"},
        )
        assert started.status_code == 303 and "processes+2+record" in started.headers["location"]
        audit = await last_audit(clean_db)
        assert audit and audit.action == "process-all" and audit.target == "customer"
        with ingress.api() as api:
            job = api.get(f"/api/v1/jobs/{audit.details['job_id']}").json()
            assert job["mode"] == "selected"
        nothing = client.post("/console/history/customer/process", data={"csrf_token": csrf})
        assert nothing.status_code == 303 and "Select+at+least+one" in nothing.headers["location"]

        logs = client.get("/console/logs?entity=customer&record_key=K-1&errors_only=on")
        ids = re.findall(r'href="/console/logs/(\d+)"', logs.text)
        assert len(ids) == 1
        detail = client.get(f"/console/logs/{ids[0]}")
        assert detail.status_code == 200 and "http://rithum/v1/Products" in detail.text and "***" in detail.text
        assert "must be a whole number" in client.get("/console/logs?job_id=abc").text


async def test_discard_asks_first(ingress: Ingress, clean_db) -> None:
    topology = Topology(ingress.settings.amqp_prefix)
    letters = [
        Envelope(entity="inventory", kind="records", op="updated", key=f"I-{i}", source="test") for i in range(2)
    ]
    connection = await aio_pika.connect(ingress.settings.amqp_url_plain)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for e in letters:
            message = aio_pika.Message(e.to_bytes(), message_id=e.message_id)
            await channel.default_exchange.publish(message, routing_key=topology.dlq("inventory"))
    client, csrf = ingress.signed_in()
    with closing(client):
        listed = client.get("/console/dlq/inventory")
        assert all(e.message_id in listed.text for e in letters) and "2 dead letter(s)" in listed.text
        question = client.post("/console/dlq/inventory/discard", data={"id": letters[0].message_id, "csrf_token": csrf})
        assert question.status_code == 200 and 'id="confirm-discard"' in question.text
        assert "2 dead letter(s)" in client.get("/console/dlq/inventory").text  # nothing removed by asking
        done = client.post(
            "/console/dlq/inventory/discard",
            data={"id": letters[0].message_id, "confirm": "yes", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert "Discarded 1" in done.text and "1 dead letter(s)" in done.text
        assert letters[1].message_id in done.text and letters[0].message_id not in done.text
    audit = await last_audit(clean_db)
    assert audit and audit.action == "dlq-discard" and audit.details["discarded"] == [letters[0].message_id]


async def test_unstorable_input_is_a_422_not_a_500(ingress: Ingress) -> None:
    client, csrf = ingress.signed_in()
    with closing(client):
        for path in (
            "/console/history/customer?key=A%00B",
            "/console/logs?record_key=%00",
            f"/console/jobs/{2**63}",
            f"/console/logs/{2**63}",
            f"/console/history/customer?offset={2**63}",
        ):
            assert client.get(path).status_code == 422, path
        response = client.post("/console/history/customer/process", data={"key": "A\x00B", "csrf_token": csrf})
        assert response.status_code == 422
