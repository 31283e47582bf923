"""`POST /webhooks/acumatica`: Acumatica push notifications in, one confirmed message per record out.

The answer is 2xx only once every message is confirmed by the broker or sits durably in the
outbox; otherwise 503, so Acumatica resends (it tries up to five times).
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError

from services.ingress.auth import constant_time_equal
from services.ingress.runtime import Runtime
from shared import outbox
from shared.messaging.publisher import PublishError
from shared.notifications import NotificationError, PushNotification, describe, entity_for, split

log = logging.getLogger("connector.ingress.webhooks")
router = APIRouter()
WEBHOOKS = Counter("connector_webhooks_total", "Acumatica push notifications", ["outcome"])


def problem(code: int, message: str, **extra: object) -> JSONResponse:
    WEBHOOKS.labels(str(code)).inc()
    return JSONResponse({"error": message, **extra}, status_code=code)


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds `limit` bytes (without reading the rest into memory)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/acumatica", status_code=status.HTTP_202_ACCEPTED, tags=["webhooks"])
async def acumatica_push(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not constant_time_equal(
        request.headers.get(settings.webhook_header), settings.webhook_secret.get_secret_value()
    ):
        return problem(401, f"missing or wrong {settings.webhook_header} header")
    body = await read_limited(request, settings.webhook_max_bytes)
    if body is None:
        return problem(413, f"notification larger than {settings.webhook_max_bytes} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problem(422, f"body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return problem(422, "body must be a JSON object with Query, Id, Inserted and Deleted")
    try:
        notification = PushNotification.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        return problem(422, "not an Acumatica push notification", details=details)
    config = await runtime.config.get()
    entity = entity_for(notification.query, config.query_map)
    if entity is None:
        return problem(422, f"unknown Query {notification.query.strip()!r}", known_queries=sorted(config.query_map))
    try:
        envelopes = split(notification, entity)
    except NotificationError as exc:
        return problem(422, str(exc))

    counts = describe(envelopes)
    if notification.id in runtime.recent:
        WEBHOOKS.labels("duplicate").inc()
        return JSONResponse({"accepted": len(envelopes), "duplicate": True, **counts}, status_code=202)
    queued = False
    try:
        await runtime.publisher.publish_many(envelopes)
    except PublishError as exc:
        log.warning("broker did not confirm notification %s (%s); keeping it in the outbox", notification.id, exc)
        try:
            async with runtime.sessionmaker() as session, session.begin():
                await outbox.add(session, envelopes)
        except Exception as db_exc:
            log.error("notification %s neither published nor stored: %s", notification.id, db_exc)
            return problem(503, "broker and database unavailable; retry later")
        queued = True
    runtime.recent.add(notification.id)
    WEBHOOKS.labels("queued" if queued else "published").inc()
    log.info("notification %s (%s → %s): %s", notification.id, notification.query.strip(), entity, counts)
    return JSONResponse(
        {"accepted": len(envelopes), "entity": entity, "queued_in_outbox": queued, **counts}, status_code=202
    )
