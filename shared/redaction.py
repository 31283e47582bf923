"""Blank secrets out of anything that is logged or stored for audit.

Known secret values (from settings) are replaced wherever they occur; well-known secret-bearing
fields (tokens, passwords, Authorization headers) are blanked by pattern, because tokens issued at
run time are not known in advance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_NAMES = (
    "password",
    "access_token",
    "refresh_token",
    "client_secret",
    "shared_secret",
    "token",
    "authorization",
    "secret",
    "api_key",
)
_NAMES = "|".join(SECRET_NAMES)
# "password": "x"   |   'token': 'x'
_JSON_FIELD = re.compile(rf'(["\'](?:{_NAMES})["\']\s*:\s*)(["\'])(?:\\.|(?!\2).)*\2', re.IGNORECASE)
# password=x&...   (form bodies, query strings)
_FORM_FIELD = re.compile(rf"(\b(?:{_NAMES})=)[^&\s\"']*", re.IGNORECASE)
# Authorization: Bearer xyz  /  Basic xyz
_AUTH_HEADER = re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Every pattern above needs one of these words: text without any (most API bodies) skips them. Substring
# tests on the lower-cased text are much cheaper than a case-insensitive regex scan.
_TRIGGERS = (*SECRET_NAMES, "bearer", "basic")


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a secret that contains another is blanked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def text(self, value: str | None) -> str | None:
        if not value:
            return value
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        lowered = value.lower()
        if not any(word in lowered for word in _TRIGGERS):
            return value
        value = _JSON_FIELD.sub(rf"\1\2{MASK}\2", value)
        value = _FORM_FIELD.sub(rf"\1{MASK}", value)
        return _AUTH_HEADER.sub(rf"\1{MASK}", value)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", f":{MASK}@")
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_NAMES else v) for k, v in pairs], safe="$'(),:= ", quote_via=quote
            )
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))) or ""
