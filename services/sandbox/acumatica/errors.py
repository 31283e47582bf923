"""Error replies in Acumatica's shapes: the `HttpError` schema, and 422 entities with field errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response


class ApiError(Exception):
    """Any non-field error; rendered as `{message, exceptionMessage, exceptionType, stackTrace}`."""

    def __init__(
        self,
        status: int,
        message: str,
        exception_type: str = "PX.Api.ContractBased.OperationException",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.exception_type = exception_type
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return json_response(self.status, http_error(self.message, self.exception_type), self.headers)


class FieldErrors(Exception):
    """422: the entity as sent, each failing field carrying `"error"` (body already built)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", "validation failed"))
        self.body = body


def http_error(message: str, exception_type: str) -> dict[str, Any]:
    return {
        "message": "An error has occurred.",
        "exceptionMessage": message,
        "exceptionType": exception_type,
        "stackTrace": None,
    }


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """JSON without FastAPI's encoder: large list pages are plain dicts already, so dump them directly."""
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def not_found(entity: str) -> ApiError:
    return ApiError(
        404,
        f"No entity satisfies the condition. Entity: {entity}.",
        "PX.Api.ContractBased.NoEntitySatisfiesTheConditionException",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "System.ArgumentException")
