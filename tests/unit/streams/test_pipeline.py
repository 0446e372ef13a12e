"""The per-record stages of the worker, without Kafka: what each record leads to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger.chart import default_chart_path, load_chart
from settings import BY_EVENT_ID_TOPIC, DLQ_TOPIC, LEDGER_TOPIC
from streams.deadletter import SourcePosition, header_map
from streams.effects import Send
from streams.pipeline import (
    H_PARK_ATTEMPT,
    PARK_ATTEMPTS_MAX,
    ByIdRecord,
    Ingest,
    Posting,
    count_ingest,
    count_posting,
)
from tests.unit.schemas.fixtures import FakeRegistry, decoder, encoder

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
CHART = load_chart(default_chart_path())


def time_logged(event_id: str) -> dict[str, Any]:
    return {
        "event_type": "pm.time.logged",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 15, 17, 0, tzinfo=UTC),
        "source": "pm-service",
        "data": {
            "project_id": "PROJ-CLIENT-A-001",
            "employee_id": "EMP-001",
            "hours": Decimal("8.00"),
            "billable_amount": Decimal("1125.00"),
            "currency": "USD",
            "business_date": None,
        },
    }


def compensation(event_id: str, target: str) -> dict[str, Any]:
    return {
        "event_type": "fin.compensation.requested",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 16, 9, 0, tzinfo=UTC),
        "source": "fin-api",
        "data": {"target_event_id": target, "reason": "logged twice"},
    }


class Harness:
    """Ingest → by-id → posting with an in-memory processed table and partition offsets."""

    def __init__(self) -> None:
        registry = FakeRegistry()
        self.ingest = Ingest(decoder(registry), CHART)
        self.posting = Posting(decoder(registry), encoder(), CHART)
        self.encoder = encoder()
        self.processed: dict[str, bytes] = {}
        self.by_id_offset = 0
        self.source_offset = 0

    def by_id(self, record: dict[str, Any], topic: str) -> ByIdRecord:
        value = self.encoder.encode(record)
        self.source_offset += 1
        position = SourcePosition(topic, 0, self.source_offset, int(NOW.timestamp() * 1000))
        result = self.ingest.process(topic, b"key", value, position, NOW)
        assert result.outcome == "forwarded", result
        (send,) = result.sends
        return self.next_by_id(send)

    def next_by_id(self, send: Send) -> ByIdRecord:
        assert send.topic == BY_EVENT_ID_TOPIC and send.key is not None and send.value is not None
        self.by_id_offset += 1
        return ByIdRecord(send.key, send.value, dict(send.headers), 0, self.by_id_offset)

    def post(self, record: ByIdRecord) -> Any:
        result = self.posting.process(record, self.processed.get, NOW)
        for table, key, value in result.table_writes:
            assert table == "processed"
            self.processed[key] = value
        return result


def test_a_valid_event_is_posted_once_and_its_exact_replay_re_emits_the_same_records() -> None:
    harness = Harness()
    record = harness.by_id(time_logged(str(uuid.uuid4())), "pm.events")
    first = harness.post(record)
    again = harness.post(record)  # the same by-id offset: a crash before the commit
    assert first.outcome == "posted" and again.outcome == "reemit"
    assert first.sends[0].topic == LEDGER_TOPIC
    assert first.sends == again.sends


def test_the_same_event_sent_twice_is_a_duplicate_and_sends_nothing() -> None:
    harness = Harness()
    event = time_logged(str(uuid.uuid4()))
    harness.post(harness.by_id(event, "pm.events"))
    duplicate = harness.post(harness.by_id(event, "pm.events"))
    assert duplicate.outcome == "duplicate"
    assert duplicate.sends == ()


def test_the_same_event_id_with_another_payload_is_dead_lettered_as_a_conflict() -> None:
    harness = Harness()
    event = time_logged(str(uuid.uuid4()))
    harness.post(harness.by_id(event, "pm.events"))
    changed = {**event, "data": {**event["data"], "hours": Decimal("9.00")}}
    result = harness.post(harness.by_id(changed, "pm.events"))
    assert result.outcome == "rejected" and result.reason == "event_id_conflict"
    (send,) = result.sends
    assert send.topic == DLQ_TOPIC
    assert header_map(list(send.headers))["fin.reason"] == "event_id_conflict"


def test_a_compensation_ahead_of_its_target_is_parked_then_reverses_it_once_it_is_posted() -> None:
    harness = Harness()
    target_id = str(uuid.uuid4())
    early = harness.post(harness.by_id(compensation(str(uuid.uuid4()), target_id), "fin.commands"))
    assert early.outcome == "parked"
    (parked,) = early.sends
    assert dict(parked.headers)[H_PARK_ATTEMPT] == b"1"

    posted = harness.post(harness.by_id(time_logged(target_id), "pm.events"))
    reversal = harness.post(harness.next_by_id(parked))

    assert reversal.outcome == "posted"
    entries = [
        decoder(FakeRegistry()).decode(LEDGER_TOPIC, result.sends[0].value)
        for result in (posted, reversal)
    ]
    original, reversing = (entry.record for entry in entries)  # type: ignore[union-attr]
    assert reversing["reverses_entry_id"] == original["entry_id"]
    assert [(line["debit"], line["credit"]) for line in reversing["lines"]] == [
        (line["credit"], line["debit"]) for line in original["lines"]
    ]


def test_a_compensation_whose_target_never_comes_is_rejected_after_the_parking_limit() -> None:
    harness = Harness()
    record = harness.by_id(compensation(str(uuid.uuid4()), str(uuid.uuid4())), "fin.commands")
    for _ in range(PARK_ATTEMPTS_MAX):
        result = harness.post(record)
        assert result.outcome == "parked"
        record = harness.next_by_id(result.sends[0])
    final = harness.post(record)
    assert final.outcome == "rejected" and final.reason == "compensation_target_unknown"


def test_outcome_counters_never_count_a_record_twice() -> None:
    row = count_ingest(None, 5, "forwarded")
    row = count_ingest(row, 6, "rejected")
    assert count_ingest(row, 6, "rejected") is None  # replayed after a crash
    assert row is not None and b'"consumed":2' in row and b'"rejected":1' in row
    posting = count_posting(None, 10, "posted")
    posting = count_posting(posting, 11, "parked")  # parking moves the mark, counts nothing
    assert posting is not None and b'"posted":1' in posting and b"parked" not in posting
    assert count_posting(posting, 11, "duplicate") is None


def test_a_re_emission_counts_as_the_posting_it_repeats_once() -> None:
    # The posting at offset 10 was counted, then a kill -9 lost the stats row's changelog record
    # while processed[] kept its row: the by-id record comes back as a re-emission.
    lost = count_posting(None, 9, "posted")
    recounted = count_posting(lost, 10, "reemit")
    assert recounted is not None and b'"posted":2' in recounted
    # Had the count survived, the watermark refuses it.
    survived = count_posting(lost, 10, "posted")
    assert count_posting(survived, 10, "reemit") is None
