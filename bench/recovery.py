"""Table recovery: what a wiped worker rebuilds, checked row by row, and recovery at scale.

``bench/hub.py``'s ``recovery`` restarts the last drained one-worker hub with its data dir
intact, then wiped (a drain leaves a few thousand changelog records, packed and coalesced per
batch: the restore then takes a fraction of a second, and fixed costs weigh as much as
records). Two additions here:

- **Rows checked**: before the wipe, every row of every table partition (the RocksDB files
  under the worker's data dir, read with rocksdict once the worker has stopped) and, after each
  wiped restart, the same again: every row must be back byte for byte, and each partition's
  persisted changelog offset (faust's ``__faust\\0offset__`` key, where the next recovery starts)
  must be the last offset of its changelog partition.
- **At scale** (``--recovery-records N``): each changelog partition's own records appended to it
  again, in order, until the changelogs hold at least N records (a changelog of rows updated
  many times before compaction: the last record of every key is unchanged, so the rebuilt
  tables must equal the drained ones exactly), then the wiped restart once more: records
  restored per second where the records outweigh the fixed costs. ``--recovery-profile`` runs
  py-spy on that worker meanwhile.

``python -m bench.recovery`` does only this: one hub drain of ``--events`` and its recovery.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rocksdict import AccessType, Options, Rdict

from bench import procstat
from bench.context import Context
from bench.kafka_io import QUIET
from bench.profile import Sampler, summarise
from streams.faust_patches import fast_recovery
from tables.store import is_pack, unpack_rows

OFFSET_KEY = b"__faust\x00offset__"  # faust.stores.rocksdb.Store.offset_key
FAUST_STARTED = "Restoring state from changelog topics"
FAUST_DONE = "Done reading from changelog topics"

# (table, partition) -> rows, and -> persisted changelog offset
Rows = dict[tuple[str, int], dict[bytes, bytes]]


@dataclass
class Snapshot:
    rows: Rows
    offsets: dict[tuple[str, int], int | None]

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def tables_dir(deployment: Any) -> Path:
    """faust's table directory of the deployment's first worker (datadir/<app id>/v1/tables)."""
    return Path(deployment.data_dir) / str(deployment.app_id) / "v1" / "tables"


def snapshot(directory: Path) -> Snapshot:
    """Every row and persisted offset of every table partition under ``directory`` (faust's
    ``<table>-<partition>.db``), read-only; the worker must be stopped."""
    rows: Rows = {}
    offsets: dict[tuple[str, int], int | None] = {}
    for path in sorted(directory.glob("*-*.db")):
        name, _, number = path.name.removesuffix(".db").rpartition("-")
        options = Options(raw_mode=True)
        db = Rdict(str(path), options, access_type=AccessType.read_only())
        try:
            found = {bytes(key): bytes(value) for key, value in db.items()}  # type: ignore[arg-type]
        finally:
            db.close()
        offset = found.pop(OFFSET_KEY, None)
        rows[(name, int(number))] = found
        offsets[(name, int(number))] = None if offset is None else int(offset)
    return Snapshot(rows, offsets)


def compare(before: Snapshot, after: Snapshot, ends: dict[tuple[str, int], int]) -> list[str]:
    """What differs: rows missing, different or extra; persisted offsets not at the end of
    their changelog partition (``ends``: (table, partition) -> end offset)."""
    problems: list[str] = []
    for where in sorted(set(before.rows) | set(after.rows)):
        old, new = before.rows.get(where, {}), after.rows.get(where, {})
        if old == new:
            continue
        missing = len(old.keys() - new.keys())
        extra = len(new.keys() - old.keys())
        changed = sum(1 for key in old.keys() & new.keys() if old[key] != new[key])
        problems.append(
            f"table {where[0]}[{where[1]}]: {missing} rows missing, {changed} different, "
            f"{extra} extra after the rebuild"
        )
    for where, end in sorted(ends.items()):
        if end > 0 and after.offsets.get(where) != end - 1:
            problems.append(
                f"table {where[0]}[{where[1]}]: persisted offset {after.offsets.get(where)}, "
                f"the changelog's last offset is {end - 1}"
            )
    return problems


def changelog_ends(ctx: Context, deployment: Any) -> dict[tuple[str, int], int]:
    """(table, partition) -> end offset of its changelog partition."""
    ends: dict[tuple[str, int], int] = {}
    prefix = deployment.app_id + "-"
    for topic in deployment.changelogs():
        table = topic.removeprefix(prefix).removesuffix("-changelog")
        for partition, (_, high) in ctx.kafka.watermarks(topic).items():
            ends[(table, partition)] = high
    return ends


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def restore_seconds(log_text: str, started_mark: str, done_mark: str) -> float:
    """From the first ``started_mark`` line to the last ``done_mark`` line in one worker's log
    (0 when either is missing)."""
    started: datetime | None = None
    done: datetime | None = None
    for line in log_text.splitlines():
        match = LOG_TIME.match(line)
        if match is None:
            continue
        at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
        if started_mark in line and started is None:
            started = at
        elif done_mark in line:
            done = at
    if started is None or done is None:
        return 0.0
    return (done - started).total_seconds()


def restore_timing(log_text: str) -> tuple[float, str]:
    """Restore seconds from one worker start's log, and whose lines they came from: FIN's bulk
    reader (with faust's own path after it when the reader left anything) or faust alone."""
    bulk = restore_seconds(log_text, fast_recovery.LOG_STARTED, fast_recovery.LOG_DONE)
    faust_after = restore_seconds(log_text, FAUST_STARTED, FAUST_DONE)
    if bulk and faust_after:
        first = restore_seconds(log_text, fast_recovery.LOG_STARTED, FAUST_DONE)
        return first, "FIN bulk reader, then faust"
    if bulk:
        return bulk, "FIN bulk reader"
    return faust_after, "faust"


@dataclass
class AtScale:
    changelog_records: int
    appended: int
    seconds_to_append: float
    recovery_seconds: float
    restored_by: str
    seconds_to_ready_wiped: float
    rows_checked: int
    problems: list[str] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    # Before the restart: seconds waited for the broker to go quiet after the append (its log
    # cleaner and flushes compete for the same cores), and its cores in the last second of that.
    quiet_wait_s: float = 0.0
    broker_cores_before: float | None = None
    # The broker's cores from the restart to /ready (what the restore shared the machine with).
    broker_cores_during: float | None = None
    # The table rows those records write (a packed record holds many: tables/store.py), so
    # records/s and rows/s can be told apart; 0 when not counted.
    changelog_rows: int = 0

    @property
    def records_per_s(self) -> float:
        return self.changelog_records / self.recovery_seconds if self.recovery_seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.changelog_rows / self.recovery_seconds if self.recovery_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "changelog_records": self.changelog_records,
            "appended": self.appended,
            "seconds_to_append": round(self.seconds_to_append, 2),
            "recovery_seconds": round(self.recovery_seconds, 3),
            "restored_by": self.restored_by,
            "records_per_s": round(self.records_per_s),
            "changelog_rows": self.changelog_rows,
            "rows_per_s": round(self.rows_per_s),
            "seconds_to_ready_wiped": round(self.seconds_to_ready_wiped, 2),
            "rows_checked": self.rows_checked,
            "problems": self.problems,
            "profile": self.profile,
            "quiet_wait_s": round(self.quiet_wait_s, 1),
            "broker_cores_before": self.broker_cores_before,
            "broker_cores_during": self.broker_cores_during,
        }


