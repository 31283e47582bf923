"""Unit tests of the console's session cookie and CSRF token (no network)."""

from __future__ import annotations

import time

from pydantic import SecretStr

from services.ingress.console import session as sessions
from shared.settings import Settings


def settings(token: str | None = "token-one") -> Settings:
    return Settings(api_token=SecretStr(token) if token else None)


def test_issued_cookie_opens_a_session_with_a_stable_csrf_token() -> None:
    cookie = sessions.issue(settings())
    opened = sessions.verify(settings(), cookie)
    assert opened is not None
    again = sessions.verify(settings(), cookie)
    assert again is not None and again.csrf == opened.csrf
    assert sessions.csrf_ok(opened, opened.csrf)


def test_each_session_has_its_own_csrf_token() -> None:
    one = sessions.verify(settings(), sessions.issue(settings()))
    two = sessions.verify(settings(), sessions.issue(settings()))
    assert one and two and one.sid != two.sid and one.csrf != two.csrf
    assert not sessions.csrf_ok(one, two.csrf)


def test_missing_or_wrong_csrf_token_is_refused() -> None:
    opened = sessions.verify(settings(), sessions.issue(settings()))
    assert opened is not None
    for given in (None, "", "x", opened.csrf[:-1], opened.csrf + "A"):
        assert not sessions.csrf_ok(opened, given)


def test_tampered_forged_or_foreign_cookies_open_nothing() -> None:
    cookie = sessions.issue(settings())
    payload, signature = cookie.split(".")
    assert sessions.verify(settings(), None) is None
    assert sessions.verify(settings(), "") is None
    assert sessions.verify(settings(), payload) is None
    assert sessions.verify(settings(), f"{payload}.{signature[:-2]}AA") is None
    assert sessions.verify(settings(), f"{payload[:-2]}AA.{signature}") is None
    assert sessions.verify(settings("another-token"), cookie) is None  # a changed token signs everyone out
    assert sessions.verify(settings(None), cookie) is None


def test_sessions_expire() -> None:
    issued = time.time() - sessions.MAX_AGE_SECONDS - 5
    assert sessions.verify(settings(), sessions.issue(settings(), now=issued)) is None
    assert sessions.verify(settings(), sessions.issue(settings(), now=time.time() - 60)) is not None


def test_token_check_is_exact() -> None:
    assert sessions.token_matches(settings(), "token-one")
    assert not sessions.token_matches(settings(), "token-on")
    assert not sessions.token_matches(settings(), "")
    assert not sessions.token_matches(settings(None), "")
