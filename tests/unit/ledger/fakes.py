"""A hand-written fake of the pipeline around the pure core, for the property tests.

It plays the ingest agent (validate), the by-event-id topic (partitions and offsets), the
posting agent (``processed`` table, ``decide``, rules) and the table agents (one FIFO of deltas
per by-id partition, drained in any interleaving the test chooses), with no Kafka and no faust.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.chart import ChartOfAccounts
from ledger.deltas import Delta
from ledger.entries import JournalEntry, SourceRef, assert_balanced
from ledger.events import CompensationRequested, Event, parse_event, topic_of
from ledger.idempotency import (
    Decision,
    ProcessedRecord,
    check_compensation,
    decide,
    fingerprint,
)
from ledger.integrity import OutcomeCounts
from ledger.reducers import Position, Row, apply
from ledger.rejections import Reason, Rejection
from ledger.rules import Posting, post, posting_to_json_dict, reverse
from ledger.validation import validate

PARTITIONS = 3

# What the posting agent did with one by-id record: a decision, or the reason it rejected a
# compensation that ``decide`` let through.
Outcome = Decision | Reason


@dataclass(frozen=True)
class ByIdRecord:
    partition: int
    offset: int
    record: Mapping[str, Any]
    source: SourceRef


@dataclass(frozen=True)
class PendingDelta:
    position: Position
    delta: Delta
    source_event_id: str


class FakePipeline:
    def __init__(self, chart: ChartOfAccounts, received_at: datetime) -> None:
        self.chart = chart
        self.received_at = received_at
        self.processed: dict[str, ProcessedRecord] = {}
        self.source_offsets: Counter[str] = Counter()
        self.by_id_offsets: Counter[int] = Counter()
        self.by_id_log: list[ByIdRecord] = []
        self.decisions: list[Outcome] = []
        self.pending: list[deque[PendingDelta]] = [deque() for _ in range(PARTITIONS)]
        self.applied: list[PendingDelta] = []
        self.rows: dict[tuple[str, str], Row] = {}
        self.entries: dict[str, JournalEntry] = {}
        self.counts: Counter[str] = Counter()

    # --- ingest ------------------------------------------------------------------------------

    def ingest(self, record: Mapping[str, Any]) -> Outcome:
        """A new input record on its source topic."""
        self.counts["events_in"] += 1
        topic = topic_of(record["event_type"])
        event = validate(record, topic=topic, received_at=self.received_at, chart=self.chart)
        assert isinstance(event, Event), event
        offset = self.source_offsets[topic]
        self.source_offsets[topic] += 1
        source = SourceRef(event.event_id, event.event_type, topic, 0, offset)
        return self._to_by_id(record, event, source)

    def replay_source_copy(self, index: int) -> Outcome:
        """The source record of by-id record ``index`` ingested again (an upstream replay)."""
        earlier = self.by_id_log[index]
        return self._to_by_id(earlier.record, parse_event(earlier.record), earlier.source)

    def crash_and_reprocess(self, index: int) -> Outcome:
        """The posting agent reprocesses by-id record ``index`` (offset not committed)."""
        earlier = self.by_id_log[index]
        return self._process(earlier)

    def _to_by_id(self, record: Mapping[str, Any], event: Event, source: SourceRef) -> Outcome:
        # Compensations travel keyed by their target, so they meet its processed record.
        key = event.target_event_id if isinstance(event, CompensationRequested) else event.event_id
        partition = UUID(key).int % PARTITIONS
        offset = self.by_id_offsets[partition]
        self.by_id_offsets[partition] += 1
        by_id = ByIdRecord(partition, offset, record, source)
        self.by_id_log.append(by_id)
        decision = self._process(by_id)
        self.decisions.append(decision)
        return decision

    # --- posting agent -----------------------------------------------------------------------

    def _process(self, by_id: ByIdRecord) -> Outcome:
        event = parse_event(by_id.record)
        print_ = fingerprint(by_id.record)
        existing = self.processed.get(event.event_id)
        decision = decide(
            existing, fingerprint=print_, source=by_id.source, by_id_offset=by_id.offset
        )
        outcome: Outcome = decision
        if decision is Decision.POST:
            outcome = self._post(event, print_, by_id)
        elif decision is Decision.REEMIT:
            assert existing is not None
            self._emit(by_id, existing.posting_value(), event.event_id)
        if outcome is Decision.POST:
            self.counts["postings"] += 1
        elif outcome is Decision.DUPLICATE:
            self.counts["duplicates"] += 1
        elif outcome is Decision.CONFLICT or isinstance(outcome, Reason):
            self.counts["rejections"] += 1
        return outcome

    def _post(self, event: Event, print_: str, by_id: ByIdRecord) -> Outcome:
        if isinstance(event, CompensationRequested):
            target = self.processed.get(event.target_event_id)
            rejection = check_compensation(target, compensation_event_id=event.event_id)
            if isinstance(rejection, Rejection):
                return rejection.reason
            assert target is not None
            posting = reverse(target.posting_value(), event.event_id, by_id.source)
            self.processed[event.target_event_id] = target.with_compensated_by(event.event_id)
        else:
            posting = post(event, by_id.source, self.chart)
        self.processed[event.event_id] = ProcessedRecord(
            print_, by_id.source, by_id.offset, posting_to_json_dict(posting)
        )
        self._emit(by_id, posting, event.event_id)
        return Decision.POST

    def _emit(self, by_id: ByIdRecord, posting: Posting, source_event_id: str) -> None:
        if posting.entry is not None:
            assert_balanced(posting.entry)
            earlier = self.entries.setdefault(posting.entry.entry_id, posting.entry)
            assert earlier == posting.entry, "one entry id, two different entries"
        for index, delta in enumerate(posting.deltas):
            position = (by_id.partition, by_id.offset, index)
            self.pending[by_id.partition].append(PendingDelta(position, delta, source_event_id))

    # --- table agents ------------------------------------------------------------------------

    def deliver(self, partition: int, count: int) -> None:
        queue = self.pending[partition]
        for _ in range(min(count, len(queue))):
            pending = queue.popleft()
            if self._apply(pending):
                self.applied.append(pending)

    def deliver_all(self) -> None:
        for partition in range(PARTITIONS):
            self.deliver(partition, len(self.pending[partition]))

    def replay_delta(self, index: int) -> bool:
        """Apply an already applied delta again at its old position; True if it changed a row."""
        return self._apply(self.applied[index])

    def _apply(self, pending: PendingDelta) -> bool:
        key = (pending.delta.table, pending.delta.key)
        outcome = apply(
            self.rows.get(key),
            pending.delta,
            pending.position,
            self.chart,
            source_event_id=pending.source_event_id,
        )
        self.rows[key] = outcome.row
        return outcome.applied

    # --- reads -------------------------------------------------------------------------------

    def table(self, name: str) -> dict[str, Row]:
        return {key: row for (table, key), row in self.rows.items() if table == name}

    def outcome_counts(self) -> OutcomeCounts:
        return OutcomeCounts(
            events_in=self.counts["events_in"],
            postings=self.counts["postings"],
            rejections=self.counts["rejections"],
            duplicates=self.counts["duplicates"],
        )