def rows_in(key: bytes | None, value: bytes | None) -> int:
    """The table rows one changelog record writes when restored: a pack's rows, else one."""
    if is_pack(key) and value is not None:
        return sum(1 for _ in unpack_rows(value))
    return 1


@dataclass(frozen=True)
class Appended:
    """What ``append_copies`` found and did."""

    before: int  # records in the changelogs before
    appended: int  # records appended
    seconds: float  # appending them
    rows: int  # table rows the changelogs' records write when restored (packs expanded)


def append_copies(ctx: Context, topics: Sequence[str], target: int) -> Appended:
    """Append each changelog partition's own records to it again, in order, until the topics
    hold at least ``target`` records."""
    records: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    reader = Consumer(
        {
            **QUIET,
            "bootstrap.servers": ctx.bootstrap,
            "group.id": "fin-bench-recovery",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
        }
    )
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        for partition, (low, high) in ctx.kafka.watermarks(topic).items():
            if high > low:
                ends[(topic, partition)] = high
                records[(topic, partition)] = []
    before = sum(ends.values())
    if not ends or before >= target:
        reader.close()
        return Appended(before, 0, 0.0, 0)
    reader.assign([TopicPartition(topic, partition, 0) for topic, partition in ends])
    positions = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + 300
    try:
        while any(positions[where] < end for where, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the changelogs took over 300 s")
            for message in reader.consume(10_000, timeout=0.5):
                name, number, offset = message.topic(), message.partition(), message.offset()
                if message.error() is not None or name is None or number is None:
                    continue
                where = (name, number)
                if offset is None or where not in ends or offset >= ends[where]:
                    continue
                records[where].append((message.key(), message.value()))
                positions[where] = offset + 1
    finally:
        reader.close()
    copies = math.ceil((target - before) / before)
    # Read from offset 0, so ``before`` counts offsets, ``found`` the records still there
    # (none compacted yet in a bench's fresh topics; if some were, they are not restored).
    original_rows = sum(rows_in(key, value) for found in records.values() for key, value in found)
    producer = Producer(
        {
            **QUIET,
            "bootstrap.servers": ctx.bootstrap,
            "acks": "all",
            "enable.idempotence": True,  # in order, once, whatever the retries
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    started = time.monotonic()
    appended = 0
    for _ in range(copies):
        for (topic, partition), found in records.items():
            for key, value in found:
                while True:
                    try:
                        producer.produce(
                            topic, value=value, key=key, partition=partition, on_delivery=delivered
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                appended += 1
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining or failures:
        raise RuntimeError(f"appending failed: {remaining} not delivered ({failures[:3]})")
    return Appended(before, appended, time.monotonic() - started, original_rows * (copies + 1))


def at_scale(
    ctx: Context,
    deployment: Any,
    before: Snapshot,
    target: int,
    profile_to: Path | None = None,
) -> AtScale:
    """The drained (and stopped) worker's changelogs grown to ``target`` records, its data dir
    wiped, the worker started again: restore time, /ready, and every row checked against
    ``before`` (the tables as the drain left them)."""
    topics = deployment.changelogs()
    grown = append_copies(ctx, topics, target)
    records = grown.before + grown.appended
    broker = procstat.broker_pid()
    quiet_s, broker_before = procstat.wait_until_quiet(broker)
    shutil.rmtree(deployment.data_dir, ignore_errors=True)
    deployment.data_dir.mkdir(parents=True)
    log_offset = deployment.worker.log_path.stat().st_size
    sampler: Sampler | None = None
    broker_started, started = procstat.cpu_seconds_or_none(broker), time.monotonic()
    deployment.worker.start()
    try:
        if profile_to is not None:
            sampler = Sampler.attach(deployment.pid, profile_to, rate=500)
        ready = deployment.wait_ready(interval_s=0.05)
        broker_ended, ended = procstat.cpu_seconds_or_none(broker), time.monotonic()
    finally:
        if sampler is not None:
            sampler.stop()
        deployment.worker.stop()
    broker_during = (
        round((broker_ended - broker_started) / (ended - started), 2)
        if broker_started is not None and broker_ended is not None and ended > started
        else None
    )
    with deployment.worker.log_path.open("rb") as handle:
        handle.seek(log_offset)
        log_text = handle.read().decode(errors="replace")
    seconds, by = restore_timing(log_text)
    after = snapshot(tables_dir(deployment))
    problems = compare(before, after, changelog_ends(ctx, deployment))
    profile = summarise(profile_to) if profile_to is not None and profile_to.exists() else None
    return AtScale(
        records,
        grown.appended,
        grown.seconds,
        seconds,
        by,
        ready,
        after.row_count,
        problems,
        profile,
        quiet_s,
        None if broker_before is None else round(broker_before, 2),
        broker_during,
        grown.rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """One hub drain of ``--events`` and its recovery (intact, wiped, at scale); nothing else."""
    from bench import __main__ as bench_main
    from bench import dataset, hub
    from bench.context import registry_url_from_ops, stop_workers_on_sigterm
    from bench.kafka_io import Kafka
    from ledger.chart import default_chart_path, load_chart
    from schemas.catalog import SchemaCatalog
    from schemas.codec import Encoder
    from schemas.registry import RegistryClient, SchemaIds

    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=main.__doc__)
    parser.add_argument("--events", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--recovery-records", type=int, default=200_000)
    parser.add_argument("--recovery-profile", type=Path, default=None)
    parser.add_argument("--keep-scratch", action="store_true")
    args = parser.parse_args(argv)
    stop_workers_on_sigterm()
    bench_main.ensure_infrastructure()
    bootstrap = "127.0.0.1:9092"
    ctx = Context(bootstrap, registry_url_from_ops(), bench_main.SCRATCH, Kafka(bootstrap))
    ctx.scratch = bench_main.SCRATCH / f"run-{ctx.run_id}"
    ctx.scratch.mkdir(parents=True)
    try:
        catalog = SchemaCatalog.load()
        chart = load_chart(default_chart_path())
        registry = RegistryClient(ctx.registry_url)
        encoder = Encoder(
            catalog, SchemaIds(catalog, registry, topic_prefix=ctx.new_prefix("load"))
        )
        events = dataset.build(args.seed, args.events, encoder, chart)
        result, deployment = hub.drain(ctx, events, label="recovery", keep=True)
        bench_main.say(bench_main._line(result, 1))
        measured = hub.recovery(
            ctx, deployment, scale_records=args.recovery_records, profile_to=args.recovery_profile
        )
        bench_main.say(f"recovery: {measured.to_json()}")
        registry.close()
    finally:
        for prefix in ctx.prefixes:
            ctx.cleanup(prefix)
        ctx.kafka.close()
        if not args.keep_scratch:
            shutil.rmtree(ctx.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
