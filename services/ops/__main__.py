"""`python -m services.ops dlq list|replay|discard <entity>`: a thin shell over `services.ops.dlq`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import aiormq.exceptions

from services.ops import dlq
from shared.messaging.topology import ENTITIES, Topology
from shared.settings import get_settings

ENTITY_CHOICES = [*ENTITIES, *dlq.ALIASES]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m services.ops", description="Connector operations.")
    groups = top.add_subparsers(dest="group", required=True)
    dlq_parser = groups.add_parser("dlq", help="dead-lettered messages: list, replay, discard")
    actions = dlq_parser.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="show dead letters without removing them (no entity: counts)")
    listing.add_argument("entity", nargs="?", choices=ENTITY_CHOICES)
    listing.add_argument("--limit", type=int, default=100, help="show at most this many (default 100)")
    listing.add_argument("--json", action="store_true")

    for name, text in (("replay", "put dead letters back on the work queue"), ("discard", "delete dead letters")):
        action = actions.add_parser(name, help=text)
        action.add_argument("entity", choices=ENTITY_CHOICES)
        which = action.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every message the DLQ holds now")
        which.add_argument("--id", dest="ids", nargs="+", action="extend", metavar="MESSAGE_ID")
        action.add_argument("--json", action="store_true")
        if name == "discard":
            action.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return top


def table(rows: Sequence[dlq.DeadLetterInfo], extra: dict[int, str] | None = None) -> str:
    header = ["message id", "kind", "op", "key", "attempt", "deaths", "first death", "replays", "reason"]
    lines = [header]
    for i, row in enumerate(rows):
        reason = (extra or {}).get(i) or row.reason or row.envelope_error or ""
        lines.append(
            [
                row.message_id or "-",
                row.kind or "-",
                row.op or "-",
                row.key or "-",
                "-" if row.attempt is None else str(row.attempt),
                str(row.deaths),
                row.first_death_at.strftime("%Y-%m-%d %H:%M:%S") if row.first_death_at else "-",
                str(row.replays),
                reason if len(reason) <= 80 else reason[:77] + "...",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]) for line in lines)


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} Not a terminal: pass --yes to confirm.", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    url, topology = settings.amqp_url_plain, Topology(settings.amqp_prefix)
    if args.action == "list" and args.entity is None:
        counts = {entity: await dlq.count(url, topology, entity) for entity in ENTITIES}
        shown = "\n".join(f"{e:<14}{'no queue' if n is None else n}" for e, n in counts.items())
        print(json.dumps(counts) if args.json else shown)
        return 0
    if args.action == "list":
        rows, total = await dlq.list_dead_letters(url, topology, args.entity, limit=args.limit)
        if args.json:
            print(json.dumps({"total": total, "messages": [r.as_json() for r in rows]}, indent=2))
        else:
            print(table(rows))
            print(f"{len(rows)} shown of {total} in {topology.dlq(dlq.entity_name(args.entity))}")
        return 0
    ids = None if args.all else set(args.ids)
    if args.action == "discard" and not args.yes:
        what = f"all {await dlq.count(url, topology, args.entity) or 0}" if ids is None else f"{len(ids)}"
        if not confirm(f"Discard {what} dead letters of {args.entity} for good?"):
            return 1
    operation = dlq.replay if args.action == "replay" else dlq.discard
    result = await operation(url, topology, args.entity, ids=ids)
    past = "replayed" if args.action == "replay" else "discarded"
    if args.json:
        report = {
            past: [r.as_json() for r in result.done],
            "kept": [{**r.as_json(), "why": why} for r, why in result.kept],
            "missing": result.missing,
        }
        print(json.dumps(report, indent=2))
    else:
        if result.done:
            print(table(result.done))
        print(f"{len(result.done)} {past}")
        if result.kept:
            print(f"{len(result.kept)} kept in the DLQ:")
            print(table([r for r, _ in result.kept], {i: why for i, (_, why) in enumerate(result.kept)}))
        if result.missing:
            print(f"not found in the DLQ: {', '.join(result.missing)}")
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except dlq.DlqError as exc:
        print(f"ops: {exc}", file=sys.stderr)
        return 1
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        print(f"ops: lost the broker ({type(exc).__name__}: {exc}); unacked messages stay in the DLQ", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
