"""The sandbox's own control API under `/_sandbox/` (no auth; not part of the Acumatica surface).

Tests, the demo and benchmarks use it to seed and inspect data, make changes "inside the ERP"
(which notify exactly like API changes), manage push definitions and failed deliveries, turn the
license and fault knobs, and read request counts.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.responses import Response

from shared.acumatica.values import parse_datetime, wrap

from .config import Knobs
from .entities import SPECS, EntitySpec
from .errors import json_response
from .push import PushDefinition
from .render import flat
from .seed import seed
from .state import Sandbox
from .store import normalize_key

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])

KeyValue = str | int | list[str | int]


class SeedRequest(BaseModel):
    items: int = Field(ge=0, le=1_000_000, description="number of stock items in the catalogue")
    random_seed: int = 1


class UpsertRequest(BaseModel):
    records: list[dict[str, Any]] = Field(min_length=1, description="plain (unwrapped) records, PUT semantics")


class ChangeRequest(BaseModel):
    keys: list[KeyValue] = Field(min_length=1, description="key values; a list per record for composite keys")
    set: dict[str, Any] | None = Field(None, description="plain fields to set; omit (and delete) to bump LastModified")
    delete: bool = False
    single_transaction: bool = Field(False, description="one push notification for all records")

    @model_validator(mode="after")
    def _one_kind(self) -> ChangeRequest:
        if self.set and self.delete:
            raise ValueError("give either `set` or `delete`, not both")
        return self


class ResendRequest(BaseModel):
    ids: list[str] | None = Field(None, description="failed delivery ids; omit to resend all")


def _sandbox(request: Request) -> Sandbox:
    return request.app.state.sandbox


def _spec(entity: str) -> EntitySpec:
    spec = SPECS.get(entity)
    if spec is None:
        raise HTTPException(404, f"unknown entity {entity!r}; known: {', '.join(sorted(SPECS))}")
    return spec


def _key(spec: EntitySpec, value: KeyValue) -> tuple[Any, ...]:
    key = tuple(value) if isinstance(value, list) else (value,)
    if len(key) != len(spec.keys):
        raise HTTPException(
            400, f"{spec.name} keys have {len(spec.keys)} part(s): {', '.join(spec.keys)}; got {value!r}"
        )
    return key


def _shape(record: dict[str, Any], form: str) -> dict[str, Any]:
    return wrap(flat(record)) if form == "wrapped" else flat(record)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/seed")
async def seed_catalogue(body: SeedRequest, request: Request) -> dict[str, Any]:
    counts = seed(_sandbox(request).store, body.items, body.random_seed)
    return {"seeded": counts}


@router.post("/reset", status_code=204)
async def reset(request: Request) -> None:
    _sandbox(request).reset()


@router.get("/records/{entity}")
async def list_records(
    entity: str,
    request: Request,
    updated_since: str | None = Query(None, description="ISO timestamp; records changed strictly after it"),
    limit: int = Query(100, ge=1, le=100_000),
    offset: int = Query(0, ge=0),
    form: Literal["flat", "wrapped"] = Query("flat", alias="format"),
) -> Response:
    spec = _spec(entity)
    rows: Any = _sandbox(request).store.table(entity).rows.values()
    if updated_since:
        try:
            since: datetime = parse_datetime(updated_since)
        except ValueError as exc:
            raise HTTPException(400, f"updated_since is not an ISO timestamp: {updated_since!r}") from exc
        stamp = spec.modified[0]
        rows = (r for r in rows if r.get(stamp) is not None and r[stamp] > since)
    records = [_shape(r, form) for r in islice(rows, offset, offset + limit)]
    return json_response(200, {"count": len(records), "records": records})


@router.get("/records/{entity}/{rest:path}")
async def get_record(
    entity: str, rest: str, request: Request, form: Literal["flat", "wrapped"] = Query("flat", alias="format")
) -> Response:
    _spec(entity)
    record = _sandbox(request).store.table(entity).rows.get(normalize_key(tuple(s for s in rest.split("/") if s)))
    if record is None:
        raise HTTPException(404, f"no {entity} with key {rest!r}")
    return json_response(200, _shape(record, form))


@router.post("/records/{entity}")
async def upsert_records(entity: str, body: UpsertRequest, request: Request) -> Response:
    """Insert or update plain records as the ERP's own screens would (validated, notified)."""
    _spec(entity)
    sandbox = _sandbox(request)
    saved = []
    for record in body.records:
        with sandbox.store.transaction():
            saved.append(flat(sandbox.writer.put(entity, record, admin=True)))
    return json_response(200, {"records": saved})


