"""Typed exceptions for Acumatica API failures, each carrying the ERP's own message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from shared.acumatica.values import field_errors, unwrap
from shared.outbound import TargetUnavailable, unavailable_message


class AcumaticaError(Exception):
    """Any failed call. `message` is Acumatica's text (exceptionMessage / message / 422 summary)."""

    def __init__(self, status: int, message: str, *, method: str = "", url: str = "", body: Any = None) -> None:
        super().__init__(f"Acumatica {status} on {method} {url}: {message}".replace("  ", " "))
        self.status = status
        self.message = message
        self.method = method
        self.url = url
        self.body = body


class AuthError(AcumaticaError):
    """Sign-in refused, or still 401/403 after signing in again."""


class NotFound(AcumaticaError):
    """404: no record with that key (or an unknown entity/endpoint)."""


class PreconditionFailed(AcumaticaError):
    """412: If-None-Match (record exists) or If-Match (record missing) failed."""


class ValidationError(AcumaticaError):
    """422: the ERP rejected fields; `field_errors` maps paths like `Details/1/InventoryID` to messages."""

    def __init__(self, status: int, message: str, *, field_errors: dict[str, str], **kwargs: Any) -> None:
        super().__init__(status, message, **kwargs)
        self.field_errors = field_errors

    @property
    def record(self) -> Any:
        """The entity as echoed back (plain values), e.g. to show which line failed."""
        return unwrap(self.body) if isinstance(self.body, dict) else None


class LicenseLimit(AcumaticaError):
    """429 that persisted through every retry: the license's request limits are exhausted."""


class AcumaticaTargetUnavailable(AcumaticaError, TargetUnavailable):
    """Not sent: Acumatica's circuit is open after repeated failures; status 503, like the answers that opened it."""

    def __init__(self, target: str, until: datetime) -> None:
        super().__init__(503, unavailable_message(target, until))
        self.args = (f"Acumatica unavailable: {self.message}",)  # no method or URL: nothing was sent
        self.target = target
        self.until = until


_BY_STATUS: dict[int, type[AcumaticaError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFound,
    412: PreconditionFailed,
    429: LicenseLimit,
}


def error_from_response(response: httpx.Response) -> AcumaticaError:
    request = response.request
    context = {"method": request.method, "url": str(request.url.copy_with(query=None))}
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = _message(body) or response.reason_phrase or "no message"
    if response.status_code == 422 and isinstance(body, dict):
        errors = {"/".join(str(p) for p in path): text for path, text in field_errors(body).items()}
        detail = "; ".join(f"{path}: {text}" for path, text in errors.items())
        full = f"{message} {detail}".strip() if detail else message
        return ValidationError(422, full, field_errors=errors, body=body, **context)
    cls = _BY_STATUS.get(response.status_code, AcumaticaError)
    return cls(response.status_code, message, body=body, **context)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("exceptionMessage", "error_description", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return ""
    return str(body or "")[:500]
