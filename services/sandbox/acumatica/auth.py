"""API sessions: cookie login/logout and OAuth 2.0 resource-owner tokens with refresh.

Every session (a cookie login or an access token, since scope `api` is one session per grant)
counts against the license's API-user limit, expires after `session_ttl` idle seconds, and can be
ended for everyone at once by the admin API to exercise a client's re-login path.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from .errors import ApiError

AUTH_COOKIE = ".ASPXAUTH"
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600


@dataclass
class Session:
    token: str
    user: str
    tenant: str
    kind: str  # "cookie" | "oauth"
    last_seen: float
    expires_at: float | None = None


@dataclass
class RefreshGrant:
    user: str
    tenant: str
    client_id: str
    scope: str
    expires_at: float


class OAuthError(Exception):
    """OAuth token endpoint errors use RFC 6749's `{"error": ...}` body, not Acumatica's HttpError."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class Auth:
    def __init__(
        self,
        *,
        users: dict[str, str],
        tenant: str,
        clients: dict[str, str],
        ttl: Callable[[], float],
        max_sessions: Callable[[], int],
    ) -> None:
        self.users = users
        self.tenant = tenant
        self.clients = clients
        self._ttl = ttl
        self._max_sessions = max_sessions
        self.sessions: dict[str, Session] = {}
        self.refresh_grants: dict[str, RefreshGrant] = {}

    # -- sign-in -------------------------------------------------------------------------------

    def login(self, name: str, password: str, tenant: str | None) -> Session:
        self._check_credentials(name, password, tenant)
        return self._open(name, "cookie", None)

    def token(self, form: dict[str, str]) -> dict[str, object]:
        grant = form.get("grant_type")
        client_id, _, tenant = (form.get("client_id") or "").partition("@")
        if client_id not in self.clients or not secrets.compare_digest(
            self.clients[client_id], form.get("client_secret") or ""
        ):
            raise OAuthError("invalid_client", "Unknown client or wrong client secret.", 401)
        if grant == "password":
            scope = form.get("scope") or "api"
            if "api" not in scope.split():
                raise OAuthError("invalid_scope", "The 'api' scope is required.")
            try:
                self._check_credentials(form.get("username") or "", form.get("password") or "", tenant or None)
            except ApiError as exc:
                raise OAuthError("invalid_grant", exc.message) from exc
            user = form["username"]
        elif grant == "refresh_token":
            refresh = self.refresh_grants.pop(form.get("refresh_token") or "", None)
            if refresh is None or refresh.expires_at < time.time() or refresh.client_id != client_id:
                raise OAuthError("invalid_grant", "The refresh token is invalid or expired.")
            user, scope = refresh.user, refresh.scope
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported.")
        session = self._open(user, "oauth", time.time() + ACCESS_TOKEN_SECONDS)
        reply: dict[str, object] = {
            "access_token": session.token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "token_type": "Bearer",
            "scope": scope,
        }
        if "offline_access" in scope.split():
            refresh_token = secrets.token_urlsafe(32)
            self.refresh_grants[refresh_token] = RefreshGrant(
                user, self.tenant, client_id, scope, time.time() + REFRESH_TOKEN_SECONDS
            )
            reply["refresh_token"] = refresh_token
        return reply

    def _check_credentials(self, name: str, password: str, tenant: str | None) -> None:
        expected = self.users.get(name)
        if expected is None or not secrets.compare_digest(expected, password):
            raise ApiError(401, "Invalid credentials. Please try again.", "PX.Data.PXException")
        if tenant is not None and tenant.upper() != self.tenant.upper():
            raise ApiError(401, f"The tenant '{tenant}' does not exist.", "PX.Data.PXException")

    def _open(self, user: str, kind: str, expires_at: float | None) -> Session:
        self._purge()
        if len(self.sessions) >= self._max_sessions():
            raise ApiError(
                429,
                "API Login Limit: the maximum number of API users allowed by the license is reached.",
                "PX.Data.PXException",
            )
        session = Session(secrets.token_urlsafe(24), user, self.tenant, kind, time.monotonic(), expires_at)
        self.sessions[session.token] = session
        return session

    # -- per request ---------------------------------------------------------------------------

    def current(self, request: Request) -> Session | None:
        token = _bearer(request) or request.cookies.get(AUTH_COOKIE)
        if not token:
            return None
        session = self.sessions.get(token)
        if session is None or self._expired(session):
            self.sessions.pop(token, None)
            return None
        session.last_seen = time.monotonic()
        return session

    def require(self, request: Request) -> Session:
        session = self.current(request)
        if session is None:
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if _bearer(request) else None
            raise ApiError(
                401, "You are not logged in or your session has expired.", "PX.Data.PXNotLoggedInException", headers
            )
        return session

    def logout(self, request: Request) -> None:
        token = _bearer(request) or request.cookies.get(AUTH_COOKIE)
        if token:
            self.sessions.pop(token, None)

    def expire_all(self) -> int:
        count = len(self.sessions)
        self.sessions.clear()
        return count

    def reset(self) -> None:
        self.sessions.clear()
        self.refresh_grants.clear()

    def _expired(self, session: Session) -> bool:
        if session.expires_at is not None and session.expires_at < time.time():
            return True
        return time.monotonic() - session.last_seen > self._ttl()

    def _purge(self) -> None:
        for token in [t for t, s in self.sessions.items() if self._expired(s)]:
            del self.sessions[token]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
