"""Console sessions: an HMAC-signed cookie opened with the API token, and a CSRF token per session.

The signing key is derived from `API_TOKEN` (HMAC-SHA256 of a fixed label), so changing the token signs
every console session out and nothing else needs configuring. The cookie holds a random session id and
its issue time, signed; it is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
sends it). The CSRF token is the HMAC of the session id under the same key: fixed for the session,
unguessable without the key, and checked on every POST (a forged POST is refused with 403 before it
changes anything).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from shared.settings import Settings

COOKIE = "connector_console"
MAX_AGE_SECONDS = 12 * 3600


@dataclass(frozen=True)
class ConsoleSession:
    sid: str
    issued_at: int
    csrf: str

    @property
    def actor(self) -> str:
        """Who, for the audit table: every operator signs in with the API token, so the session tells them apart."""
        return f"api-token session {self.sid[:12]}"


def _key(settings: Settings) -> bytes | None:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if not token:
        return None
    return hmac.new(token.encode(), b"connector ops console session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def csrf_token(key: bytes, sid: str) -> str:
    return _sign(key, f"csrf:{sid}")


def token_matches(settings: Settings, given: str) -> bool:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def issue(settings: Settings, now: float | None = None) -> str:
    """A new signed cookie value (call only after the token was checked)."""
    key = _key(settings)
    if key is None:
        raise ValueError("API_TOKEN is not configured")
    payload = _b64(json.dumps({"sid": secrets.token_urlsafe(18), "iat": int(now or time.time())}).encode())
    return f"{payload}.{_sign(key, payload)}"


def verify(settings: Settings, cookie: str | None, now: float | None = None) -> ConsoleSession | None:
    """The session a cookie value stands for, or None: unsigned, tampered, expired, or signed with another token."""
    key = _key(settings)
    if key is None or not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(key, payload).encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        sid, issued = str(data["sid"]), int(data["iat"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= (now or time.time()) - issued <= MAX_AGE_SECONDS:
        return None
    return ConsoleSession(sid, issued, csrf_token(key, sid))


def csrf_ok(session: ConsoleSession, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())
