"""Property-based fuzzing of every ingress endpoint against the real process (hypothesis, bounded).

Whatever arrives, the ingress answers below 500 (the one exception: the live batch screen's documented
502/503 when Acumatica is unreachable, as it is here); nothing is enqueued or stored without the secret or
the token; and afterwards a valid notification is still published (the broker connection is not wedged).
Requests mix well-formed shapes taken from the OpenAPI document with hostile values: lone surrogates,
NUL and control characters, huge and negative integers, extreme dates, NaN, deep nesting, raw bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.ingress.app import create_app
from services.ingress.entities import MAPPING_KINDS
from shared.db.models import OutboxMessage, SyncJob
from shared.messaging.envelope import Envelope
from shared.messaging.topology import ENTITIES, Topology
from shared.settings import Settings
from tests.ingress.conftest import SECRET, TOKEN, Ingress, ingress_env
from tests.ingress.test_webhooks import notification, post
from tests.support.broker import drain, purge
from tests.support.processes import free_port, service

EXAMPLES = 200  # per endpoint; the whole module stays under about a minute
FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)
DOC = create_app(Settings()).openapi()
OPERATIONS = [
    (method.upper(), path, op)
    for path, ops in DOC["paths"].items()
    if path.startswith("/api/v1/")
    for method, op in ops.items()
]
JSON = {"Content-Type": "application/json"}
LIVE_LISTING = ("GET", "/api/v1/entities/{entity}/records")  # reads Acumatica, unreachable here

# Values ---------------------------------------------------------------------------------------------

NASTY = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\t", "\n", "é", "💥", "K" * 129, "K" * 300, "%00", "NaN"]
words = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
texts = st.one_of(
    words, st.text(max_size=30), st.text(st.characters(exclude_categories=()), max_size=10), st.sampled_from(NASTY)
)
LIMITS = [0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]
ints = st.one_of(st.integers(1, 5), st.integers(-(2**70), 2**70), st.sampled_from(LIMITS))
OFFSETS = [UTC, timezone(timedelta(hours=23, minutes=59)), timezone(-timedelta(hours=23, minutes=59))]
dates = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.datetimes(timezones=st.sampled_from([None, *OFFSETS])),
).map(lambda d: d.isoformat())
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), texts, dates)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
# PUT /config documents its body as any object: it is a partial SiteConfigModel.
BODY_SCHEMAS = {("PUT", "/api/v1/config"): {"$ref": "#/components/schemas/SiteConfigModel"}}


def encode(value: Any) -> bytes:
    """As a hostile client writes JSON: lone surrogates as escapes, NaN and Infinity allowed."""
    return json.dumps(value, ensure_ascii=True).encode()


deep = st.integers(30, 6000).map(lambda n: b'{"a": ' + b"[" * n + b"]" * n + b"}")
raw = st.binary(max_size=64)


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def shaped(schema: dict[str, Any], wild: bool) -> st.SearchStrategy[Any]:
    """Values of the schema's shape, their strings and numbers hostile at times, so requests get past
    validation to the code behind it; `wild`: anything at all in place of a quarter of the values."""
    schema = resolve(schema)
    if "enum" in schema or "examples" in schema:
        plausible: st.SearchStrategy[Any] = st.sampled_from(schema.get("enum") or schema["examples"])
    elif "anyOf" in schema:
        plausible = st.one_of([shaped(s, wild) for s in schema["anyOf"]])
    elif schema.get("type") == "object" and "properties" in schema:
        properties = {k: shaped(v, wild) for k, v in schema["properties"].items()}
        required = set(schema.get("required", []))
        plausible = st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    elif schema.get("type") == "array":
        plausible = st.lists(shaped(schema.get("items", {}), wild), max_size=4)
    elif schema.get("format") == "date-time":
        plausible = dates
    else:
        plausible = {"integer": ints, "number": ints, "boolean": st.booleans(), "string": texts}.get(
            schema.get("type", ""), json_values
        )
    return st.one_of(plausible, plausible, plausible, scalars) if wild else plausible


def query_value(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def url_part(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def requests(method: str, template: str, operation: dict[str, Any]) -> st.SearchStrategy[tuple[str, bytes | None]]:
    """A URL (path and query) and a body for one operation: half of them well-formed but for hostile
    strings and numbers, the others wild."""
    return st.one_of(_requests(method, template, operation, False), _requests(method, template, operation, True))


def _requests(
    method: str, template: str, operation: dict[str, Any], wild: bool
) -> st.SearchStrategy[tuple[str, bytes | None]]:
    paths, queries = {}, {}
    for parameter in operation.get("parameters", []):
        name, schema = parameter["name"], parameter["schema"]
        if parameter["in"] == "path":
            names = MAPPING_KINDS if name == "kind" else ENTITIES
            tame = st.integers(1, 5) if schema.get("type") == "integer" else st.sampled_from(names)
            paths[name] = st.one_of(tame, ints, texts.filter(bool)) if wild else tame
        else:
            queries[name] = st.none() | shaped(schema, wild)
    body: st.SearchStrategy[bytes | None] = st.none()
    if "requestBody" in operation:
        schema = BODY_SCHEMAS.get((method, template), operation["requestBody"]["content"]["application/json"]["schema"])
        body = shaped(schema, wild).map(encode)
        body = st.one_of(body, json_values.map(encode), deep, raw) if wild else body
    return st.tuples(
        st.builds(url, st.just(template), st.fixed_dictionaries(paths), st.fixed_dictionaries(queries)), body
    )


def url(template: str, paths: dict[str, Any], queries: dict[str, Any]) -> str:
    for name, value in paths.items():
        template = template.replace(f"{{{name}}}", url_part(str(value)))
    query = [f"{url_part(k)}={url_part(v)}" for k, value in queries.items() if (v := query_value(value)) is not None]
    return template + ("?" + "&".join(query) if query else "")


REQUESTS = {(method, path): requests(method, path, operation) for method, path, operation in OPERATIONS}


KEYS = {
    "RithumProducts": ("InventoryID",),
    "RithumCategories": ("CategoryID",),
    " rithumorderstatus ": ("OrderType", "OrderNbr"),
}
key_values = st.one_of(words, words, words, texts, ints, st.sampled_from(["K" * 128, " padded  "]))
plain = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), words)


def rows(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """A row with the entity's key fields (hostile at times) and plain other fields."""
    fields = st.fixed_dictionaries({key: key_values for key in keys})
    return st.tuples(fields, st.dictionaries(words, plain, max_size=3)).map(lambda parts: parts[1] | parts[0])


