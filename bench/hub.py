"""Contestant (a): FIN's hub, ``python app.py worker`` processes with default settings.

One worker: the source topics are loaded before the worker starts. Drain time runs from the
first record the worker forwards (the broker timestamp of the earliest record on its
by-event-id topic, i.e. its start of consumption, so the ~10 s of process start, topic checks,
schema registration and group join are not counted) to the last output record on the broker:
the journal entries (broker append time) and every table changelog record (the worker's send
time). CPU time is the worker's own (/proc, every thread), from the last sample before
consumption began to the end; completion is seen on its /metrics (every event consumed and
posted, every delta applied) and on the end offsets of its entries changelog (the classic
runtime) or of the ledger topic (the batched runtime, which has no entries table).

Two workers (``workers=2``): the same, with two processes in one consumer group (same app id and
topic prefix, their own data dirs and ports). A worker that joins a group already consuming
would make the drain time a rebalance, so the topics are loaded only once both workers answer
/ready and the group is stable with partitions on both; the drain still starts at the first
by-event-id record. CPU time and peak RSS are summed over both; the books are read through one
worker's REST API (any worker answers any key).

Per stage: ``fin_processing_seconds`` (histogram, label ``stage``: ingest, posting,
table_<name>) read from /metrics at the end of the drain, sum over the workers / input events.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from bench import latency as latency_module
from bench import procstat
from bench import recovery as recovery_check
from bench.context import API_KEY, PARTITIONS, Context, app_id_for
from bench.dataset import Dataset, differences, reference_trial_balances
from bench.measure import DrainResult, LatencyResult
from bench.profile import Sampler
from bench.scrape import MetricsSnapshot, merge_metrics, parse_metrics, stage_us_per_event
from settings import ALERTS_TOPIC, BY_EVENT_ID_TOPIC, COMMANDS_TOPIC, LEDGER_TOPIC, SOURCE_TOPICS
from tests.fixtures import Worker, free_port

log = logging.getLogger(__name__)

PREFIX = "/api/v1/fin"
POLL_BEFORE_S = 0.05
# Once a second: the drain's span comes from broker timestamps, and four /metrics reads a
# second cost the hub ~1.4% of its CPU (py-spy, 2026-12-04).
POLL_DURING_S = 1.0
BOOKS_SETTLE_S = 180.0
ENTRIES_INDEX_TIMEOUT_S = 120.0


@dataclass
class HubDeployment:
    """``count`` workers on one prefix and app id (one consumer group); each its own port and
    data dir."""

    ctx: Context
    prefix: str
    root: Path
    count: int = 1
    workers: list[Worker] = field(init=False)

    def __post_init__(self) -> None:
        self.workers = []
        for index in range(self.count):
            # The worker keeps its RocksDB files under FIN_DATA_DIR/<app id>; faust creates
            # only the last level.
            data_dir = self.data_dir_of(index)
            data_dir.mkdir(parents=True, exist_ok=True)
            port = free_port()
            self.workers.append(
                Worker(
                    env={
                        "FIN_KAFKA_BOOTSTRAP": self.ctx.bootstrap,
                        "FIN_SCHEMA_REGISTRY_URL": self.ctx.registry_url,
                        "FIN_TOPIC_PREFIX": self.prefix,
                        "FIN_APP_ID": self.app_id,
                        "FIN_PARTITIONS": str(PARTITIONS),
                        "FIN_API_KEY": API_KEY,
                        "FIN_WEB_PORT": str(port),
                        "FIN_DATA_DIR": str(data_dir),
                        **self.ctx.worker_env(),
                    },
                    port=port,
                    log_path=self.root / ("worker.log" if index == 0 else f"worker-{index}.log"),
                )
            )

    @property
    def worker(self) -> Worker:
        """The first worker: the one asked over REST, restarted for recovery, profiled."""
        return self.workers[0]

    @property
    def app_id(self) -> str:
        return app_id_for(self.prefix)

    def data_dir_of(self, index: int) -> Path:
        return self.root / ("data" if index == 0 else f"data-{index}")

    @property
    def data_dir(self) -> Path:
        return self.data_dir_of(0)

    @property
    def pid(self) -> int:
        assert self.worker.process is not None
        return self.worker.process.pid

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def check_alive(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log_tail()}")

    def cpu_seconds(self) -> float:
        return sum(procstat.cpu_seconds(pid) for pid in self.pids)

    def peak_rss_kb(self) -> int:
        return sum(procstat.memory_kb(pid)[1] for pid in self.pids)

    def changelogs(self) -> list[str]:
        return [
            name
            for name in self.ctx.kafka.topics_starting_with(self.app_id + "-")
            if name.endswith("-changelog")
        ]

    def metrics(self) -> MetricsSnapshot | None:
        """Every worker's /metrics, summed; None unless every worker answered."""
        parts: list[MetricsSnapshot] = []
        for worker in self.workers:
            try:
                response = worker.get("/metrics")
            except requests.RequestException:
                return None
            if response.status_code != 200:
                return None
            parts.append(parse_metrics(response.text))
        return merge_metrics(parts)

    def counters(self) -> dict[str, float] | None:
        snapshot = self.metrics()
        return None if snapshot is None else snapshot.counters

    def wait_ready(self, timeout_s: float = 180.0, interval_s: float = 0.1) -> float:
        """Seconds from now until /ready answers 200 (on every worker)."""
        started = time.monotonic()
        deadline = started + timeout_s
        for worker in self.workers:
            while True:
                self.check_alive()
                with contextlib.suppress(requests.RequestException):
                    if worker.get("/ready").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker not ready after {timeout_s}s:\n{worker.log_tail()}")
                time.sleep(interval_s)
        return time.monotonic() - started

    def wait_group(self, timeout_s: float = 300.0) -> float:
        """Until every worker answers /ready and the consumer group is stable with source
        partitions on every worker (then /ready once more: a rebalance recovers tables); the
        seconds it took."""
        started = time.monotonic()
        sources = {self.prefix + name for name in (*SOURCE_TOPICS, COMMANDS_TOPIC)}

        def assigned() -> bool:
            members = self.ctx.kafka.group_assignment(self.app_id)
            if members is None or len(members) != self.count:
                return False
            owned = [{tp for tp in member if tp[0] in sources} for member in members]
            return all(owned) and len(set().union(*owned)) == len(sources) * PARTITIONS

        self.wait_ready(timeout_s)

        def settled() -> bool:
            self.check_alive()
            return assigned()

        wait_until(settled, timeout_s=timeout_s, interval_s=0.25, what="consumer group")
        self.wait_ready(timeout_s)
        if not assigned():  # a late rebalance: once more
            wait_until(settled, timeout_s=timeout_s, interval_s=0.25, what="consumer group")
            self.wait_ready(timeout_s)
        return time.monotonic() - started

    def trial_balances(self, periods: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for period in periods:
            response = self.worker.get(f"{PREFIX}/ledger/trial-balance", period=period)
            if response.status_code != 200:
                continue
            body = response.json()
            found[period] = {
                "accounts": {
                    line["account"]: (
                        f"{Decimal(line['debit']):.2f}",
                        f"{Decimal(line['credit']):.2f}",
                    )
                    for line in body["lines"]
                },
                "entries": body["entry_count"],
            }
        return found

    def has_entry(self, entry_id: str) -> bool:
        """Does the first worker serve this journal entry (not 503 'catching up', not 404)?"""
        try:
            return self.worker.get(f"{PREFIX}/ledger/entries/{entry_id}").status_code == 200
        except requests.RequestException:
            return False

    def integrity(self) -> dict[str, Any]:
        response = self.worker.get(f"{PREFIX}/ledger/integrity")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, interval_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached after {timeout_s:.0f}s")
        time.sleep(interval_s)


def drain(
    ctx: Context,
    dataset: Dataset,
    *,
    label: str,
    keep: bool = False,
    profile_to: Path | None = None,
    workers: int = 1,
) -> tuple[DrainResult, HubDeployment]:
    """Load ``dataset`` on a fresh prefix, run ``workers`` workers, measure until all is produced.

    The workers are stopped before returning; their topics are deleted unless ``keep``. With
    ``profile_to``, py-spy samples the (first) worker from its start of consumption to the end
    (such a run is slower and is not counted).
    """
    prefix = ctx.new_prefix("hub" if workers == 1 else f"hub{workers}w")
    deployment = HubDeployment(ctx, prefix, ctx.scratch / prefix.rstrip("."), count=workers)
    ctx.create_contract_topics(prefix)
    n = len(dataset)
    extra: dict[str, Any] = {}
    if workers == 1:
        ctx.kafka.load(dataset.outgoing(prefix))
    spawned = time.time()
    broker = procstat.broker_pid()
    deployment.start()
    try:
        before: list[tuple[float, float, float | None]] = []  # (time, cpu, broker cpu)
        if workers == 1:
            while True:
                deployment.check_alive()
                now, cpu = time.time(), deployment.cpu_seconds()
                broker_cpu = procstat.cpu_seconds_or_none(broker)
                counters = deployment.counters()
                if counters is not None and counters["fin_events_consumed_total"] > 0:
                    break
                before.append((now, cpu, broker_cpu))
                if now - spawned > 300:
                    raise TimeoutError(
                        f"worker consumed nothing in 300s:\n{deployment.worker.log_tail()}"
                    )
                time.sleep(POLL_BEFORE_S)
        else:
            extra["group_ready_s"] = round(deployment.wait_group(), 2)
            before.append(
                (time.time(), deployment.cpu_seconds(), procstat.cpu_seconds_or_none(broker))
            )
            extra["load_s"] = round(ctx.kafka.load(dataset.outgoing(prefix)), 3)
        sampler = Sampler.attach(deployment.pid, profile_to) if profile_to is not None else None
        batched = ctx.effective_runtime == "batched"

        def finished() -> bool:
            deployment.check_alive()
            totals = deployment.counters()
            if totals is None:
                return False
            if (
                totals["fin_events_consumed_total"] < n
                or totals["fin_events_posted_total"] + totals["fin_events_rejected_total"] < n
                or totals["fin_table_deltas_applied_total"] < dataset.deltas
            ):
                return False
            if batched:
                # No entries table: every journal entry on the ledger topic is the end.
                return ctx.kafka.count(prefix + LEDGER_TOPIC) >= dataset.entries
            entries_log = f"{deployment.app_id}-entries-changelog"
            return ctx.kafka.count(entries_log) >= dataset.entries

        wait_until(finished, timeout_s=1800, interval_s=POLL_DURING_S, what="hub drain")
        if sampler is not None:
            sampler.stop()
        outputs = [prefix + LEDGER_TOPIC, prefix + ALERTS_TOPIC, *deployment.changelogs()]
        _wait_stable(ctx, outputs)
        cpu_end = deployment.cpu_seconds()
        broker_end = procstat.cpu_seconds_or_none(broker)
        snapshot = deployment.metrics()
        first = min(ctx.kafka.timestamps_at(prefix + BY_EVENT_ID_TOPIC, last=False)) / 1000
        last = max(t for topic in outputs for t in ctx.kafka.timestamps_at(topic, last=True)) / 1000
        _, cpu_start, broker_start = next(
            (sample for sample in reversed(before) if sample[0] <= first), before[0]
        )
        broker_cpu_s = broker_end - broker_start if broker_start and broker_end else None
        peak_rss = deployment.peak_rss_kb()

        problems, counts, entries = check_books(ctx, dataset, deployment, prefix)
        written = records_written(ctx, deployment, prefix)
        result = DrainResult(
            contestant="hub" if workers == 1 else f"hub{workers}",
            events=n,
            seconds=last - first,
            cpu_s=cpu_end - cpu_start,
            peak_rss_kb=peak_rss,
            valid=not problems,
            problems=problems[:20],
            details={
                "label": label,
                "workers": workers,
                "runtime": ctx.effective_runtime,
                "loadavg_1min": os.getloadavg()[0],
                "prefix": prefix,
                "startup_s": round(first - spawned, 2),
                **extra,
                "process_cpu_total_s": round(cpu_end, 2),
                "cpu_busy_share": round((cpu_end - cpu_start) / max(1e-9, last - first), 3),
                "broker_cpu_s": None if broker_cpu_s is None else round(broker_cpu_s, 3),
                "ledger_entries": entries,
                "changelog_records": written["changelogs"],
                "records_written": written,
                "integrity_counts": counts,
                "stage_us_per_event": {} if snapshot is None else stage_us_per_event(snapshot, n),
                "stage_records": {}
                if snapshot is None
                else {k: int(v) for k, v in sorted(snapshot.stage_records.items())},
            },
        )
    finally:
        deployment.stop()
    if not keep:
        ctx.cleanup(prefix)
    return result, deployment


def check_books(
    ctx: Context, dataset: Dataset, deployment: HubDeployment, prefix: str
) -> tuple[list[str], dict[str, Any], int]:
    """What is wrong with a drained hub's books against the reference ledger, its integrity
    report's counts, and the records on its ledger topic."""
    n = len(dataset)
    reference = reference_trial_balances(dataset.reference())
    actual = deployment.trial_balances(sorted(reference))
    problems = differences(reference, actual)
    report = deployment.integrity()
    if not report.get("ok"):
        problems.append(f"integrity check failed: {report.get('errors')}")
    counts: dict[str, Any] = report.get("counts", {})
    if counts.get("events_in") != n or counts.get("postings") != n:
        problems.append(f"integrity counts {counts}, expected {n} in and posted")
    entries = ctx.kafka.count(prefix + LEDGER_TOPIC)
    if entries != dataset.entries:
        problems.append(f"{entries} records on the ledger topic, expected {dataset.entries}")
    return problems, counts, entries


def records_written(ctx: Context, deployment: HubDeployment, prefix: str) -> dict[str, int]:
    """Every Kafka record the worker wrote during the drain, by kind of topic: the internal
    hops (by-event-id, one deltas topic per table), the outputs (ledger, alerts, dead letters)
    and the table changelogs. Divided by the input events, this is the hub's write
    amplification: each record is a produce, and each internal one a consume as well."""
    inputs = {prefix + name for name in (*SOURCE_TOPICS, COMMANDS_TOPIC)}
    written: dict[str, int] = {}
    for topic in ctx.kafka.topics_starting_with(prefix):
        if topic in inputs:
            continue
        kind = topic.removeprefix(prefix)
        if kind.startswith("fin.internal.deltas."):
            kind = "fin.internal.deltas.*"
        written[kind] = written.get(kind, 0) + ctx.kafka.count(topic)
    written["changelogs"] = sum(ctx.kafka.count(topic) for topic in deployment.changelogs())
    return written


def _wait_stable(ctx: Context, topics: list[str], interval_s: float = 0.5) -> None:
    """Until the end offsets of ``topics`` stop moving (the producer's last batches landed)."""
    previous: list[int] = []
    for _ in range(120):
        current = [ctx.kafka.count(topic) for topic in topics]
        if current == previous:
            return
        previous = current
        time.sleep(interval_s)


@dataclass
class Recovery:
    changelog_records: int
    changelog_topics: int
    seconds_to_ready_wiped: float
    seconds_to_ready_intact: float
    recovery_seconds: float  # faust's own log: restoring started .. done reading changelogs
    # Batched runtime: the entries index (a copy of the ledger topic, rebuilt outside faust's
    # recovery and not awaited by /ready) holding the last entry of every ledger partition.
    ledger_records: int | None = None
    seconds_to_entries_index_wiped: float | None = None
    problems: list[str] = field(default_factory=list)
    restored_by: str = "faust"  # whose log lines timed the restore (bench/recovery.py)
    rows_checked: int = 0  # table rows compared before the wipe and after the rebuild
    at_scale: recovery_check.AtScale | None = None

    @property
    def records_per_s(self) -> float:
        return self.changelog_records / self.recovery_seconds if self.recovery_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        per_million = (
            self.recovery_seconds * 1e6 / self.changelog_records if self.changelog_records else None
        )
        return {
            "changelog_records": self.changelog_records,
            "changelog_topics": self.changelog_topics,
            "seconds_to_ready_wiped": round(self.seconds_to_ready_wiped, 2),
            "seconds_to_ready_intact": round(self.seconds_to_ready_intact, 2),
            "recovery_seconds": round(self.recovery_seconds, 2),
            "records_per_s": round(self.records_per_s),
            "seconds_per_million_records": None if per_million is None else round(per_million, 2),
            "ledger_records": self.ledger_records,
            "seconds_to_entries_index_wiped": None
            if self.seconds_to_entries_index_wiped is None
            else round(self.seconds_to_entries_index_wiped, 2),
            "problems": self.problems,
            "restored_by": self.restored_by,
            "rows_checked": self.rows_checked,
            "at_scale": None if self.at_scale is None else self.at_scale.to_json(),
        }


def recovery(
    ctx: Context,
    deployment: HubDeployment,
    *,
    scale_records: int = 0,
    profile_to: Path | None = None,
) -> Recovery:
    """Restart a drained worker twice: with its data dir intact (startup cost alone), then
    wiped (startup plus rebuilding every table from its changelog). The difference is the
    recovery time. In the batched runtime the wiped worker also rebuilds its entries index
    from the ledger topic, after /ready: measured apart, until it serves the last entry of
    every ledger partition. Every table row and persisted offset is checked after the rebuild
    (``bench/recovery.py``), and with ``scale_records`` recovery is measured once more on
    changelogs grown to that many records."""
    changelogs = deployment.changelogs()
    records = sum(ctx.kafka.count(topic) for topic in changelogs)
    batched = ctx.effective_runtime == "batched"
    ledger_topic = deployment.prefix + LEDGER_TOPIC
    last_entries = [key.decode() for key in ctx.kafka.last_keys(ledger_topic)] if batched else []
    index_seconds: float | None = None
    problems: list[str] = []

    def restart(wipe: bool) -> float:
        nonlocal index_seconds
        if wipe:
            shutil.rmtree(deployment.data_dir, ignore_errors=True)
            deployment.data_dir.mkdir(parents=True)
        started = time.monotonic()
        deployment.worker.start()
        try:
            ready = deployment.wait_ready(interval_s=0.05)
            if wipe and last_entries:
                try:
                    wait_until(
                        lambda: all(deployment.has_entry(entry) for entry in last_entries),
                        timeout_s=ENTRIES_INDEX_TIMEOUT_S,
                        interval_s=0.05,
                        what="entries index rebuilt",
                    )
                    index_seconds = time.monotonic() - started
                except TimeoutError:
                    problems.append(
                        f"the entries index did not serve the last entry of every ledger "
                        f"partition within {ENTRIES_INDEX_TIMEOUT_S:.0f} s of the wiped start"
                    )
            return ready
        finally:
            deployment.worker.stop()

    intact = restart(wipe=False)
    before = recovery_check.snapshot(recovery_check.tables_dir(deployment))
    log_offset = deployment.worker.log_path.stat().st_size
    wiped = restart(wipe=True)
    with deployment.worker.log_path.open("rb") as handle:
        handle.seek(log_offset)
        log_text = handle.read().decode(errors="replace")
    after = recovery_check.snapshot(recovery_check.tables_dir(deployment))
    problems += recovery_check.compare(
        before, after, recovery_check.changelog_ends(ctx, deployment)
    )
    seconds, restored_by = recovery_check.restore_timing(log_text)
    scaled = (
        recovery_check.at_scale(ctx, deployment, before, scale_records, profile_to)
        if scale_records
        else None
    )
    return Recovery(
        records,
        len(changelogs),
        wiped,
        intact,
        seconds,
        ledger_records=ctx.kafka.count(ledger_topic) if batched else None,
        seconds_to_entries_index_wiped=index_seconds,
        problems=problems,
        restored_by=restored_by,
        rows_checked=after.row_count,
        at_scale=scaled,
    )


def restore_seconds(log_text: str) -> float:
    """From the first "restoring" line to the last "done reading" line of one worker start's
    log (FIN's bulk reader's, else faust's; 0 when it had nothing to restore)."""
    return recovery_check.restore_timing(log_text)[0]


def latency(
    ctx: Context,
    dataset: Dataset,
    *,
    max_rate: float,
    loads: list[float],
    seconds: float,
) -> list[LatencyResult]:
    """Open-loop latency against one fresh worker; its books checked against the reference."""
    prefix = ctx.new_prefix("hublat")
    deployment = HubDeployment(ctx, prefix, ctx.scratch / prefix.rstrip("."))
    ctx.create_contract_topics(prefix)
    deployment.start()
    try:
        deployment.wait_ready()

        def alive() -> None:
            deployment.check_alive()

        results, used = latency_module.measure(
            ctx,
            prefix,
            dataset.events,
            contestant="hub",
            max_rate=max_rate,
            loads=loads,
            seconds=seconds,
            check_alive=alive,
            cpu_seconds=deployment.cpu_seconds,
        )
        # Entries reach the ledger topic before the table agents have applied their deltas:
        # the books are compared once they stop changing (or after a generous wait).
        reference = reference_trial_balances(dataset.head(used).reference())
        problems: list[str] = []
        deadline = time.monotonic() + BOOKS_SETTLE_S
        while True:
            problems = differences(reference, deployment.trial_balances(sorted(reference)))
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for result in results:
            if problems:
                result.valid = False
                result.problems.extend(problems[:10])
    finally:
        deployment.stop()
        ctx.cleanup(prefix)
    return results
