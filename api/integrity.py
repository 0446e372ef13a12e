"""Integrity over the whole cluster: every worker contributes the rows of its partitions.

Tables are partitioned over workers, so no single worker can check the books alone. Each worker
serves its local rows at ``/api/v1/fin/internal/integrity-partial``; the worker asked for
``/api/v1/fin/ledger/integrity`` gathers every worker's part (the hosts come from faust's
partition assignor), merges them into one ``LedgerSnapshot`` and runs the pure checks of
``ledger.integrity``. The leader also runs the check periodically: a failure seen twice in a row
(so not a delta still in flight between two tables) is logged as an error, counted in metrics
and published on ``fin.alerts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from api.openapi import INTEGRITY_PARTIAL_PATH
from ledger import chain, integrity, reducers
from ledger.chart import ChartOfAccounts
from ledger.rejections import Rejection
from settings import ALERTS_TOPIC, LEDGER_TOPIC
from streams.hub import Hub
from streams.loop_share import LoopShare
from tables.store import row_items

log = logging.getLogger(__name__)

PARTIAL_PATH = INTEGRITY_PARTIAL_PATH
SNAPSHOT_TABLES = ("periods", "customers", "vendors")


async def local_partial(hub: Hub) -> dict[str, Any]:
    """The rows this worker holds as active partitions, as JSON-ready dicts.

    Every table's rows are read in one step of the event loop: one consistent moment (no
    batch of the tables agent lands between the periods and the customers they are checked
    against, no RocksDB iterator is held across a rebalance). They are parsed, the larger
    cost, in steps of a few ms: the leader asks every 60 s for every customer, vendor and
    period row."""
    raw = {name: list(row_items(hub.tables[name])) for name in (*SNAPSHOT_TABLES, "stats")}
    share = LoopShare()
    part: dict[str, Any] = {}
    for name, items in raw.items():
        rows: dict[str, Any] = {}
        for key, value in items:
            await share.turn()
            rows[key.decode()] = orjson.loads(value)
        part[name] = rows
    return part


@dataclass(frozen=True)
class IntegrityReport:
    ok: bool
    errors: tuple[integrity.IntegrityError, ...]
    counts: integrity.OutcomeCounts
    workers: int
    periods: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [{"check": error.check, "detail": error.detail} for error in self.errors],
            "counts": {
                "events_in": self.counts.events_in,
                "postings": self.counts.postings,
                "rejections": self.counts.rejections,
                "duplicates": self.counts.duplicates,
            },
            "workers": self.workers,
            "periods_checked": self.periods,
        }


def outcome_counts(stats_rows: Mapping[str, Mapping[str, int]]) -> integrity.OutcomeCounts:
    events_in = postings = rejections = duplicates = 0
    for key, row in stats_rows.items():
        if key.startswith("in|"):
            events_in += row.get("consumed", 0)
            rejections += row.get("rejected", 0)
        elif key.startswith("post|"):
            postings += row.get("posted", 0)
            duplicates += row.get("duplicates", 0)
            rejections += row.get("rejected", 0)
    return integrity.OutcomeCounts(events_in, postings, rejections, duplicates)


async def build_report(parts: list[Mapping[str, Any]], chart: ChartOfAccounts) -> IntegrityReport:
    merged: dict[str, dict[str, Any]] = {name: {} for name in (*SNAPSHOT_TABLES, "stats")}
    for part in parts:
        for name, rows in part.items():
            merged.setdefault(name, {}).update(rows)
    share = LoopShare()

    async def parsed(name: str, row_type: Any) -> dict[str, Any]:
        # Row by row, handing the loop back every few ms (local_partial).
        rows: dict[str, Any] = {}
        for key, row in merged[name].items():
            await share.turn()
            rows[key] = row_type.from_json_dict(row)
        return rows

    snapshot = integrity.LedgerSnapshot(
        periods=await parsed("periods", reducers.PeriodRow),
        customers=await parsed("customers", reducers.CustomerRow),
        vendors=await parsed("vendors", reducers.VendorRow),
        counts=outcome_counts(merged["stats"]),
    )
    errors = tuple(integrity.run_checks(snapshot, chart))
    assert snapshot.counts is not None
    return IntegrityReport(
        not errors, errors, snapshot.counts, workers=len(parts), periods=len(snapshot.periods)
    )


async def gather_parts(hub: Hub, headers: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """Every worker's partial, this one's read locally."""
    app = hub.app
    own = str(app.conf.canonical_url).rstrip("/")
    hosts = {str(url).rstrip("/") for url in app.router.tables_metadata()} - {own}
    parts: list[Mapping[str, Any]] = [await local_partial(hub)]
    for host in sorted(hosts):
        async with app.http_client.get(host + PARTIAL_PATH, headers=dict(headers)) as response:
            if response.status != 200:
                raise RuntimeError(f"integrity partial from {host}: HTTP {response.status}")
            parts.append(orjson.loads(await response.read()))
    return parts


class ChainWatch:
    """The ledger's hash chains (``ledger.chain``), verified from this worker's own copy of
    the ledger topic (every worker copies all of it), a little more at each question.

    The full check of every record, repeats compared byte for byte, is ``python app.py ledger
    verify``; this one keeps only each chain's last verified link (``compact``), so it answers
    "verified up to where" at any time at the cost of the entries new since the last question.
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._verifier = chain.ChainVerifier()
        self._undecodable = 0
        # Entries taken from the copy and not verified yet: a request cancelled halfway (its
        # client gone) leaves the rest here for the next one, so no entry goes unverified.
        self._pending: deque[tuple[bytes, str]] = deque()
        self._lock = asyncio.Lock()

    async def status(self) -> dict[str, Any] | None:
        index = self._hub.entries_index
        if index is None:
            return None  # the classic runtime keeps no copy of the ledger topic
        # One verification at a time (compact() must not fold a chain another request is
        # still adding to), in steps of a few ms: the first question after a start, or after a
        # day without one, verifies every entry of the copy (~30 µs each: 16,000 entries held
        # the worker's event loop ~0.5 s in one step, a million would hold it ~30 s).
        async with self._lock:
            self._pending.extend(index.take_new_entries())
            share = LoopShare()
            while self._pending:
                await share.turn()
                value, where = self._pending.popleft()
                try:
                    await self._hub.prefetch_schema(value)
                except BaseException:
                    self._pending.appendleft((value, where))
                    raise
                self._verify(value, where)
            reports = self._verifier.reports()
            self._verifier.compact()
        broken = [report for report in reports if report.first_break is not None]
        return {
            "ok": not broken and self._undecodable == 0,
            "chains": [report.to_json_dict() for report in reports],
            "repeats_ignored": self._verifier.repeats,
            "unchained_entries": self._verifier.unchained,
            "undecodable_entries": self._undecodable,
            "copy_behind_records": index.behind,
        }

    def _verify(self, value: bytes, where: str) -> None:
        decoded = self._hub.decoder.decode(LEDGER_TOPIC, value)
        if isinstance(decoded, Rejection):
            self._undecodable += 1
            log.error("ledger chain: %s does not decode: %s", where, decoded)
            return
        self._verifier.add(decoded.record, value, where)