def notifications(query: str, keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "Query": st.just(query),
            "Id": st.one_of(st.uuids().map(str), st.uuids().map(str), texts),
            "Inserted": st.lists(rows(keys), max_size=5),
            "Deleted": st.lists(rows(keys), max_size=3),
        },
        optional={"CompanyId": words, "TimeStamp": ints, "AdditionalInfo": st.dictionaries(words, plain, max_size=2)},
    )


tame_notifications = st.one_of([notifications(query, keys) for query, keys in KEYS.items()]).map(encode)
wild_notifications = st.fixed_dictionaries(
    {"Query": texts, "Id": texts, "Inserted": st.lists(json_values, max_size=3), "Deleted": json_values},
).map(encode)
webhook_bodies = st.one_of(
    tame_notifications, tame_notifications, wild_notifications, json_values.map(encode), deep, raw
)


# The ingress under fuzz -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(settings: Settings, sessionmaker) -> Iterator[Ingress]:
    port = free_port()
    env = ingress_env(settings, port, ACUMATICA_URL=f"http://127.0.0.1:{free_port()}", ACUMATICA_MAX_ATTEMPTS="1")
    url = f"http://127.0.0.1:{port}"
    with service(["services.ingress"], f"{url}/readyz", env=env):
        yield Ingress(url, env, settings)


