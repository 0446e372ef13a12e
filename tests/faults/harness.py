"""The fault harness: one scenario's FIN on the fault suite's private broker and registry.

A ``FaultRun`` builds the seeded mixed stream of the ledger end-to-end test
(``tests/integration/ledger_helpers.build_scenario``: events spread over nine months, duplicates
under the same and other keys, bad records, then compensations and conflicts), starts worker
processes, publishes, lets the test inject its fault, waits until everything is processed, and
checks the invariant of issue 6 against the independent reference ledger:

* the books read over REST from every running worker equal the reference, and every trial
  balance nets to zero;
* every input record has exactly one outcome: the durable counts of
  ``/api/v1/fin/ledger/integrity`` equal the expected postings, rejections and duplicates; the
  ledger topic holds exactly one distinct entry per reference posting (re-emitted copies after
  a crash are allowed by design, but must be identical); the dead-letter topic holds exactly
  the expected dead letters, one per source position (a re-emitted copy names the same one);
* no change is applied twice to any table (the tables equal the reference);
* every record faust delivers reaches its agent: the workers run with the delivery audit
  (``FIN_DELIVERY_AUDIT=1``) and no worker log may show an agent skipping offsets of a
  partition it kept (``AUDIT processing jump``), even where replays hid the loss from the books;
* no process needs a human: a worker the test kills is restarted as a supervisor would, and a
  worker that exits on its own is restarted by a supervisor thread and reported.

Workers run with a 6 s consumer session timeout (the broker's minimum; faust's default is 60 s)
so a killed member leaves the group in seconds: with the default every kill would stall its
partitions for a minute, a tuning matter, not a correctness one.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import rocksdict
from kafka import KafkaProducer

from ledger.chain import ChainVerifier
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder, Encoder
from schemas.registry import RegistryClient, SchemaIds, register_all, registered_subject
from schemas.wire import frame, unframe
from settings import Settings
from streams.admin import ensure_topics
from tests.fixtures import Deployment, Infra, Worker, free_port
from tests.integration.ledger_helpers import (
    COMPENSATIONS_RESENT,
    Answer,
    Cluster,
    Outgoing,
    Scenario,
    ask_books,
    books_expected,
    books_found,
    build_scenario,
    consumer_lag,
    input_topics,
    integrity_report,
    metric_by_label,
    metric_total,
    read_named_topic,
    read_topic,
    source_position,
    wait_for,
    wait_for_stable_group,
    wait_until_caught_up,
)
from tests.unit.ledger.reference import ReferenceLedger

API = "/api/v1/fin"
PARTITIONS = 4
WORKER_ENV = {
    "BROKER_SESSION_TIMEOUT": "6",
    "BROKER_HEARTBEAT_INTERVAL": "1",
    "FIN_LOG_LEVEL": "info",
    "FIN_DELIVERY_AUDIT": "1",
    # Rows over 1 KiB go to their changelogs in chunks (tables/chunked.py), so every fault here
    # (kill -9 mid-write, rebalance, wipe and restore, broker restart, replay) also strikes the
    # vendor and period rows that are written that way; production chunks rows over 256 KiB.
    "FIN_ROW_CHUNK_BYTES": "1024",
}
SETTLE_TIMEOUT_S = 75.0
# A worker that exits by itself more often than this is crash-looping: a human would be needed.
RESTARTS_MAX = 5
ZERO = Decimal("0.00")
DLQ_REASON = "fin.reason"

Book = dict[tuple[str, Any], Answer]


def fault_seed(default: int) -> int:
    """The test's fixed seed, unless FIN_FAULT_SEED asks for another one (to explore)."""
    raw = os.environ.get("FIN_FAULT_SEED")
    return int(raw) if raw else default


# --- what FIN must make of a load ------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """The outcome of a load: reference books, outcome counts, dead letters, ledger entries."""

    reference: ReferenceLedger
    sent: int
    postings: int
    duplicates: int
    dead_letters: Counter[tuple[bytes | None, bytes | None, str]]
    posting_event_ids: frozenset[str]
    compensations: Mapping[str, str]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "events_in": self.sent,
            "postings": self.postings,
            "rejections": sum(self.dead_letters.values()),
            "duplicates": self.duplicates,
        }

    @classmethod
    def of(
        cls,
        scenario: Scenario,
        *,
        with_follow_up: bool,
        load: Sequence[Outgoing | Pinned] | None = None,
        extra_dead_letters: Iterable[tuple[bytes | None, bytes | None, str]] = (),
        extra_duplicates: int = 0,
    ) -> Expected:
        """For the main stream alone, or for the main stream and the follow-up. ``load`` is
        the main stream as the test sent it, with ``extra_dead_letters`` and
        ``extra_duplicates`` among its records (poison, copies) besides the scenario's own."""
        main = scenario.main if load is None else load
        follow_up = {(record.key, record.value) for record in scenario.follow_up}
        letters = Counter(
            (letter.key, letter.value, letter.reason)
            for letter in scenario.dead_letters
            if with_follow_up or (letter.key, letter.value) not in follow_up
        )
        letters.update(extra_dead_letters)
        if with_follow_up:
            return cls(
                scenario.reference,
                len(main) + len(scenario.follow_up),
                scenario.posted,
                scenario.duplicates + extra_duplicates,
                letters,
                frozenset(scenario.posting_event_ids),
                dict(scenario.compensations),
            )
        return cls(
            scenario.reference_main,
            len(main),
            scenario.posted - len(scenario.compensations),
            scenario.duplicates - COMPENSATIONS_RESENT + extra_duplicates,
            letters,
            frozenset(scenario.posting_event_ids),
            {},
        )


