"""Authentication of webhooks (shared header secret) and of the trigger API (bearer token)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from shared.settings import Settings


def constant_time_equal(given: str | None, expected: str) -> bool:
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def api_token_problem(settings: Settings, authorization: str | None) -> str | None:
    """Why an `Authorization` header does not open the API, or None when it does."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if not token:
        return "API_TOKEN is not configured on the server"
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not constant_time_equal(value.strip(), token):
        return "missing or invalid bearer token"
    return None


def require_api_token(request: Request) -> None:
    if problem := api_token_problem(request.app.state.runtime.settings, request.headers.get("Authorization")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, problem, headers={"WWW-Authenticate": "Bearer"})