@pytest.fixture
def client(fuzzed: Ingress, clean_db) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzzed.url, timeout=30) as http:
        yield http


def records_queues(settings: Settings) -> list[str]:
    return [Topology(settings.amqp_prefix).queue(entity, "records") for entity in ENTITIES]


async def stored(sessionmaker) -> tuple[int, int]:
    async with sessionmaker() as session:
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
        jobs = await session.scalar(select(func.count()).select_from(SyncJob))
    return outbox or 0, jobs or 0


async def test_without_the_secret_or_token_everything_is_401_and_nothing_enqueued(
    fuzzed: Ingress, client: httpx.Client, sessionmaker
) -> None:
    await purge(fuzzed.settings.amqp_url_plain, records_queues(fuzzed.settings))
    visible = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F))
    header_values = st.one_of(st.none(), visible, st.sampled_from([SECRET[:-1].encode(), TOKEN.encode() + b"x"]))

    @FUZZ
    @given(body=webhook_bodies, secret=header_values)
    def webhook(body: bytes, secret: bytes | None) -> None:
        headers = {"Authorization": secret} if secret is not None else {}
        assert client.post("/webhooks/acumatica", content=body, headers=headers).status_code == 401

    any_request = st.one_of([st.tuples(st.just(method), strategy) for (method, _), strategy in REQUESTS.items()])

    @FUZZ
    @given(request=any_request, token=header_values)
    def api(request: tuple[str, tuple[str, bytes | None]], token: bytes | None) -> None:
        method, (target, body) = request
        headers = {**JSON, "Authorization": (b"Bearer " + token).strip()} if token is not None else JSON
        assert client.request(method, target, content=body, headers=headers).status_code == 401

    webhook()
    api()
    for queue in records_queues(fuzzed.settings):
        assert await drain(fuzzed.settings.amqp_url_plain, queue, idle=0.2) == []
    assert await stored(sessionmaker) == (0, 0)


def test_webhook_with_the_secret_never_answers_5xx(client: httpx.Client) -> None:
    @FUZZ
    @given(body=webhook_bodies)
    def webhook(body: bytes) -> None:
        response = client.post("/webhooks/acumatica", content=body, headers={"Authorization": SECRET})
        assert response.status_code in (202, 413, 422), response.text
        if response.status_code != 202:
            assert response.json()["error"]

    webhook()


@pytest.mark.parametrize(("method", "path"), list(REQUESTS), ids=[f"{m} {p}" for m, p in REQUESTS])
def test_api_with_the_token_never_answers_5xx(client: httpx.Client, method: str, path: str) -> None:
    @FUZZ
    @given(request=REQUESTS[method, path])
    def api(request: tuple[str, bytes | None]) -> None:
        target, body = request
        response = client.request(method, target, content=body, headers={**JSON, "Authorization": f"Bearer {TOKEN}"})
        if (method, path) == LIVE_LISTING and response.status_code in (502, 503):
            assert response.json()["error"].startswith("Acumatica: ")
            return
        assert response.status_code < 500, f"{method} {target} {body!r:.200}: {response.status_code} {response.text}"

    api()


async def test_a_valid_notification_still_goes_through(fuzzed: Ingress, clean_db) -> None:
    queue = Topology(fuzzed.settings.amqp_prefix).queue("product", "records")
    await purge(fuzzed.settings.amqp_url_plain, [queue])
    body = notification(inserted=[{"InventoryID": "AFTER-FUZZ"}])
    deadline = time.monotonic() + 5  # the site configuration the fuzz changed is re-read within 2 s
    while (response := post(fuzzed, body)).status_code != 202:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.3)
    assert response.json()["queued_in_outbox"] is False
    [message] = await drain(fuzzed.settings.amqp_url_plain, queue, expect=1)
    assert Envelope.from_bytes(message.body).key == "AFTER-FUZZ"
    with fuzzed.client() as http:
        assert http.get("/readyz").json()["degraded"] == []