@dataclass(frozen=True)
class Pinned:
    """A record sent to an explicit partition instead of the one its key hashes to."""

    record: Outgoing
    partition: int


Load = Sequence[Outgoing | Pinned]


@dataclass
class Exit:
    """A worker process that ended although nobody stopped it."""

    worker: int
    returncode: int | None
    at_s: float
    log_tail: str


@dataclass
class Findings:
    """What a run saw besides the invariant: copies re-emitted, processes restarted."""

    ledger_records: int = 0
    distinct_entries: int = 0
    dead_letter_records: int = 0
    distinct_dead_letters: int = 0
    unexpected_exits: list[Exit] = field(default_factory=list)

    @property
    def reemitted_entries(self) -> int:
        return self.ledger_records - self.distinct_entries

    @property
    def reemitted_dead_letters(self) -> int:
        return self.dead_letter_records - self.distinct_dead_letters


# --- the run -----------------------------------------------------------------------------------


class FaultRun:
    """One scenario: its own topic prefix and consumer group on the fault infra, its workers."""

    def __init__(self, infra: Infra, root: Path, *, name: str, seed: int, events: int) -> None:
        self.name = name
        self.seed = seed
        self.infra = infra
        self.started = time.monotonic()
        # One generator per purpose, all derived from the seed: fault timing, load changes.
        self.rng = random.Random(f"fault {name} {seed}")
        self.deployment = Deployment(infra=infra, root=root, partitions=PARTITIONS)
        self.registry = RegistryClient(infra.registry_url)
        self.catalog = SchemaCatalog.load()
        # What `app.py topics create` and `app.py schemas register` do, in this process.
        ensure_topics(Settings.from_env(self.deployment.env()))
        register_all(self.catalog, self.registry, topic_prefix=self.deployment.prefix)
        self.cluster = Cluster(self.deployment)
        self.schema_ids = SchemaIds(
            self.catalog, self.registry, topic_prefix=self.deployment.prefix
        )
        self.encoder = Encoder(self.catalog, self.schema_ids)
        self.scenario = build_scenario(
            seed=seed,
            count=events,
            partitions=PARTITIONS,
            encode=self.encoder.encode,
            schema_id_for=self.schema_ids,
        )
        self.producer = KafkaProducer(
            bootstrap_servers=infra.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        # The main stream as the test sends it; a test may add records to it (poison, copies)
        # and then says what they must become in extra_dead_letters / extra_duplicates.
        self.load: list[Outgoing | Pinned] = list(self.scenario.main)
        self.extra_dead_letters: list[tuple[bytes | None, bytes | None, str]] = []
        self.extra_duplicates = 0
        self.workers: list[Worker] = []
        self.findings = Findings()
        self._wanted: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        guarantee = os.environ.get("FIN_PROCESSING_GUARANTEE", "at_least_once")
        self.log(
            f"seed={seed} (FIN_FAULT_SEED={seed} reproduces it) events={events} "
            f"records={self.scenario.sent} guarantee={guarantee} prefix={self.deployment.prefix}"
        )

    # -- bookkeeping

    def log(self, text: str) -> None:
        print(f"[{self.name} +{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def close(self) -> None:
        self._stop.set()
        self._supervisor.join(timeout=5)
        with self._lock:
            self._wanted.clear()
        for worker in self.workers:
            worker.kill()  # the run is over: no need to wait for clean shutdowns
        self.producer.close(timeout=10)
        self.cluster.close()
        self.registry.close()
        self.log("closed")

    # -- workers

    def running(self) -> list[Worker]:
        """Workers that should be running now (whether or not they answer yet)."""
        with self._lock:
            return [self.workers[index] for index in sorted(self._wanted)]

    def live(self) -> list[Worker]:
        """``running()``, failing at once if a worker is crash-looping."""
        exits = Counter(e.worker for e in self.findings.unexpected_exits)
        looping = [index for index, count in exits.items() if count >= RESTARTS_MAX]
        assert not looping, (
            f"worker(s) {looping} exited {RESTARTS_MAX} times by themselves; last log:\n"
            + self.findings.unexpected_exits[-1].log_tail
        )
        return self.running()

    def start_worker(self, *, wait: bool = True) -> Worker:
        index = len(self.workers)
        port = free_port()
        data_dir = self.deployment.root / f"worker-{index}"
        worker = Worker(
            env=self.deployment.env(
                FIN_WEB_PORT=str(port), FIN_DATA_DIR=str(data_dir), **WORKER_ENV
            ),
            port=port,
            log_path=self.deployment.root / f"worker-{index}.log",
        )
        self.workers.append(worker)
        self.restart(worker, wait=wait)
        return worker

    def restart(self, worker: Worker, *, wait: bool = True) -> None:
        """Start ``worker`` again on its own port and data dir, as a supervisor would."""
        began = time.monotonic()
        worker.start()
        with self._lock:
            self._wanted.add(self.workers.index(worker))
        if wait:
            worker.wait_ready()
            self.log(
                f"worker-{self.workers.index(worker)} ready in {time.monotonic() - began:.1f}s"
            )

    def kill(self, worker: Worker) -> None:
        """``kill -9`` of the worker's process group, wherever it is in its work."""
        with self._lock:
            self._wanted.discard(self.workers.index(worker))
        worker.kill()
        self.log(f"worker-{self.workers.index(worker)} killed (SIGKILL)")

    def seconds_until_takeover(self, killed_at: float, timeout_s: float = 120.0) -> float | None:
        """After a kill: seconds from ``killed_at`` (time.monotonic) until the group commits
        again on a partition that had records waiting and did not move in the first second
        (the dead worker's): how long the group stalled (issue 14: 60-90 s with a 60 s
        session timeout). None when no partition with records waiting stood still in that
        second (the killed worker had nothing left to do): then there is no stall to time."""
        before = self.cluster.committed()
        time.sleep(1.0)
        after_one_second = self.cluster.committed()
        ends = self.cluster.end_offsets(input_topics())
        stalled = {
            tp
            for tp, end in ends.items()
            if after_one_second.get(tp, 0) == before.get(tp, 0)
            and after_one_second.get(tp, 0) < end
        }
        if not stalled:
            self.log("no partition with records waiting stood still after the kill: no stall")
            return None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.cluster.committed()
            if any(now.get(tp, 0) > after_one_second.get(tp, 0) for tp in stalled):
                seconds = time.monotonic() - killed_at
                self.log(f"the group took over the killed worker's partitions in {seconds:.1f}s")
                return seconds
            time.sleep(0.25)
        raise TimeoutError(f"no stalled partition moved within {timeout_s:.0f}s: {sorted(stalled)}")

    def terminate(self, worker: Worker, timeout_s: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM, and how the worker ended: (exit code, seconds); None if it had to be
        killed after ``timeout_s``."""
        with self._lock:
            self._wanted.discard(self.workers.index(worker))
        assert worker.process is not None
        began = time.monotonic()
        os.killpg(worker.process.pid, signal.SIGTERM)
        try:
            code: int | None = worker.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = None
        seconds = time.monotonic() - began
        self.log(f"worker-{self.workers.index(worker)} SIGTERM: exit {code} after {seconds:.1f}s")
        return code, seconds

    def tables_dir(self, worker: Worker) -> Path:
        """The worker's RocksDB directory (faust's datadir for this app id)."""
        return Path(worker.env["FIN_DATA_DIR"]) / worker.env["FIN_APP_ID"]

    def wipe_tables(self, worker: Worker) -> Path:
        """Delete the worker's RocksDB directory (faust's datadir for this app id)."""
        assert worker.process is None or worker.process.poll() is not None, "stop it first"
        tables = self.tables_dir(worker)
        assert tables.is_dir(), f"no table directory at {tables}"
        shutil.rmtree(tables)
        self.log(f"wiped {tables}")
        return tables

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                exited = [
                    index
                    for index in self._wanted
                    if (process := self.workers[index].process) is not None
                    and process.poll() is not None
                ]
            for index in exited:
                if sum(e.worker == index for e in self.findings.unexpected_exits) >= RESTARTS_MAX:
                    continue  # crash-looping: left down, and settle() says so
                worker = self.workers[index]
                assert worker.process is not None
                exit_ = Exit(
                    index,
                    worker.process.returncode,
                    time.monotonic() - self.started,
                    worker.log_tail(40),
                )
                self.findings.unexpected_exits.append(exit_)
                self.log(f"worker-{index} exited by itself with {exit_.returncode}; restarting it")
                with self._lock:
                    if index in self._wanted:
                        worker.start()

    # -- load

    def publish(self, load: Load | None = None) -> None:
        """Send ``load`` (by default the run's main stream, ``self.load``)."""
        load = self.load if load is None else load
        futures = []
        for item in load:
            record, partition = (
                (item.record, item.partition) if isinstance(item, Pinned) else (item, None)
            )
            futures.append(
                self.producer.send(
                    self.deployment.topic(record.topic),
                    key=record.key,
                    value=record.value,
                    partition=partition,
                )
            )
        self.producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=10)
        self.log(f"published {len(futures)} records")

    def progress(self) -> float:
        """Records on the ledger topic as a share of the main stream's reference entries."""
        entries = self.cluster.record_count("fin.ledger.postings")
        return entries / max(1, self.scenario.reference_main.entries)

    def wait_for_progress(self, share: float, timeout_s: float = 120.0) -> None:
        def reached() -> str | None:
            now = self.progress()
            return None if now >= share else f"ledger at {now:.0%}, waiting for {share:.0%}"

        wait_for(reached, timeout_s=timeout_s, what="progress", interval_s=0.1)

    def sleep(self, seconds: float) -> None:
        self.log(f"waiting {seconds:.2f}s")
        time.sleep(seconds)

    def wait_for_stable_group(self, members: int, timeout_s: float = 60.0) -> None:
        began = time.monotonic()
        wait_for_stable_group(self.cluster, members, timeout_s=timeout_s)
        self.log(f"group stable with {members} members after {time.monotonic() - began:.1f}s")

    def lag(self) -> int:
        """Records the group has not committed yet: > 0 means FIN is still under load."""
        return consumer_lag(self.cluster)

    def settle(self, *, events_in: int, entries: int, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        began = time.monotonic()
        wait_until_caught_up(
            self.cluster, self.live, events_in=events_in, entries=entries, timeout_s=timeout_s
        )
        self.log(f"settled in {time.monotonic() - began:.1f}s")

    def settle_for(self, expected: Expected, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        self.settle(
            events_in=expected.sent, entries=expected.reference.entries, timeout_s=timeout_s
        )

    def expected(self, *, with_follow_up: bool) -> Expected:
        return Expected.of(
            self.scenario,
            with_follow_up=with_follow_up,
            load=self.load,
            extra_dead_letters=self.extra_dead_letters,
            extra_duplicates=self.extra_duplicates,
        )

    def finish(
        self,
        *,
        follow_up: bool = True,
        exits_allowed: bool = False,
        settle_timeout_s: float = SETTLE_TIMEOUT_S,
    ) -> Expected:
        """Let the main stream settle (within ``settle_timeout_s``); then (with ``follow_up``)
        send the compensations, copies and conflicts and let them settle; check everything."""
        expected = self.expected(with_follow_up=False)
        self.settle_for(expected, timeout_s=settle_timeout_s)
        if follow_up:
            self.publish(self.scenario.follow_up)
            expected = self.expected(with_follow_up=True)
            self.settle_for(expected)
        self.verify(expected, exits_allowed=exits_allowed)
        return expected

    # -- checks

    def books(self, workers: Sequence[Worker] | None = None) -> Book:
        return ask_books(workers or self.running(), self.scenario.reference)

    def book_differences(self, before: Book, after: Book) -> str:
        """The REST answers that changed, before and after (first 10)."""
        changed = [
            (key, before.get(key), after.get(key))
            for key in sorted(set(before) | set(after), key=str)
            if before.get(key) != after.get(key)
        ]
        lines = [f"{len(changed)} REST answer(s) changed:"]
        lines.extend(
            f"  {key}:\n    before {old}\n    after  {new}" for key, old, new in changed[:10]
        )
        return "\n".join(lines)

    def verify(self, expected: Expected, *, exits_allowed: bool = False) -> Findings:
        """The invariant of issue 6 for this run; see the module docstring."""
        try:
            return self._verify(expected, exits_allowed=exits_allowed)
        except AssertionError:
            self.log(f"expected counts {expected.counts}; diagnosis:\n{self.diagnose()}")
            raise

    def _verify(self, expected: Expected, *, exits_allowed: bool) -> Findings:
        began = time.monotonic()
        running = self.running()
        assert running, "no worker left to ask"
        found = books_found(ask_books(running, expected.reference))
        wanted = books_expected(expected.reference)
        differences = {
            key: {"found": found.get(key), "reference": wanted.get(key)}
            for key in sorted(set(found) | set(wanted), key=str)
            if found.get(key) != wanted.get(key)
        }
        if differences:
            try:
                self.log(self.explain_rows(list(differences)[:5]))
            except Exception as exc:  # the differences below are the finding, not this
                self.log(f"explaining the differing rows failed: {exc!r}")
        skips = self.skipped_deliveries()
        assert not skips, (
            f"{len(skips)} time(s) an agent skipped records faust had delivered (first 10): "
            f"{skips[:10]}"
        )
        assert not differences, (
            f"{len(differences)} book row(s) differ from the reference ledger "
            f"(first 10): {list(differences.items())[:10]}"
        )
        for worker in running:
            report = integrity_report(worker)
            assert report["counts"] == expected.counts, (
                f"outcome counts {report['counts']} != expected {expected.counts}: {report}"
            )
            assert report["errors"] == [] and report["ok"] is True, report
            assert report["workers"] == len(running), report
        self.check_ledger_topic(expected)
        self.check_dead_letter_topic(expected)
        if not exits_allowed:
            assert not self.findings.unexpected_exits, [
                f"worker-{e.worker} exit {e.returncode} at {e.at_s:.0f}s:\n{e.log_tail}"
                for e in self.findings.unexpected_exits
            ]
        f = self.findings
        self.log(
            f"verified in {time.monotonic() - began:.1f}s: {f.distinct_entries} entries "
            f"({f.reemitted_entries} re-emitted copies), {f.distinct_dead_letters} dead letters "
            f"({f.reemitted_dead_letters} re-emitted copies), "
            f"{len(f.unexpected_exits)} unexpected exit(s)"
        )
        return f

    def skipped_deliveries(self) -> list[str]:
        """The delivery audit's ``AUDIT processing jump`` lines of every worker's log."""
        return [
            line.strip()
            for worker in self.workers
            if worker.log_path.exists()
            for line in worker.log_path.read_text(errors="replace").splitlines()
            if "AUDIT processing jump" in line
        ]

    def explain_rows(self, keys: Sequence[tuple[str, Any]]) -> str:
        """Where each wrong book row's changes went, to tell a lost write from a lost read:
        its records on the deltas topic (and whether the group committed past them), on the
        table's changelog, and in each worker's RocksDB files on disk (opened read-only beside
        the running worker); then a ``kill -USR1`` so each worker logs faust's view of every
        partition and where its tasks wait."""
        lines = ["why these book rows differ:"]
        committed = {
            (tp.topic, tp.partition): offset for tp, offset in self.cluster.committed().items()
        }
        for kind, key in keys:
            table = ROW_TABLES.get(kind)
            if table is None or not isinstance(key, str):
                continue
            wanted = key.encode()
            lines.append(f"  {kind} {key} (table {table}):")
            deltas = self.deployment.topic(f"fin.internal.deltas.{table}")
            for record in read_named_topic(self.infra.bootstrap, deltas):
                if record.key == wanted:
                    done = committed.get((deltas, record.partition))
                    lines.append(
                        f"    deltas[{record.partition}]@{record.offset} "
                        f"(group committed {done}): {record.value[:160]!r}"
                    )
            # The workers share one app id, hence one changelog per table.
            changelog = f"{self.deployment.env()['FIN_APP_ID']}-{table}-changelog"
            for record in read_named_topic(self.infra.bootstrap, changelog):
                if record.key == wanted:
                    lines.append(
                        f"    {changelog}[{record.partition}]@{record.offset}: "
                        f"{(record.value or b'')[:160]!r}"
                    )
            for index, worker in enumerate(self.workers):
                tables = Path(worker.env["FIN_DATA_DIR"]) / worker.env["FIN_APP_ID"]
                for path in sorted(tables.glob(f"**/{table}-*.db")):
                    lines.append(f"    worker-{index} {path.name} on disk: {on_disk(path, wanted)}")
        for worker in self.running():
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGUSR1)
        lines.append("  (kill -USR1 sent: each running worker's log has its partition dump)")
        return "\n".join(lines)

    def diagnose(self) -> str:
        """What an operator would look at after a failed check: source positions forwarded
        more than once to the by-event-id topic, and the durable outcome counts per partition."""
        per_position: dict[tuple[str, str, str], list[tuple[int, int, str]]] = {}
        for record in read_topic(self.cluster, "fin.internal.by-event-id"):
            headers = {k: v.decode() for k, v in record.headers or ()}
            position = (
                headers["fin.source.topic"],
                headers["fin.source.partition"],
                headers["fin.source.offset"],
            )
            per_position.setdefault(position, []).append(
                (record.partition, record.offset, headers.get("fin.park.attempt", "0"))
            )
        again = {
            position: copies
            for position, copies in per_position.items()
            if len([copy for copy in copies if copy[2] == "0"]) > 1
        }
        lines = [
            f"by-event-id: {sum(map(len, per_position.values()))} records for "
            f"{len(per_position)} source positions; {len(again)} forwarded more than once",
            *(f"  {position}: {copies}" for position, copies in list(again.items())[:10]),
        ]
        for worker in self.running():
            with contextlib.suppress(Exception):
                stats = worker.get(f"{API}/internal/integrity-partial").json()["stats"]
                lines.extend(f"  stats {key}: {row}" for key, row in sorted(stats.items()))
        return "\n".join(lines)

    def check_ledger_topic(self, expected: Expected) -> None:
        """One distinct, balanced entry per reference posting; copies identical; account
        balances equal the reference; originals and reversals are the expected events."""
        decoder = Decoder(self.catalog, self.registry.get_schema)
        by_id: dict[str, dict[str, Any]] = {}
        records = read_topic(self.cluster, "fin.ledger.postings")
        chains = ChainVerifier()
        for record in records:
            decoded = decoder.decode("fin.ledger.postings", record.value)
            assert isinstance(decoded, Decoded), decoded
            entry = decoded.record
            first = by_id.setdefault(entry["entry_id"], entry)
            assert first == entry, f"two different entries share the id {entry['entry_id']}"
            chains.add(entry, record.value, f"[{record.partition}]@{record.offset}")
        # Tamper evidence (issue 16): every chain holds whatever the scenario did, its repeats
        # byte-identical, and every entry is chained.
        broken = [r.first_break for r in chains.reports() if r.first_break is not None]
        assert not broken, f"hash chain broken: {broken}"
        assert chains.unchained == 0, f"{chains.unchained} entries without a chain"
        assert sum(r.entries for r in chains.reports()) == len(by_id)
        self.findings.ledger_records = len(records)
        self.findings.distinct_entries = len(by_id)
        assert len(by_id) == expected.reference.entries, (
            f"{len(by_id)} distinct entries, reference has {expected.reference.entries}"
        )
        balances: dict[tuple[str, str], Decimal] = {}
        for entry in by_id.values():
            debits = sum((line["debit"] for line in entry["lines"]), ZERO)
            credits = sum((line["credit"] for line in entry["lines"]), ZERO)
            assert debits == credits > 0, entry
            for line in entry["lines"]:
                key = (entry["period"], line["account"])
                balances[key] = balances.get(key, ZERO) + line["debit"] - line["credit"]
        assert {k: v for k, v in balances.items() if v != 0} == (
            expected.reference.account_balances()
        )
        originals = {e["source_event_id"] for e in by_id.values() if e["reverses_entry_id"] is None}
        reversals = {
            e["source_event_id"] for e in by_id.values() if e["reverses_entry_id"] is not None
        }
        assert originals == expected.posting_event_ids
        assert reversals == set(expected.compensations)

    def check_dead_letter_topic(self, expected: Expected) -> None:
        """Exactly the expected dead letters, one per source position; a re-emitted copy names
        the same source position with the same bytes and reason."""
        records = read_topic(self.cluster, "fin.dlq")
        first: dict[tuple[str, str, str], tuple[bytes | None, bytes | None, str]] = {}
        for record in records:
            headers = {k: v.decode() for k, v in record.headers or ()}
            letter = (record.key, record.value, headers[DLQ_REASON])
            seen = first.setdefault(source_position(record), letter)
            assert seen == letter, f"two dead letters name one source: {seen} / {letter}"
        self.findings.dead_letter_records = len(records)
        self.findings.distinct_dead_letters = len(first)
        found = Counter(first.values())
        missing = expected.dead_letters - found
        extra = found - expected.dead_letters
        assert not missing and not extra, (
            f"dead letters missing: {_letters(missing)}; unexpected: {_letters(extra)}"
        )

    # -- the broker and the registry

    def kill_broker(self) -> None:
        """``kill -9`` of the broker JVM (the fault suite's own broker)."""
        assert self.infra.owned, "the fault suite only kills a broker it started"
        pid = self.infra.kafka_pid()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), timeout_s=30, what=f"broker pid {pid} gone")
        self.log(f"broker killed (SIGKILL, pid {pid})")

    def start_broker(self) -> None:
        began = time.monotonic()
        result = self.infra.kafka("start")
        assert result.returncode == 0, result.stdout + result.stderr
        self.log(f"broker started again in {time.monotonic() - began:.1f}s")

    def stop_registry(self) -> None:
        assert self.infra.owned, "the fault suite only stops a registry it started"
        result = self.infra.registry("stop")
        assert result.returncode == 0, result.stdout + result.stderr
        self.log("registry stopped")

    def start_registry(self) -> None:
        began = time.monotonic()
        result = self.infra.registry("start")
        assert result.returncode == 0, result.stdout + result.stderr
        self.log(f"registry started again in {time.monotonic() - began:.1f}s")

    def registry_answers(self) -> bool:
        return self.infra.registry("status").returncode == 0

    def reset_group_to_earliest(self) -> str:
        """The operator's full replay: every committed offset of FIN's group back to 0."""
        result = self.infra.kafka_tool(
            "kafka-consumer-groups",
            "--bootstrap-server",
            self.infra.bootstrap,
            "--group",
            self.cluster.group,
            "--reset-offsets",
            "--to-earliest",
            "--all-topics",
            "--execute",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        self.log(f"group {self.cluster.group} reset to the earliest offsets")
        return result.stdout

    def wait_for_empty_group(self, timeout_s: float = 60.0) -> None:
        def empty() -> str | None:
            state, members = self.cluster.group_members()
            return None if members == 0 else f"group {state} with {members} member(s)"

        wait_for(empty, timeout_s=timeout_s, what="the group empty")

    # -- metrics

    def metric(self, worker: Worker, name: str) -> float:
        return metric_total(worker, name)

    def retries(self, workers: Sequence[Worker], dependency: str) -> int:
        return metric_by_label(workers, "fin_retries_total", "dependency")[dependency]

    def breaker_state(self, worker: Worker) -> int:
        """fin_circuit_breaker_state of the schema registry: 0 closed, 1 half-open, 2 open."""
        return int(metric_total(worker, "fin_circuit_breaker_state"))


def _letters(letters: Counter[tuple[bytes | None, bytes | None, str]]) -> list[str]:
    return [f"{reason} key={key!r} x{count}" for (key, _, reason), count in letters.items()][:20]


ROW_TABLES = {"budget": "budgets", "customer": "customers", "vendor": "vendors"}


def on_disk(path: Path, key: bytes) -> str:
    """The row ``key`` in one RocksDB partition directory, read without disturbing its owner."""
    try:
        db = rocksdict.Rdict(
            str(path),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
    except Exception as exc:  # a diagnosis must not fail the diagnosis
        return f"unreadable ({exc})"
    try:
        value = db.get(key)
        return "absent" if value is None else f"present {bytes(value)[:120]!r}"
    finally:
        db.close()


@contextlib.contextmanager
def fault_run(infra: Infra, root: Path, *, name: str, seed: int, events: int) -> Iterator[FaultRun]:
    run = FaultRun(infra, root, name=name, seed=seed, events=events)
    try:
        yield run
    except BaseException as exc:
        # CI keeps only a failed run's output, not the workers' logs: the timeline goes there.
        with contextlib.suppress(Exception):
            run.log(worker_log_digest(run.workers, str(exc)))
        raise
    finally:
        run.close()


DIGEST_LINES_PER_WORKER = 150
# What tells a stalled commit or a lost record apart: errors, faust's rebalance steps, the
# delivery audit (seeks, first deliveries, jumps), commit_guard's warnings and the stall watch.
_DIGEST_WORDS = re.compile(
    r"ERROR|CRITICAL|Traceback|AUDIT|assign|revok|rebalanc|commit|stall|hole|generation",
    re.IGNORECASE,
)
_PARTITION = re.compile(r"([\w.-]+\[\d+\]) \d+/\d+")


def worker_log_digest(workers: Sequence[Worker], failure: str) -> str:
    """Each worker log's lines about the partitions the failure names (``topic[p] done/end``)
    and its last ``DIGEST_LINES_PER_WORKER`` lines of errors, rebalances, commits and audit."""
    named = _PARTITION.findall(failure)
    lines = [f"worker log digest (partitions named by the failure: {named or 'none'}):"]
    for index, worker in enumerate(workers):
        if not worker.log_path.exists():
            continue
        text = worker.log_path.read_text(errors="replace").splitlines()
        about = [line for line in text if any(tp in line for tp in named)]
        notable = [line for line in text if _DIGEST_WORDS.search(line)]
        lines.append(f"--- worker-{index} ({worker.log_path}, {len(text)} lines)")
        if about:
            lines.append(f"    lines naming {named} (last {DIGEST_LINES_PER_WORKER}):")
            lines.extend("    " + line[:400] for line in about[-DIGEST_LINES_PER_WORKER:])
        lines.append(f"    errors, rebalances, commits, audit (last {DIGEST_LINES_PER_WORKER}):")
        lines.extend("    " + line[:400] for line in notable[-DIGEST_LINES_PER_WORKER:])
    return "\n".join(lines)


# --- loads -------------------------------------------------------------------------------------


def insert_at_random(rng: random.Random, load: list[Any], items: Iterable[Any]) -> None:
    for item in items:
        load.insert(rng.randint(0, len(load)), item)


def valid_records(scenario: Scenario) -> list[Outgoing]:
    """Records of the main stream that are events (not bad records)."""
    bad = {(letter.key, letter.value) for letter in scenario.dead_letters}
    return [record for record in scenario.main if (record.key, record.value) not in bad]


POISON_KINDS = (
    "random_bytes",
    "wrong_magic",
    "too_short",
    "tombstone",
    "unknown_schema_id",
    "truncated_avro",
    "trailing_bytes",
)
UNKNOWN_SCHEMA_ID_MIN = 0x7FFF_0000  # far above any id a fresh registry hands out
ALL_TOPICS = ("hr.events", "scm.events", "crm.events", "mfg.events", "pm.events", "fin.commands")


def poison(rng: random.Random, valid: Sequence[Outgoing], count: int) -> list[tuple[Outgoing, str]]:
    """``count`` poison records, each with the one reason FIN must name for it, by construction.

    Random bytes with a non-zero first byte, a valid record with a wrong magic byte, fewer than
    five bytes, a tombstone: ``wire_format_invalid``. A well-formed header naming a schema id
    nobody registered: ``schema_unknown``. A valid record cut anywhere after its header, or
    with bytes appended: ``payload_undecodable`` (Avro decoding reads the same values from a
    prefix until it runs out of bytes, so a cut record always ends early). The cut and
    extended records stay on their own topic, where their schema is allowed.
    """
    made: list[tuple[Outgoing, str]] = []
    for index in range(count):
        kind = POISON_KINDS[index % len(POISON_KINDS)]
        key: bytes | None = f"poison-{index}-{rng.getrandbits(32):08x}".encode()
        if kind != "tombstone" and rng.random() < 0.1:
            key = None  # Kafka accepts a record without a key, but not one with neither
        topic = rng.choice(ALL_TOPICS)
        source = rng.choice(valid)
        assert source.value is not None
        value: bytes | None
        if kind == "random_bytes":
            value = bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(0, 200))
            reason = "wire_format_invalid"
        elif kind == "wrong_magic":
            value = bytes([rng.randint(1, 255)]) + source.value[1:]
            reason = "wire_format_invalid"
        elif kind == "too_short":
            value = b"\x00" + rng.randbytes(rng.randint(0, 3))
            reason = "wire_format_invalid"
        elif kind == "tombstone":
            value = None
            reason = "wire_format_invalid"
        elif kind == "unknown_schema_id":
            schema_id = rng.randint(UNKNOWN_SCHEMA_ID_MIN, 0x7FFF_FFFF)
            value = frame(schema_id, rng.randbytes(rng.randint(0, 100)))
            reason = "schema_unknown"
        elif kind == "truncated_avro":
            _, payload = unframe(source.value)
            value = source.value[: 5 + rng.randrange(len(payload))]
            topic = source.topic
            reason = "payload_undecodable"
        else:
            value = source.value + rng.randbytes(rng.randint(1, 8))
            topic = source.topic
            reason = "payload_undecodable"
        made.append((Outgoing(topic, key, value), reason))
    return made


# --- schema evolution for the registry outage ----------------------------------------------------

EVOLVED_FIELD = {
    "name": "fault_suite_note",
    "type": ["null", "string"],
    "default": None,
    "doc": "Added by the fault suite: a later, compatible version of the schema.",
}


@dataclass
class Evolved:
    """Version 2 of every event schema (one more optional field), registered for a run."""

    ids: dict[int, tuple[int, Any, Any]]  # v1 id -> (v2 id, v1 parsed, v2 parsed)

    @classmethod
    def register(cls, run: FaultRun) -> Evolved:
        ids: dict[int, tuple[int, Any, Any]] = {}
        for entry in run.catalog.entries:
            if not entry.contract.has_envelope:
                continue
            schema = copy.deepcopy(dict(entry.schema_json))
            data = next(item for item in schema["fields"] if item["name"] == "data")["type"]
            data["fields"].append(dict(EVOLVED_FIELD))
            subject = registered_subject(entry, run.deployment.prefix)
            v1 = run.registry.lookup(subject, entry.schema_str)
            v2 = run.registry.register(subject, json.dumps(schema))
            assert v2 != v1, subject
            ids[v1] = (v2, entry.parsed, fastavro.parse_schema(schema))
        return cls(ids)

    def reencode(self, record: Outgoing) -> Outgoing:
        """The same event written with version 2 of its schema."""
        assert record.value is not None
        schema_id, payload = unframe(record.value)
        v2_id, v1, v2 = self.ids[schema_id]
        event = fastavro.schemaless_reader(io.BytesIO(payload), v1, None)
        assert isinstance(event, dict)
        event["data"]["fault_suite_note"] = "written with version 2"
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, v2, event)
        return Outgoing(record.topic, record.key, frame(v2_id, buffer.getvalue()))


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def schema_id_of(value: bytes | None) -> int | None:
    if value is None or len(value) < 5 or value[0] != 0:
        return None
    return int(struct.unpack(">I", value[1:5])[0])


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> float:
    """Poll until ``condition`` holds; the seconds it took."""
    began = time.monotonic()
    wait_for(lambda: None if condition() else what, timeout_s=timeout_s, what=what, interval_s=0.25)
    return time.monotonic() - began