def with_chains(report: dict[str, Any], chains: dict[str, Any] | None) -> dict[str, Any]:
    """The integrity report with the chains' state; a broken chain makes it not ok."""
    if chains is None:
        return report
    report = {**report, "ledger_chains": chains}
    for each in chains["chains"]:
        broken = each["first_break"]
        if broken is not None:
            report["ok"] = False
            report["errors"] = [
                *report["errors"],
                {
                    "check": "ledger_chain",
                    "detail": f"chain {each['chain']} breaks at sequence {broken['sequence']}: "
                    f"{broken['problem']} ({broken['position']})",
                },
            ]
    return report


class PeriodicIntegrity:
    """Alert on a failure seen in two consecutive runs, so in-flight deltas do not alarm."""

    def __init__(self, hub: Hub, chart: ChartOfAccounts, headers: Mapping[str, str]) -> None:
        self._hub = hub
        self._chart = chart
        self._headers = dict(headers)
        self._previous: frozenset[integrity.IntegrityError] = frozenset()

    async def run(self) -> IntegrityReport:
        report = await build_report(await gather_parts(self._hub, self._headers), self._chart)
        metrics = self._hub.metrics
        current = frozenset(report.errors)
        persistent = current & self._previous
        self._previous = current
        for error in sorted(persistent, key=lambda e: (e.check, e.detail)):
            log.error("INTEGRITY FAILURE %s: %s", error.check, error.detail)
            metrics.integrity_failures.labels(error.check).inc()
            alert = integrity.integrity_alert(error)
            await self._hub.topic(ALERTS_TOPIC).send(
                key=alert.subject.encode(),
                value=self._hub.encoder.encode(reducers.alert_to_avro_dict(alert)),
            )
        return report
