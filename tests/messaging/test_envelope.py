"""The envelope: what goes over the wire comes back equal; bad bodies give a clear EnvelopeError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.messaging.envelope import Envelope, EnvelopeError
from tests.messaging.helpers import envelope


def test_round_trip_keeps_every_field() -> None:
    original = envelope("AALEGO500", correlation_id="c-1", payload={"qty": 3, "warehouses": ["WH1"]}, attempt=2)
    restored = Envelope.from_bytes(original.to_bytes())
    assert restored == original
    assert restored.version == 1
    assert restored.occurred_at.tzinfo is UTC


def test_defaults_give_unique_ids_and_a_utc_time() -> None:
    first, second = envelope("a"), envelope("b")
    assert first.message_id != second.message_id
    assert first.attempt == 0 and first.payload == {}
    assert datetime.now(UTC) - first.occurred_at < timedelta(seconds=5)


def test_other_timezones_are_normalised_to_utc() -> None:
    eastern = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert envelope("a", occurred_at=eastern).occurred_at == datetime(2026, 1, 2, 8, 4, 5, tzinfo=UTC)


def _body(**changes: object) -> bytes:
    data = json.loads(envelope("a").to_bytes())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (_body(version=2), "unsupported envelope version 2 (this build reads version 1)"),
        (_body(entity="invoice"), "entity: Value error, unknown entity 'invoice'"),
        (_body(kind="bulk"), "kind: Input should be 'records', 'jobs' or 'writeback'"),
        (_body(entity="customer", kind="writeback"), "customer has no 'writeback' queue"),
        (_body(op="up.sert"), "op: Value error, op 'up.sert' must be lower-case"),
        (_body(occurred_at="2026-01-02T03:04:05"), "occurred_at: Value error, occurred_at must carry a timezone"),
        (_body(attempt=-1), "attempt: Input should be greater than or equal to 0"),
        (_body(source=None), "source: Field required"),
    ],
)
def test_bad_bodies_raise_a_clear_envelope_error(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        Envelope.from_bytes(body)
    assert message in str(caught.value)


def test_unknown_extra_fields_are_ignored() -> None:
    assert Envelope.from_bytes(_body(added_later="x")).key == "a"


def test_constructing_an_invalid_envelope_fails_at_the_producer() -> None:
    with pytest.raises(ValidationError, match="unknown entity"):
        Envelope(entity="invoice", kind="records", op="upsert", source="test")