@router.post("/records/{entity}/change")
async def change_records(entity: str, body: ChangeRequest, request: Request) -> dict[str, int]:
    """Set fields on, delete, or just touch existing records; each change notifies like an API change."""
    spec = _spec(entity)
    sandbox = _sandbox(request)
    keys = [_key(spec, value) for value in body.keys]
    missing = [k for k in keys if normalize_key(k) not in sandbox.store.table(entity).rows]
    if missing:
        raise HTTPException(404, f"no {entity} with key(s) {missing[:10]}")

    def apply(key: tuple[Any, ...]) -> None:
        if body.delete:
            sandbox.writer.delete(entity, key)
        elif body.set:
            sandbox.writer.put(
                entity, {**dict(zip(spec.keys, key, strict=True)), **body.set}, if_match=True, admin=True
            )
        else:
            sandbox.writer.touch(entity, key)

    if body.single_transaction:
        with sandbox.store.transaction():
            for key in keys:
                apply(key)
    else:
        for key in keys:
            with sandbox.store.transaction():
                apply(key)
    return {"changed": len(keys)}


@router.get("/push/definitions")
async def push_definitions(request: Request) -> list[PushDefinition]:
    return list(_sandbox(request).push.definitions.values())


@router.post("/push/definitions", status_code=201)
async def put_push_definition(body: PushDefinition, request: Request) -> PushDefinition:
    """Create or replace the definition named `query`."""
    _sandbox(request).push.definitions[body.query] = body
    return body


@router.delete("/push/definitions/{query}", status_code=204)
async def delete_push_definition(query: str, request: Request) -> None:
    if _sandbox(request).push.definitions.pop(query, None) is None:
        raise HTTPException(404, f"no push definition {query!r}")


@router.get("/push/failed")
async def failed_pushes(request: Request) -> list[dict[str, Any]]:
    return [delivery.summary() for delivery in _sandbox(request).push.failed.values()]


@router.post("/push/failed/resend")
async def resend_pushes(request: Request, body: ResendRequest | None = None) -> dict[str, int]:
    return {"resent": _sandbox(request).push.resend(body.ids if body else None)}


@router.get("/faults")
async def get_knobs(request: Request) -> Knobs:
    return _sandbox(request).knobs


@router.patch("/faults")
async def patch_knobs(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """Change any of the knobs; `{"expire_sessions": true}` also ends every session now."""
    sandbox = _sandbox(request)
    expire = body.pop("expire_sessions", False)
    if not isinstance(expire, bool):
        raise HTTPException(422, "expire_sessions must be true or false")
    try:
        knobs = Knobs.model_validate({**sandbox.knobs.model_dump(), **body})
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from exc
    sandbox.set_knobs(knobs)
    expired = sandbox.auth.expire_all() if expire else 0
    return {**knobs.model_dump(), "expired_sessions": expired}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    sandbox = _sandbox(request)
    counts = sandbox.stats.requests
    return {
        "requests": dict(sorted(counts.items())),
        "total": sum(counts.values()),
        "declined_429": sandbox.stats.declined,
        "injected_errors": sandbox.stats.injected_errors,
        "sessions": len(sandbox.auth.sessions),
        "push": {
            "delivered": sandbox.push.delivered,
            "pending": sandbox.push.pending,
            "failed": len(sandbox.push.failed),
        },
        "records": {name: len(table.rows) for name, table in sandbox.store.tables.items()},
    }


@router.delete("/stats", status_code=204)
async def reset_stats(request: Request) -> None:
    _sandbox(request).stats.reset()
