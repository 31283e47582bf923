"""`POST /webhooks/acumatica`: Acumatica push notifications in, one confirmed message per record out.

The answer is 2xx only once every message is confirmed by the broker or sits durably in the
outbox; otherwise 503, so Acumatica resends (it tries up to five times).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError

from services.ingress.auth import constant_time_equal
from services.ingress.guards import (
    CLOSE,
    CONTROL,
    BadInput,
    ClientGone,
    TooLarge,
    declared_length,
    load_json,
    read_body,
)
from services.ingress.runtime import Runtime
from shared import outbox
from shared.messaging.publisher import PublishError
from shared.notifications import (
    NotificationError,
    PushNotification,
    describe,
    entity_for,
    record_key,
    split,
    trim,
)
from shared.settings import Settings

log = logging.getLogger("connector.ingress.webhooks")
router = APIRouter()
WEBHOOKS = Counter("connector_webhooks_total", "Acumatica push notifications", ["outcome"])


KEY_MAX_CHARS = 128  # sync_records.acumatica_key
ID_MAX_BYTES = 255  # the Id becomes the messages' correlation_id, an AMQP short string
OUTBOX_TIMEOUT_SECONDS = 5.0  # a database that does not answer must not hold the sender until it gives up


class TooManyRows(NotificationError):
    pass


def problem(code: int, message: str, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    WEBHOOKS.labels(str(code)).inc()
    return JSONResponse({"error": message, **extra}, status_code=code, headers=headers)


async def read_notification(request: Request, settings: Settings) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the 4xx that refuses it (too large, too slow, unusable JSON)."""
    limit = settings.webhook_max_bytes
    try:
        if (declared_length(request.scope) or 0) > limit:
            raise TooLarge
        body = await read_body(request.receive, limit, settings.ingress_body_timeout_seconds)
    except TooLarge:
        return problem(413, f"notification larger than {limit} bytes")
    except TimeoutError:
        timeout = settings.ingress_body_timeout_seconds
        return problem(408, f"notification not received within {timeout:g} s", headers=CLOSE)
    except ClientGone:
        return problem(400, "client disconnected")
    try:
        data = load_json(body)
    except BadInput as exc:
        return problem(422, f"unusable notification: {exc}")
    except ValueError as exc:
        return problem(422, f"body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return problem(422, "body must be a JSON object with Query, Id, Inserted and Deleted")
    return data


def check_notification(notification: PushNotification, entity: str, max_records: int) -> None:
    """NotificationError for what would break further in: an Id too long for a message property, a key
    longer than the sync-record column or with control characters (a NUL cannot be stored), too many rows."""
    if len(notification.id.encode()) > ID_MAX_BYTES or CONTROL.search(notification.id):
        raise NotificationError(f"Id must be at most {ID_MAX_BYTES} bytes (UTF-8) without control characters")
    for name, rows in (("Inserted", notification.inserted), ("Deleted", notification.deleted)):
        if len(rows) > max_records:
            raise TooManyRows(f"{name} has {len(rows)} rows; at most {max_records} (WEBHOOK_MAX_RECORDS)")
        for index, row in enumerate(rows):
            key = record_key(entity, trim(row))
            if len(key) > KEY_MAX_CHARS:
                raise NotificationError(f"{name}[{index}]: key of {len(key)} characters; at most {KEY_MAX_CHARS}")
            if CONTROL.search(key):
                raise NotificationError(f"{name}[{index}]: key {key[:40]!r} contains a control character")


@router.post("/webhooks/acumatica", status_code=status.HTTP_202_ACCEPTED, tags=["webhooks"])
async def acumatica_push(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not constant_time_equal(
        request.headers.get(settings.webhook_header), settings.webhook_secret.get_secret_value()
    ):
        return problem(401, f"missing or wrong {settings.webhook_header} header")
    data = await read_notification(request, settings)
    if isinstance(data, JSONResponse):
        return data
    try:
        notification = PushNotification.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()]
        return problem(422, "not an Acumatica push notification", details=details)
    config = await runtime.config.get()  # never fails: the last one read while the database is down
    entity = entity_for(notification.query, config.query_map)
    if entity is None:
        return problem(422, f"unknown Query {notification.query.strip()!r}", known_queries=sorted(config.query_map))
    try:
        check_notification(notification, entity, settings.webhook_max_records)
        envelopes = split(notification, entity)
    except TooManyRows as exc:
        return problem(413, str(exc))
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
            async with asyncio.timeout(OUTBOX_TIMEOUT_SECONDS), runtime.sessionmaker() as session, session.begin():
                await outbox.add(session, envelopes)
        except Exception as db_exc:
            log.error("notification %s neither published nor stored: %r", notification.id, db_exc)
            return problem(503, "broker and database unavailable; retry later")
        queued = True
    runtime.recent.add(notification.id)
    WEBHOOKS.labels("queued" if queued else "published").inc()
    log.info("notification %s (%s → %s): %s", notification.id, notification.query.strip(), entity, counts)
    return JSONResponse(
        {"accepted": len(envelopes), "entity": entity, "queued_in_outbox": queued, **counts}, status_code=202
    )
