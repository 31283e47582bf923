"""OAuth 2.0 access tokens from the long-lived refresh token (the "Developer Console Token" flow).

One token is shared by every caller and refreshed shortly before it expires; a 401 on a call makes
the caller hand back the token it used, and only the first such caller fetches a new one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

from shared.outbound import OutboundHTTP

from .errors import RithumAuthError, error_for, response_json

TOKEN_PATH = "/oauth2/token"
MAX_MARGIN = 60.0  # refresh this long before expiry (less for very short-lived tokens)


class TokenProvider:
    def __init__(
        self,
        http: OutboundHTTP,
        *,
        application_id: str,
        shared_secret: str,
        refresh_token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        basic = base64.b64encode(f"{application_id}:{shared_secret}".encode()).decode()
        self._authorization = f"Basic {basic}"
        self._refresh_token = refresh_token
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def get(self) -> str:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return await self.refresh(stale=self._token)

    async def refresh(self, stale: str | None) -> str:
        """A new token, unless another caller already replaced `stale` while we waited."""
        async with self._lock:
            if self._token is not None and self._token != stale and self._clock() < self._refresh_at:
                return self._token
            response = await self.http.request(
                "POST",
                TOKEN_PATH,
                data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
                headers={"Authorization": self._authorization},
            )
            body = response_json(response)
            if response.status_code != 200:
                error = error_for(response.status_code, body, "Rithum token refresh")
                if response.status_code in (400, 401):
                    raise RithumAuthError(error.message, status=error.status, body=body)
                raise error
            if not isinstance(body, dict) or not body.get("access_token"):
                raise RithumAuthError("Rithum token refresh: the answer has no access_token", status=200)
            lifetime = float(body.get("expires_in") or 3600)
            self._token = str(body["access_token"])
            self._refresh_at = self._clock() + lifetime - min(MAX_MARGIN, lifetime * 0.1)
            self.refreshes += 1
            return self._token
