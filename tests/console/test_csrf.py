"""Sessions and CSRF against a real ingress: no console URL without a session, a forged POST changes nothing."""

from __future__ import annotations

from contextlib import closing

import pytest
from sqlalchemy import func, select

from shared.db.models import ConsoleAudit
from tests.console.conftest import TOKEN, Ingress

PAGES = [
    "/console",
    "/console/jobs",
    "/console/jobs/1",
    "/console/history/product",
    "/console/dlq/product",
    "/console/logs",
    "/console/logs/1",
    "/console/settings",
    "/console/audit",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_redirects_to_sign_in_without_a_session(ingress: Ingress, path: str) -> None:
    with ingress.browser() as client:
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login?next=")
        client.cookies.set("connector_console", "forged.cookie", domain="127.0.0.1", path="/console")
        assert client.get(path).status_code == 303


async def test_sign_in_sets_a_strict_http_only_cookie_and_a_wrong_token_does_not(ingress: Ingress) -> None:
    with ingress.browser() as client:
        refused = client.post("/console/login", data={"token": "not-it"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        response = client.post("/console/login", data={"token": TOKEN, "next": "https://evil.example/"})
        assert response.status_code == 303 and response.headers["location"] == "/console"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert client.get("/console/settings").status_code == 200


async def test_forged_posts_change_nothing(ingress: Ingress, clean_db) -> None:
    with ingress.api() as api:
        before = api.get("/api/v1/config").json()
        jobs_before = api.get("/api/v1/jobs").json()["total"]
    audited = select(func.count()).select_from(ConsoleAudit).where(ConsoleAudit.action != "sign-in")
    async with clean_db() as session:
        audited_before = await session.scalar(audited)
    client, csrf = ingress.signed_in()
    forged_posts = [
        ("/console/settings/config", {"max_attempts": "9"}),
        ("/console/settings/mappings/item_class", {"items": '[{"source": "X", "target": "Y"}]'}),
        ("/console/jobs", {"entity": "product", "mode": "full"}),
        ("/console/history/product/process", {"key": "K1"}),
        ("/console/dlq/product/discard", {"all": "1", "confirm": "yes"}),
        ("/console/jobs/1/cancel", {}),
    ]
    with closing(client):
        for path, data in forged_posts:
            assert client.post(path, data=data).status_code == 403, path  # no token
            assert client.post(path, data={**data, "csrf_token": csrf[:-1] + "x"}).status_code == 403, path
        # the same POSTs without a session: sent to sign in, nothing done
        with ingress.browser() as stranger:
            for path, data in forged_posts:
                response = stranger.post(path, data={**data, "csrf_token": csrf})
                assert response.status_code == 303 and "/console/login" in response.headers["location"]
        # ... while the real form, with its token, works
        saved = client.post("/console/settings/config", data={"max_attempts": "7", "csrf_token": csrf})
        assert saved.status_code == 303, saved.text
    with ingress.api() as api:
        after = api.get("/api/v1/config").json()
        assert after == {**before, "max_attempts": 7}
        assert api.get("/api/v1/mappings/item_class").json()["items"] == []
        assert api.get("/api/v1/jobs").json()["total"] == jobs_before
    async with clean_db() as session:
        actions = list(await session.scalars(select(ConsoleAudit.action).order_by(ConsoleAudit.id)))
        assert actions[-1] == "config-update"
        assert await session.scalar(audited) == audited_before + 1  # the real save only


async def test_bad_config_value_shows_the_field_error_and_changes_nothing(ingress: Ingress) -> None:
    with ingress.api() as api:
        before = api.get("/api/v1/config").json()
    client, csrf = ingress.signed_in()
    with closing(client):
        response = client.post(
            "/console/settings/config", data={"max_attempts": "0", "batch_size": "12", "csrf_token": csrf}
        )
        assert response.status_code == 422
        assert 'data-field="max_attempts"' in response.text and "greater than or equal to 1" in response.text
        response = client.post("/console/settings/config", data={"retry_delays": "[5, oops", "csrf_token": csrf})
        assert response.status_code == 422 and 'data-field="retry_delays"' in response.text
        response = client.post(
            "/console/settings/mappings/item_class", data={"items": '[{"source": ""}]', "csrf_token": csrf}
        )
        assert response.status_code == 422 and 'data-field="mapping_item_class"' in response.text
    with ingress.api() as api:
        assert api.get("/api/v1/config").json() == before
        assert api.get("/api/v1/mappings/item_class").json()["items"] == []
