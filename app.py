"""FIN command line: the worker and the operator tools.

    python app.py worker                      run a worker (configured by FIN_* environment)
    python app.py topics create               create the contract topics
    python app.py schemas register|check      register local schemas / check against the registry
    python app.py produce --file F.jsonl      publish JSON events (Avro, Confluent wire format)
    python app.py produce --demo [--rate N]   the specification's samples, then synthetic traffic
    python app.py dlq list|show|replay        inspect dead letters and replay them after a fix
    python app.py ledger verify [--topic T]   check the hash chains of the ledger topic

Settings are read once, here, into one frozen object; nothing happens at import time.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from settings import Settings

log = logging.getLogger("fin")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("worker", help="run a FIN worker")

    topics = commands.add_parser("topics", help="manage contract topics")
    topics.add_argument("action", choices=["create"])

    schemas = commands.add_parser("schemas", help="register or check the Avro schemas")
    schemas.add_argument("action", choices=["register", "check"])

    produce = commands.add_parser("produce", help="publish events")
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="JSON lines, one event per line")
    source.add_argument("--demo", action="store_true", help="samples, then synthetic traffic")
    produce.add_argument("--rate", type=float, default=None, help="events per second")
    produce.add_argument("--count", type=int, default=None, help="synthetic events to send")
    produce.add_argument("--seed", type=int, default=7)

    dlq = commands.add_parser("dlq", help="list, show and replay dead letters")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_list = dlq_actions.add_parser("list", help="one line per dead letter, counts by reason")
    dlq_show = dlq_actions.add_parser("show", help="headers, key and decoded payload of one")
    dlq_show.add_argument("position", metavar="PARTITION:OFFSET")
    dlq_replay = dlq_actions.add_parser("replay", help="re-publish to the source topic")
    for action in (dlq_list, dlq_replay):
        action.add_argument("--reason", action="append", default=[], help="repeatable")
        action.add_argument("--since", help="ISO 8601, inclusive (fin.rejected_at)")
        action.add_argument("--until", help="ISO 8601, exclusive (fin.rejected_at)")
        action.add_argument(
            "--topic", action="append", default=[], help="source topic (contract name)"
        )
    dlq_list.add_argument("--limit", type=int, default=1000, help="lines to print at most")
    dlq_list.add_argument("--json", action="store_true", help="one JSON document")
    dlq_replay.add_argument(
        "--id", action="append", default=[], metavar="PARTITION:OFFSET", help="repeatable"
    )
    dlq_replay.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    dlq_replay.add_argument("--max-attempts", type=int, default=3, help="cap per record")

    ledger = commands.add_parser("ledger", help="the book of record: verify its hash chains")
    ledger_actions = ledger.add_subparsers(dest="action", required=True)
    verify = ledger_actions.add_parser(
        "verify", help="read the ledger topic; report the first break of each chain"
    )
    verify.add_argument("--topic", help="another topic, e.g. a copy (default: the ledger topic)")
    verify.add_argument("--json", action="store_true", help="one JSON document")

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # kafka-python narrates every connection at INFO; only its warnings help an operator.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.command == "worker":
        return _worker(settings)
    if args.command == "topics":
        from streams.admin import ensure_topics

        created = ensure_topics(settings)
        print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
        return 0
    if args.command == "schemas":
        return _schemas(settings, args.action)
    if args.command == "produce":
        return _produce(settings, args)
    if args.command == "dlq":
        return _dlq(settings, args)
    if args.command == "ledger":
        return _ledger(settings, args)
    parser.error(f"unknown command {args.command}")
    return 2


def _worker(settings: Settings) -> int:
    # The composition root: the runtime (streams/, tables/), then the REST views on it (api/).
    from api.routes import register_routes
    from streams.worker import create_runtime, run_hub

    runtime = create_runtime(settings)
    register_routes(
        runtime.hub,
        chart=runtime.chart,
        catalog=runtime.catalog,
        registry=runtime.registry,
        lag=runtime.lag,
    )
    return run_hub(runtime.hub)


def _schemas(settings: Settings, action: str) -> int:
    from schemas.catalog import SchemaCatalog
    from schemas.registry import RegistryClient, check_all, register_all

    catalog = SchemaCatalog.load(settings.schema_dir)
    client = RegistryClient(settings.schema_registry_url, timeout_s=settings.registry_timeout_s)
    if action == "register":
        ids = register_all(catalog, client, topic_prefix=settings.topic_prefix)
        for subject, schema_id in sorted(ids.items()):
            print(f"{subject}: id {schema_id}")
        return 0
    problems = check_all(catalog, client, topic_prefix=settings.topic_prefix)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} schema problem(s)", file=sys.stderr)
        return 1
    print("all local schemas are registered and compatible")
    return 0


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    from tools.produce import EventProducer, produce_demo, produce_file

    producer = EventProducer.from_settings(settings)
    try:
        if args.file is not None:
            return 0 if produce_file(args.file, producer) else 1
        produce_demo(producer, rate=args.rate, count=args.count, seed=args.seed)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        producer.close()


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from streams.deadletter import DlqError, DlqPosition
    from streams.topic_scan import TopicReadError
    from tools.dlq import list_command, replay_command, show_command
    from tools.dlq_records import Selection

    try:
        if args.action == "show":
            return show_command(settings, DlqPosition.parse(args.position), sys.stdout)
        selection = Selection.from_arguments(
            reasons=args.reason,
            since=args.since,
            until=args.until,
            source_topics=args.topic,
            positions=getattr(args, "id", []),
        )
        if args.action == "list":
            return list_command(
                settings, selection, sys.stdout, limit=args.limit, as_json=args.json
            )
        return replay_command(
            settings,
            selection,
            sys.stdout,
            max_attempts=args.max_attempts,
            dry_run=args.dry_run,
        )
    except (DlqError, TopicReadError) as exc:
        print(f"dlq {args.action}: {exc}", file=sys.stderr)
        return 1


def _ledger(settings: Settings, args: argparse.Namespace) -> int:
    from tools.ledger_verify import LedgerVerifyError, verify_command

    try:
        return verify_command(settings, sys.stdout, topic=args.topic, as_json=args.json)
    except LedgerVerifyError as exc:
        print(f"ledger verify: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
