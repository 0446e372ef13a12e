"""The benchmark's events: generated once (seeded), encoded once, with what they must produce.

Events come from ``demo.generator.synthetic_events``, the realistic seeded mix (five source
event types plus FIN commands, Zipf-skewed keys). Compensations are left out: in a preloaded
stream a compensation on ``fin.commands`` can be read before its target on another topic, and
would then be rejected as ``compensation_target_unknown`` by any consumer, so the books would
depend on a race (the ledger end-to-end test holds them back for the same reason).

Values are encoded once, strictly (``schemas.codec.Encoder``), in the Confluent wire format with
schema ids registered under the benchmark's own prefix; every run reuses the same bytes (a
worker resolves writer schemas by id, whatever subject they were registered under).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.kafka_io import Outgoing
from demo.generator import synthetic_events
from ledger import rules, validation
from ledger.chart import ChartOfAccounts
from ledger.entries import SourceRef
from ledger.events import Event
from ledger.rejections import Rejection
from schemas.catalog import contract_for_record, key_for
from schemas.codec import Encoder
from tests.unit.ledger.reference import ReferenceLedger

COMPENSATION = "fin.compensation.requested"


@dataclass(frozen=True)
class EncodedEvent:
    topic: str  # contract topic (no prefix)
    key: bytes
    value: bytes
    entry_id: str | None  # the journal entry it must produce, if any
    deltas: int  # state deltas its posting carries


@dataclass
class Dataset:
    events: list[EncodedEvent]
    records: list[dict[str, Any]]  # the decoded form, for the reference ledger
    seconds_to_build: float

    def __len__(self) -> int:
        return len(self.events)

    def head(self, count: int) -> Dataset:
        return Dataset(self.events[:count], self.records[:count], 0.0)

    def slice(self, start: int, stop: int) -> list[EncodedEvent]:
        return self.events[start:stop]

    @property
    def entries(self) -> int:
        return sum(1 for event in self.events if event.entry_id is not None)

    @property
    def deltas(self) -> int:
        return sum(event.deltas for event in self.events)

    @property
    def mean_value_bytes(self) -> float:
        return sum(len(event.value) for event in self.events) / max(1, len(self.events))

    def reference(self) -> ReferenceLedger:
        return ReferenceLedger.of(self.records)

    def outgoing(self, prefix: str, events: Sequence[EncodedEvent] | None = None) -> list[Outgoing]:
        chosen = self.events if events is None else events
        return [Outgoing(prefix + event.topic, event.key, event.value) for event in chosen]

    def by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.topic] = counts.get(event.topic, 0) + 1
        return counts


def events_without_compensations(seed: int, count: int) -> Iterator[dict[str, Any]]:
    produced = 0
    for record in synthetic_events(seed):
        if record["event_type"] == COMPENSATION:
            continue
        yield record
        produced += 1
        if produced >= count:
            return


def build(seed: int, count: int, encoder: Encoder, chart: ChartOfAccounts) -> Dataset:
    started = time.monotonic()
    now = datetime.now(UTC)
    events: list[EncodedEvent] = []
    records: list[dict[str, Any]] = []
    for record in events_without_compensations(seed, count):
        contract = contract_for_record(record)
        event = validation.validate(record, topic=contract.topic, received_at=now, chart=chart)
        if isinstance(event, Rejection):
            raise RuntimeError(f"the generator made an invalid event: {event}")
        posting = _posting(event, contract.topic, chart)
        events.append(
            EncodedEvent(
                topic=contract.topic,
                key=key_for(record).encode(),
                value=encoder.encode(record),
                entry_id=None if posting.entry is None else posting.entry.entry_id,
                deltas=len(posting.deltas),
            )
        )
        records.append(record)
    return Dataset(events, records, time.monotonic() - started)


def _posting(event: Event, topic: str, chart: ChartOfAccounts) -> rules.Posting:
    # The source position does not change what a posting contains, only where it points.
    return rules.post(event, SourceRef(event.event_id, event.event_type, topic, 0, 0), chart)


def reference_trial_balances(
    reference: ReferenceLedger,
) -> dict[str, dict[str, Any]]:
    """period -> {"accounts": {account: (debit, credit)}, "entries": n} as text, comparable."""
    return {
        period: {
            "accounts": {
                account: (f"{debit:.2f}", f"{credit:.2f}")
                for account, (debit, credit) in sorted(reference.trial_balance(period).items())
            },
            "entries": reference.period_entries[period],
        }
        for period in sorted(reference.periods())
    }


def differences(
    expected: Mapping[str, Mapping[str, Any]], actual: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Human-readable differences between two trial-balance maps (empty when equal)."""
    problems: list[str] = []
    for period in sorted(set(expected) | set(actual)):
        want, got = expected.get(period), actual.get(period)
        if want is None or got is None:
            problems.append(f"{period}: expected {want is not None}, got {got is not None}")
            continue
        if want["entries"] != got["entries"]:
            problems.append(f"{period}: {got['entries']} entries, expected {want['entries']}")
        for account in sorted(set(want["accounts"]) | set(got["accounts"])):
            w, g = want["accounts"].get(account), got["accounts"].get(account)
            if w is None or g is None or tuple(w) != tuple(g):
                problems.append(f"{period} {account}: got {g}, expected {w}")
    return problems
