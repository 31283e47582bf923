"""Typed failures of Rithum calls, carrying Rithum's own message so logs and sync records say why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from shared.outbound import TargetUnavailable, unavailable_message


class RithumError(Exception):
    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body


class RithumAuthError(RithumError):
    """The token could not be obtained, or a fresh token was refused too."""


class RithumNotFound(RithumError):
    pass


class RithumRejected(RithumError):
    """4xx other than auth / not found: the request is wrong and retrying it will not help."""


class RithumUnavailable(RithumError):
    """429 or 5xx left after the retries: worth trying again later."""


class RithumTargetUnavailable(RithumUnavailable, TargetUnavailable):
    """Not sent: Rithum's circuit is open after repeated failures (see `shared.outbound.CircuitBreaker`)."""

    def __init__(self, target: str, until: datetime) -> None:
        super().__init__(unavailable_message(target, until), status=503)
        self.target = target
        self.until = until


class RithumFeedError(RithumError):
    """An FTP feed could not be uploaded, or its result did not arrive in time."""


def message_of(body: Any, fallback: str) -> str:
    """Rithum answers `{"error":{"message"}}` (OData), `{"Message"}` (401) or OAuth's `error_description`."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("Message"):
            return str(body["Message"])
        if body.get("error_description"):
            return str(body["error_description"])
        if isinstance(error, str):
            return error
    return fallback


def error_for(status: int, body: Any, what: str) -> RithumError:
    message = f"{what}: {status} {message_of(body, httpx.codes.get_reason_phrase(status))}"
    if status == 401:
        return RithumAuthError(message, status=status, body=body)
    if status == 404:
        return RithumNotFound(message, status=status, body=body)
    if status == 429 or status >= 500:
        return RithumUnavailable(message, status=status, body=body)
    return RithumRejected(message, status=status, body=body)


def response_json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return response.text
