"""Authentication of webhooks (shared header secret) and of the trigger API (bearer token)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


def constant_time_equal(given: str | None, expected: str) -> bool:
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def require_api_token(request: Request) -> None:
    settings = request.app.state.runtime.settings
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "API_TOKEN is not configured on the server")
    if scheme.lower() != "bearer" or not constant_time_equal(value.strip(), token):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
