"""Per-entity queue figures from the RabbitMQ management API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import HTTPException

from shared.messaging.topology import ENTITIES, Topology, kinds_of
from shared.settings import Settings


async def queue_stats(settings: Settings, topology: Topology) -> dict[str, dict[str, int]]:
    amqp = urlsplit(settings.amqp_url_plain)
    vhost = quote(amqp.path.lstrip("/") or "/", safe="")
    auth = (amqp.username or "guest", amqp.password or "guest")
    url = f"{settings.rabbitmq_management_url}/api/queues/{vhost}"
    params = {"columns": "name,messages_ready,messages_unacknowledged,consumers,messages"}
    try:
        async with httpx.AsyncClient(timeout=5.0, auth=auth) as client:
            response = await client.get(url, params=params)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise HTTPException(503, f"RabbitMQ management API unavailable: {type(exc).__name__}") from exc
    by_name: dict[str, dict[str, Any]] = {q["name"]: q for q in response.json()}
    prefix = f"{topology.prefix}."
    stats: dict[str, dict[str, int]] = {}
    for entity in ENTITIES:
        work = [topology.queue(entity, kind) for kind in kinds_of(entity)]
        row = {"ready": 0, "unacked": 0, "consumers": 0, "retrying": 0, "dead_lettered": 0}
        for name in work:
            q = by_name.get(name, {})
            row["ready"] += q.get("messages_ready", 0)
            row["unacked"] += q.get("messages_unacknowledged", 0)
            row["consumers"] += q.get("consumers", 0)
        row["retrying"] = sum(
            q.get("messages", 0)
            for n, q in by_name.items()
            if n.startswith(prefix) and any(n.startswith(f"{w}.retry") for w in work)
        )
        row["dead_lettered"] = by_name.get(topology.dlq(entity), {}).get("messages", 0)
        stats[entity] = row
    return stats
