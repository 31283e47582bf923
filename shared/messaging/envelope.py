"""The versioned JSON envelope every message on the bus carries.

A consumer may meet messages written by an older or newer producer during a rolling upgrade, so the
version is checked first and reported as such; unknown extra fields are ignored (tolerant reader),
while a breaking change bumps `version`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared.messaging.topology import ENTITIES, Kind, kinds_of

ENVELOPE_VERSION = 1
_OP = re.compile(r"^[a-z][a-z0-9_]*$")
# What travels outside the body is bounded: message and correlation IDs are AMQP short strings (255 bytes),
# the key and source become headers, and RabbitMQ closes the whole connection over a header frame larger
# than its frame size (128 KiB), failing every publish in flight on it.
SHORT_STRING_BYTES = 255
HEADER_VALUE_BYTES = 512


class EnvelopeError(ValueError):
    """A message body that is not a valid envelope of a version this build understands."""


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1] = ENVELOPE_VERSION
    message_id: str = Field(default_factory=lambda: str(uuid4()), min_length=1, max_length=255)
    correlation_id: str | None = Field(default=None, max_length=255)
    entity: str
    kind: Kind
    op: str = Field(max_length=64, description='e.g. "upsert", "delete", "run"; one routing-key word')
    key: str | None = None
    source: str = Field(min_length=1, description='e.g. "acumatica.push", "api", "scheduler", "job"')
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attempt: int = Field(default=0, ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, value: str) -> str:
        if value not in ENTITIES:
            raise ValueError(f"unknown entity {value!r}; expected one of {', '.join(ENTITIES)}")
        return value

    @model_validator(mode="after")
    def _kind_of_entity(self) -> Envelope:
        if self.kind not in kinds_of(self.entity):
            expected = ", ".join(kinds_of(self.entity))
            raise ValueError(f"{self.entity} has no {self.kind!r} queue; expected one of {expected}")
        return self

    @field_validator("op")
    @classmethod
    def _routable_op(cls, value: str) -> str:
        # The op becomes the last word of a topic routing key: no dots or wildcards.
        if not _OP.match(value):
            raise ValueError(f"op {value!r} must be lower-case letters, digits or '_', starting with a letter")
        return value

    @field_validator("message_id", "correlation_id", "key", "source")
    @classmethod
    def _small(cls, value: str | None, info: ValidationInfo) -> str | None:
        limit = SHORT_STRING_BYTES if info.field_name in ("message_id", "correlation_id") else HEADER_VALUE_BYTES
        if value is not None and len(value.encode()) > limit:
            raise ValueError(f"longer than {limit} bytes (UTF-8)")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone (UTC expected)")
        return value.astimezone(UTC)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise EnvelopeError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return f"body is not valid JSON: {error['msg']}"
        if error["type"] == "model_type":
            return "body must be a JSON object"
        if error["loc"] == ("version",):
            return f"unsupported envelope version {error['input']!r} (this build reads version {ENVELOPE_VERSION})"
    fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors)
    return f"invalid envelope: {fields}"
