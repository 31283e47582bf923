"""Errors the sandbox answers with, shaped the way the real API shapes them."""

from __future__ import annotations

from typing import Any

DENIED_MESSAGE = "Authorization has been denied for this request."


class ApiError(Exception):
    """A request the sandbox refuses; rendered as an OData error body `{"error":{"code","message"}}`."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "", "message": self.message}}


class Unauthorized(ApiError):
    """The real API's 401 body is not OData-shaped; clients match on its `Message`."""

    def __init__(self) -> None:
        super().__init__(401, DENIED_MESSAGE)

    def body(self) -> dict[str, Any]:
        return {"Message": DENIED_MESSAGE}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(entity: str, key: object) -> ApiError:
    return ApiError(404, f"No {entity} with ID {key} was found.")
