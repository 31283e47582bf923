"""`python -m services.ops dlq`: list, replay and discard dead letters on the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aio_pika
import pytest

from services.ops import dlq
from shared.messaging.envelope import Envelope
from shared.messaging.publisher import envelope_message
from shared.messaging.topology import Topology
from tests.support.broker import drain

ROOT = Path(__file__).resolve().parents[2]


def envelope(key: str, attempt: int = 0) -> Envelope:
    return Envelope(entity="product", kind="records", op="upsert", key=key, source="test", attempt=attempt)


async def dead_letter(amqp_url: str, topology: Topology, keys: list[str]) -> list[str]:
    """Dead letters the two ways they arise: published by a consumer that gave up (`x-reason`), and
    dead-lettered by the broker (`x-death`, here a reject; in production the delivery limit). Returns ids."""
    ids = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for i, key in enumerate(keys):
            message = envelope_message(envelope(key, attempt=4), "test")
            ids.append(message.message_id or "")
            if i % 2 == 0:  # what BatchConsumer does on DeadLetter or after the last retry
                message.headers = {
                    **message.headers,
                    "x-reason": f"gave up after 5 attempts: {key} failed",
                    "x-original-queue": topology.queue("product", "records"),
                }
                await channel.default_exchange.publish(message, topology.dlq("product"))
            else:
                await channel.default_exchange.publish(message, topology.queue("product", "records"))
                queue = await channel.get_queue(topology.queue("product", "records"), ensure=False)
                got = await queue.get(timeout=5)
                assert got is not None
                await got.reject(requeue=False)
    for _ in range(100):  # the broker dead-letters asynchronously
        if await dlq.count(amqp_url, topology, "product") == len(keys):
            break
        await asyncio.sleep(0.05)
    assert await dlq.count(amqp_url, topology, "product") == len(keys)
    return ids


async def test_list_shows_without_removing_then_replay_by_id_and_all(amqp_url: str, topology: Topology) -> None:
    ids = await dead_letter(amqp_url, topology, ["A", "B", "C"])

    rows, total = await dlq.list_dead_letters(amqp_url, topology, "product")
    assert total == 3 and sorted(r.message_id for r in rows) == sorted(ids)
    assert await dlq.count(amqp_url, topology, "product") == 3
    by_key = {r.key: r for r in rows}
    assert by_key["A"].reason == "gave up after 5 attempts: A failed" and by_key["A"].deaths == 0
    assert by_key["A"].kind == "records" and by_key["A"].attempt == 4
    assert by_key["B"].reason == "rejected" and by_key["B"].deaths == 1 and by_key["B"].first_death_at is not None
    assert by_key["B"].original_queue == topology.queue("product", "records")

    result = await dlq.replay(amqp_url, topology, "product", ids={ids[0]})
    assert result.ok and [r.message_id for r in result.done] == [ids[0]]
    assert await dlq.count(amqp_url, topology, "product") == 2
    back = await drain(amqp_url, topology.queue("product", "records"), idle=0.5)
    assert [m.message_id for m in back] == [ids[0]]
    replayed = back[0]
    assert Envelope.from_bytes(replayed.body).attempt == 0 and replayed.headers["x-attempt"] == 0
    assert replayed.headers["x-replayed"] == 1
    assert not {"x-death", "x-reason", "x-first-death-reason"} & set(replayed.headers)

    result = await dlq.replay(amqp_url, topology, "product")
    assert result.ok and len(result.done) == 2
    assert await dlq.count(amqp_url, topology, "product") == 0
    back = await drain(amqp_url, topology.queue("product", "records"), idle=0.5)
    assert Counter(m.message_id for m in back) == Counter(ids[1:])


async def test_discard_by_id_removes_only_that_one(amqp_url: str, topology: Topology) -> None:
    ids = await dead_letter(amqp_url, topology, ["A", "B", "C"])
    result = await dlq.discard(amqp_url, topology, "product", ids={ids[1], "no-such-id"})
    assert [r.message_id for r in result.done] == [ids[1]] and result.missing == ["no-such-id"]
    rows, total = await dlq.list_dead_letters(amqp_url, topology, "product")
    assert total == 2 and sorted(r.message_id for r in rows) == sorted([ids[0], ids[2]])
    assert await drain(amqp_url, topology.queue("product", "records"), idle=0.3) == []


async def test_a_body_that_is_not_an_envelope_stays_in_the_dlq(amqp_url: str, topology: Topology) -> None:
    ids = await dead_letter(amqp_url, topology, ["A"])
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        bad = aio_pika.Message(b"{not json", message_id="bad-1", headers={"x-reason": "invalid envelope"})
        await channel.default_exchange.publish(bad, topology.dlq("product"))
    result = await dlq.replay(amqp_url, topology, "product")
    assert [r.message_id for r in result.done] == ids
    assert [(r.message_id, "not valid JSON" in why) for r, why in result.kept] == [("bad-1", True)]
    assert not result.ok and await dlq.count(amqp_url, topology, "product") == 1


def cli(prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMQP_PREFIX": prefix}
    return subprocess.run(
        [sys.executable, "-m", "services.ops", "dlq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def test_cli(amqp_url: str, topology: Topology) -> None:
    ids = await dead_letter(amqp_url, topology, ["A", "B"])
    listed = await asyncio.to_thread(cli, topology.prefix, "list", "product", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(m["message_id"] for m in json.loads(listed.stdout)["messages"]) == sorted(ids)
    table = await asyncio.to_thread(cli, topology.prefix, "list", "product")
    assert "2 shown of 2" in table.stdout and "rejected" in table.stdout

    refused = await asyncio.to_thread(cli, topology.prefix, "discard", "product", "--all")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert await dlq.count(amqp_url, topology, "product") == 2

    replayed = await asyncio.to_thread(cli, topology.prefix, "replay", "product", "--id", ids[0], "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert [m["message_id"] for m in json.loads(replayed.stdout)["replayed"]] == [ids[0]]
    discarded = await asyncio.to_thread(cli, topology.prefix, "discard", "product", "--all", "--yes")
    assert discarded.returncode == 0 and "1 discarded" in discarded.stdout
    assert await dlq.count(amqp_url, topology, "product") == 0

    missing = await asyncio.to_thread(cli, f"{topology.prefix}-none", "list", "product")
    assert missing.returncode == 1 and "no queue" in missing.stderr


@pytest.mark.parametrize("name", ["order", "sales_order"])
def test_order_is_the_sales_order_entity(name: str) -> None:
    assert dlq.entity_name(name) == "sales_order"
