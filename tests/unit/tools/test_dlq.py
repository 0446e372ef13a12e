"""Dead-letter tooling (`app.py dlq ...`) against a hand-written in-memory broker: reading to the
end, selection, listing, show, replay with its attempt cap and its markers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from kafka import TopicPartition

from ledger.rejections import Reason, Rejection
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoder, Encoder
from schemas.registry import SchemaNotFound
from settings import Settings
from streams.deadletter import (
    HEADER_REPLAY_ATTEMPT,
    HEADER_REPLAY_OF,
    DeadLetter,
    DlqError,
    DlqPosition,
    SourcePosition,
    dead_letter_headers,
)
from streams.topic_scan import TopicReadError, read_topic
from tools.dlq_records import (
    Selection,
    describe,
    list_dead_letters,
    print_listing,
    read_dead_letter,
    read_dead_letters,
)
from tools.dlq_replay import (
    REPLAYED_TOPIC,
    ReplayLog,
    ReplayMarker,
    Verdict,
    plan_replay,
    print_replay_report,
    read_replay_log,
    replay,
)

PREFIX = "t1."
SETTINGS = Settings(topic_prefix=PREFIX)
DLQ = f"{PREFIX}fin.dlq"
MARKERS = f"{PREFIX}{REPLAYED_TOPIC}"
T0 = datetime(2024, 5, 20, 12, 0, tzinfo=UTC)
COMMAND_SOURCE = SourcePosition("fin.commands", 2, 17)


# --- a hand-written broker, consumer and producer -----------------------------------------


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class FakePartition:
    records: list[FakeRecord] = field(default_factory=list)
    end: int = 0  # the next offset; past the last record when a transaction marker follows it


class FakeBroker:
    def __init__(self) -> None:
        self.topics: dict[str, list[FakePartition]] = {}

    def create(self, topic: str, partitions: int) -> None:
        self.topics[topic] = [FakePartition() for _ in range(partitions)]

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp_ms: int = 0,
    ) -> FakeRecord:
        log = self.topics[topic][partition]
        record = FakeRecord(topic, partition, log.end, timestamp_ms, key, value, list(headers))
        log.records.append(record)
        log.end += 1
        return record

    def append_transaction_marker(self, topic: str, partition: int) -> None:
        self.topics[topic][partition].end += 1

    def records(self, topic: str) -> list[FakeRecord]:
        return [record for log in self.topics[topic] for record in log.records]


class FakeConsumer:
    """Returns at most `batch_size` records per partition and poll, like a real fetch would."""

    def __init__(
        self,
        broker: FakeBroker,
        batch_size: int = 2,
        on_poll: Callable[[], None] | None = None,
        stalled: bool = False,
    ) -> None:
        self.broker = broker
        self.batch_size = batch_size
        self.on_poll = on_poll
        self.stalled = stalled
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.polls = 0

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        logs = self.broker.topics.get(topic)
        return None if logs is None else set(range(len(logs)))

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)
        self.paused = set()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for partition in partitions:
            self.positions[partition] = 0

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._log(tp).end for tp in partitions}

    def position(self, partition: TopicPartition) -> int | None:
        return self.positions[partition]

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[FakeRecord]]:
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll()
        if self.stalled:
            return {}
        batches = {}
        for partition, position in self.positions.items():
            if partition in self.paused:
                continue
            log = self._log(partition)
            batch = [r for r in log.records if r.offset >= position][: self.batch_size]
            if batch:
                batches[partition] = batch
                self.positions[partition] = batch[-1].offset + 1
            else:
                self.positions[partition] = log.end  # past any transaction marker
        return batches

    def _log(self, partition: TopicPartition) -> FakePartition:
        log: FakePartition = self.broker.topics[partition.topic][partition.partition]
        return log


@dataclass(frozen=True)
class FakeMetadata:
    partition: int
    offset: int


class FakeFuture:
    def __init__(self, metadata: FakeMetadata | None, error: Exception | None = None) -> None:
        self.metadata = metadata
        self.error = error

    def get(self, timeout: float | None = None) -> FakeMetadata:
        if self.error is not None:
            raise self.error
        assert self.metadata is not None
        return self.metadata


class FakeProducer:
    def __init__(self, broker: FakeBroker, refused_topics: Sequence[str] = ()) -> None:
        self.broker = broker
        self.refused_topics = set(refused_topics)
        self.flushes = 0

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> FakeFuture:
        if topic in self.refused_topics or topic not in self.broker.topics:
            return FakeFuture(None, RuntimeError(f"UnknownTopicOrPartitionError: {topic}"))
        record = self.broker.append(topic, partition or 0, key, value, headers or ())
        return FakeFuture(FakeMetadata(record.partition, record.offset))

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def broker_with_topics(dlq_partitions: int = 2) -> FakeBroker:
    broker = FakeBroker()
    broker.create(DLQ, dlq_partitions)
    broker.create(MARKERS, 1)
    for topic in ("hr.events", "scm.events", "crm.events", "mfg.events", "pm.events"):
        broker.create(f"{PREFIX}{topic}", 4)
    broker.create(f"{PREFIX}fin.commands", 4)
    return broker


def dead_letter(
    broker: FakeBroker,
    *,
    dlq_partition: int = 0,
    reason: str = "compensation_target_unknown",
    source: SourcePosition = COMMAND_SOURCE,
    rejected_at: datetime = T0,
    attempts: int = 1,
    event_id: str | None = "5a3c1e6e-0b1f-4c55-9d7a-0000000000aa",
    key: bytes | None = b"KEY-1",
    value: bytes | None = b"\x00\x00\x00\x00\x01payload",
    detail: str = "no posted event has this target_event_id",
) -> DlqPosition:
    headers = dead_letter_headers(
        reason=reason,
        detail=detail,
        source=source,
        rejected_at=rejected_at,
        attempts=attempts,
        event_id=event_id,
    )
    record = broker.append(
        DLQ, dlq_partition, key, value, headers, int(rejected_at.timestamp() * 1000)
    )
    return DlqPosition(record.partition, record.offset)


def letters_of(broker: FakeBroker) -> list[DeadLetter]:
    return list(read_dead_letters(FakeConsumer(broker), SETTINGS))


# --- reading a topic to its end ------------------------------------------------------------


def test_a_read_returns_every_record_of_every_partition_from_the_beginning() -> None:
    broker = broker_with_topics(dlq_partitions=3)
    written = {dead_letter(broker, dlq_partition=index % 3) for index in range(7)}
    read = {(r.partition, r.offset) for r in read_topic(FakeConsumer(broker), DLQ)}
    assert read == {(p.partition, p.offset) for p in written}
    assert len(read) == 7


def test_a_read_stops_at_the_end_offsets_captured_when_it_started() -> None:
    broker = broker_with_topics(dlq_partitions=1)
    for _ in range(4):
        dead_letter(broker)

    def someone_keeps_writing() -> None:
        dead_letter(broker)

    consumer = FakeConsumer(broker, batch_size=1, on_poll=someone_keeps_writing)
    read = list(read_topic(consumer, DLQ))
    assert [record.offset for record in read] == [0, 1, 2, 3]
    assert len(broker.records(DLQ)) > 4


def test_a_partition_ending_in_a_transaction_marker_is_read_to_its_end() -> None:
    broker = broker_with_topics(dlq_partitions=1)
    dead_letter(broker)
    broker.append_transaction_marker(DLQ, 0)
    assert [record.offset for record in read_topic(FakeConsumer(broker), DLQ)] == [0]


def test_an_empty_topic_is_read_without_a_single_poll() -> None:
    broker = broker_with_topics()
    consumer = FakeConsumer(broker)
    assert list(read_topic(consumer, DLQ)) == []
    assert consumer.polls == 0


def test_a_read_that_cannot_reach_the_end_gives_up_at_its_deadline() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    consumer = FakeConsumer(broker, stalled=True)
    with pytest.raises(TopicReadError, match="within 5s"):
        list(read_topic(consumer, DLQ, timeout_s=5, clock=FakeClock()))
    assert consumer.polls <= 6


def test_a_read_of_a_missing_topic_says_so() -> None:
    with pytest.raises(TopicReadError, match=r"t1\.fin\.dlq does not exist"):
        list(read_topic(FakeConsumer(FakeBroker()), DLQ))


def test_one_dead_letter_is_found_by_its_position() -> None:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=1, reason="period_invalid")
    wanted = dead_letter(broker, dlq_partition=1, reason="reference_unknown")
    found = read_dead_letter(FakeConsumer(broker), SETTINGS, wanted)
    assert found is not None
    assert (found.position, found.reason) == (wanted, "reference_unknown")


@pytest.mark.parametrize("position", [DlqPosition(0, 1), DlqPosition(5, 0), DlqPosition(1, 0)])
def test_a_position_with_no_dead_letter_finds_none(position: DlqPosition) -> None:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=0)
    assert read_dead_letter(FakeConsumer(broker), SETTINGS, position) is None


# --- the dead letter's headers -------------------------------------------------------------


def test_a_dead_letter_reads_reason_source_attempts_event_id_and_time_from_its_headers() -> None:
    broker = broker_with_topics()
    dead_letter(
        broker,
        reason="reference_unknown",
        source=SourcePosition("crm.events", 3, 42),
        attempts=2,
        rejected_at=T0,
        detail="currency EUR is not accepted",
    )
    (letter,) = letters_of(broker)
    assert letter.reason == "reference_unknown"
    assert letter.detail == "currency EUR is not accepted"
    assert letter.source == SourcePosition("crm.events", 3, 42)
    assert letter.attempts == 2
    assert letter.event_id == "5a3c1e6e-0b1f-4c55-9d7a-0000000000aa"
    assert letter.rejected_at == T0
    assert (letter.key, letter.value) == (b"KEY-1", b"\x00\x00\x00\x00\x01payload")


def test_a_dead_letter_without_fin_headers_has_no_source_one_attempt_and_the_record_time() -> None:
    broker = broker_with_topics()
    broker.append(DLQ, 0, b"k", b"v", [("other", b"x")], int(T0.timestamp() * 1000))
    (letter,) = letters_of(broker)
    assert letter.source is None
    assert letter.attempts == 1
    assert letter.rejected_at == T0
    assert letter.reason == "(no reason)"


# --- selection -----------------------------------------------------------------------------


@pytest.fixture
def four_letters() -> list[DeadLetter]:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=0, reason="period_invalid", rejected_at=T0)
    dead_letter(
        broker,
        dlq_partition=0,
        reason="reference_unknown",
        source=SourcePosition("crm.events", 0, 5),
        rejected_at=T0 + timedelta(hours=1),
    )
    dead_letter(
        broker, dlq_partition=1, reason="period_invalid", rejected_at=T0 + timedelta(hours=2)
    )
    dead_letter(
        broker,
        dlq_partition=1,
        reason="wire_format_invalid",
        source=SourcePosition("hr.events", 1, 9),
        rejected_at=T0 + timedelta(hours=3),
    )
    return sorted(letters_of(broker), key=lambda letter: letter.rejected_at)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, ["0:0", "0:1", "1:0", "1:1"]),
        ({"reasons": ["period_invalid"]}, ["0:0", "1:0"]),
        ({"reasons": ["period_invalid", "wire_format_invalid"]}, ["0:0", "1:0", "1:1"]),
        ({"source_topics": ["crm.events"]}, ["0:1"]),
        ({"since": "2024-05-20T13:00:00Z"}, ["0:1", "1:0", "1:1"]),
        ({"until": "2024-05-20T13:00:00+00:00"}, ["0:0"]),
        ({"since": "2024-05-20T13:00", "until": "2024-05-20T15:00"}, ["0:1", "1:0"]),
        ({"positions": ["1:1", "0:0", "7:7"]}, ["0:0", "1:1"]),
        ({"reasons": ["period_invalid"], "positions": ["0:1"]}, []),
    ],
)
def test_a_selection_matches_by_reason_topic_time_and_position(
    four_letters: list[DeadLetter], arguments: dict[str, Any], expected: list[str]
) -> None:
    selection = Selection.from_arguments(**arguments)
    matched = [str(letter.position) for letter in four_letters if selection.matches(letter)]
    assert matched == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reasons": ["compensation_target_unkown"]}, "unknown reason"),
        ({"since": "yesterday"}, "not an ISO 8601"),
        ({"since": "2024-05-02", "until": "2024-05-01"}, "--since must be before --until"),
        ({"positions": ["3"]}, "PARTITION:OFFSET"),
        ({"positions": ["a:1"]}, "PARTITION:OFFSET"),
        ({"positions": ["1:-2"]}, "PARTITION:OFFSET"),
    ],
)
def test_a_selection_refuses_bad_command_line_values_by_name(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(DlqError, match=message):
        Selection.from_arguments(**arguments)


# --- list ----------------------------------------------------------------------------------


def test_a_listing_shows_the_first_matches_in_time_order_and_counts_every_match(
    four_letters: list[DeadLetter],
) -> None:
    listing = list_dead_letters(reversed(four_letters), Selection(), limit=2)
    assert [str(letter.position) for letter in listing.shown] == ["0:0", "0:1"]
    assert listing.matched_count == 4
    assert listing.read_count == 4
    assert dict(listing.count_by_reason) == {
        "period_invalid": 2,
        "reference_unknown": 1,
        "wire_format_invalid": 1,
    }


def test_the_list_output_has_one_line_per_dead_letter_and_a_summary_by_reason(
    four_letters: list[DeadLetter],
) -> None:
    out = io.StringIO()
    print_listing(list_dead_letters(four_letters, Selection(), limit=3), out)
    lines = out.getvalue().splitlines()
    assert lines[1].split("  ")[:6] == [
        "0:1",
        "2024-05-20T13:00:00.000Z",
        "reference_unknown",
        "crm.events[0]@5",
        "event=5a3c1e6e-0b1f-4c55-9d7a-0000000000aa",
        "attempts=1",
    ]
    assert lines[3:] == [
        "... 1 more not shown (raise --limit or narrow the selection)",
        "4 of 4 dead letters match",
        "  period_invalid       2",
        "  reference_unknown    1",
        "  wire_format_invalid  1",
    ]


def test_a_long_detail_is_cut_on_the_list_line() -> None:
    broker = broker_with_topics()
    dead_letter(broker, detail="x" * 500)
    out = io.StringIO()
    print_listing(list_dead_letters(letters_of(broker), Selection()), out)
    first_line = out.getvalue().splitlines()[0]
    assert first_line.endswith("x" * 77 + "...")


def test_the_json_listing_carries_every_field_and_the_counts(
    four_letters: list[DeadLetter],
) -> None:
    out = io.StringIO()
    selection = Selection.from_arguments(reasons=["wire_format_invalid"])
    print_listing(list_dead_letters(four_letters, selection), out, as_json=True)
    document = json.loads(out.getvalue())
    assert document["matched"] == 1
    assert document["read"] == 4
    assert document["count_by_reason"] == {"wire_format_invalid": 1}
    assert document["dead_letters"] == [
        {
            "position": "1:1",
            "partition": 1,
            "offset": 1,
            "rejected_at": "2024-05-20T15:00:00.000Z",
            "reason": "wire_format_invalid",
            "detail": "no posted event has this target_event_id",
            "source": {"topic": "hr.events", "partition": 1, "offset": 9},
            "event_id": "5a3c1e6e-0b1f-4c55-9d7a-0000000000aa",
            "attempts": 1,
            "key": "KEY-1",
            "value_length": 12,
        }
    ]


# --- show ----------------------------------------------------------------------------------


def fake_registry() -> tuple[Decoder, Encoder]:
    catalog = SchemaCatalog.load()
    ids = {entry.subject: number for number, entry in enumerate(catalog.entries, start=1)}
    texts = {number: entry.schema_str for number, entry in enumerate(catalog.entries, start=1)}

    def fetch(schema_id: int) -> str:
        if schema_id not in texts:
            raise SchemaNotFound(f"no schema {schema_id}")
        return texts[schema_id]

    return Decoder(catalog, fetch), Encoder(catalog, ids.__getitem__)


def test_show_prints_every_header_the_key_and_the_payload_as_json() -> None:
    decoder, encoder = fake_registry()
    payroll = {
        "event_type": "hr.payroll.processed",
        "event_id": "5a3c1e6e-0b1f-4c55-9d7a-000000000003",
        "timestamp": T0,
        "source": "hr-service",
        "data": {
            "payroll_id": "PAY-1",
            "pay_period_start": date(2024, 3, 1),
            "pay_period_end": date(2024, 3, 15),
            "total_gross_pay": Decimal("125000.00"),
            "currency": "USD",
            "department_id": "XYZ-999",
            "department_lines": [],
        },
    }
    broker = broker_with_topics()
    dead_letter(
        broker,
        reason="reference_unknown",
        source=SourcePosition("hr.events", 0, 3),
        key=b"PAY-1",
        value=encoder.encode(payroll),
    )
    (letter,) = letters_of(broker)
    text = describe(letter, decoder.decode)
    for name, value in letter.headers:
        assert f"  {name}: {value.decode()}\n" in text
    assert "key: PAY-1\n" in text
    assert "payload: erp.hr.PayrollProcessed, schema id" in text
    body = json.loads(text[text.index("{") :])
    assert body["data"]["total_gross_pay"] == "125000.00"
    assert body["data"]["pay_period_end"] == "2024-03-15"
    assert body["timestamp"] == "2024-05-20T12:00:00.000Z"
    assert body["event_id"] == payroll["event_id"]


def test_show_dumps_the_first_bytes_and_says_why_a_payload_does_not_decode() -> None:
    decoder, _ = fake_registry()
    broker = broker_with_topics()
    value = b"\x01" + bytes(range(100))
    dead_letter(broker, reason="wire_format_invalid", value=value, key=b"\xff\x00")
    (letter,) = letters_of(broker)
    text = describe(letter, decoder.decode)
    assert "key: 0xff00\n" in text
    assert "payload: 101 bytes, not decoded: wire_format_invalid: magic byte is 1" in text
    dump = [line for line in text.splitlines() if line.startswith("  000000")]
    assert len(dump) == 4  # 64 bytes, 16 a row
    assert dump[0].startswith("  00000000  01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e  |")


def test_show_says_when_the_registry_does_not_know_the_schema() -> None:
    decoder, _ = fake_registry()
    broker = broker_with_topics()
    dead_letter(broker, value=b"\x00\x00\x00\x03\xe7rest")
    (letter,) = letters_of(broker)
    assert "not decoded: schema_unknown: the registry has no schema with id 999" in describe(
        letter, decoder.decode
    )


def test_show_of_a_tombstone_says_there_is_no_payload() -> None:
    broker = broker_with_topics()
    dead_letter(broker, value=None)
    (letter,) = letters_of(broker)

    def never(topic: str, value: bytes | None) -> Rejection:
        raise AssertionError("a tombstone is not decoded")

    assert describe(letter, never).endswith("payload: none (a tombstone)\n")


# --- replay --------------------------------------------------------------------------------


def run_replay(
    broker: FakeBroker,
    selection: Selection | None = None,
    *,
    max_attempts: int = 3,
    dry_run: bool = False,
    producer: FakeProducer | None = None,
) -> tuple[str, Any]:
    selection = selection or Selection()
    report = replay(
        FakeConsumer(broker),
        producer or FakeProducer(broker),
        SETTINGS,
        selection,
        max_attempts=max_attempts,
        dry_run=dry_run,
        now=T0 + timedelta(days=1),
    )
    out = io.StringIO()
    print_replay_report(report, selection, out)
    return out.getvalue(), report


def test_a_replay_sends_the_original_key_and_value_to_the_source_partition_with_its_headers():
    broker = broker_with_topics()
    position = dead_letter(broker, source=SourcePosition("fin.commands", 2, 17), attempts=1)
    output, _ = run_replay(broker)
    (sent,) = broker.records(f"{PREFIX}fin.commands")
    assert (sent.partition, sent.key, sent.value) == (2, b"KEY-1", b"\x00\x00\x00\x00\x01payload")
    assert dict(sent.headers) == {HEADER_REPLAY_ATTEMPT: b"2", HEADER_REPLAY_OF: b"0:0"}
    (marker,) = broker.records(MARKERS)
    assert marker.key == b"0:0"
    assert ReplayMarker.from_json(marker.value or b"") == ReplayMarker(
        position, T0 + timedelta(days=1), "fin.commands", 2, 0, 2
    )
    assert "replayed 0:0  compensation_target_unknown" in output
    assert "to fin.commands[2]@0 as attempt 2" in output


def test_a_second_replay_with_the_same_selection_replays_nothing() -> None:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=0, reason="compensation_target_unknown")
    dead_letter(broker, dlq_partition=1, reason="compensation_target_unknown")
    selection = Selection.from_arguments(reasons=["compensation_target_unknown"])
    run_replay(broker, selection)
    output, report = run_replay(broker, selection)
    assert len(broker.records(f"{PREFIX}fin.commands")) == 2
    assert report.replayed == []
    assert report.count(Verdict.ALREADY_REPLAYED) == 2
    assert output.splitlines()[-1] == (
        "replayed 0, already replayed 2, attempts exhausted 0, no source 0, failed 0, not found 0"
    )


def test_only_the_selected_dead_letters_are_replayed() -> None:
    broker = broker_with_topics()
    dead_letter(broker, reason="period_invalid", source=SourcePosition("fin.commands", 0, 1))
    dead_letter(broker, reason="reference_unknown", source=SourcePosition("crm.events", 1, 2))
    dead_letter(broker, reason="reference_unknown", source=SourcePosition("crm.events", 1, 3))
    run_replay(broker, Selection.from_arguments(positions=["0:2"]))
    run_replay(broker, Selection.from_arguments(reasons=["period_invalid"]))
    replayed_of = {
        dict(record.headers)[HEADER_REPLAY_OF]
        for topic in (f"{PREFIX}fin.commands", f"{PREFIX}crm.events")
        for record in broker.records(topic)
    }
    assert replayed_of == {b"0:2", b"0:0"}


def test_a_dead_letter_whose_next_attempt_would_pass_the_cap_is_not_replayed() -> None:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=0, attempts=3)
    dead_letter(broker, dlq_partition=1, attempts=2)
    output, report = run_replay(broker, max_attempts=3)
    assert [(str(plan.letter.position), plan.verdict) for plan in report.plans] == [
        ("0:0", Verdict.ATTEMPTS_EXHAUSTED),
        ("1:0", Verdict.REPLAY),
    ]
    (sent,) = broker.records(f"{PREFIX}fin.commands")
    assert dict(sent.headers)[HEADER_REPLAY_ATTEMPT] == b"3"
    assert "skipped 0:0  compensation_target_unknown" in output
    assert "attempts_exhausted: 3 attempts made, the cap is 3" in output
    assert [record.key for record in broker.records(MARKERS)] == [b"1:0"]


def test_the_cap_counts_a_replay_refused_again_even_when_the_worker_says_attempt_one() -> None:
    broker = broker_with_topics()
    crm = f"{PREFIX}crm.events"
    dead_letter(broker, source=SourcePosition("crm.events", 1, 5), attempts=1)
    for _ in range(2):
        run_replay(broker, max_attempts=3)
        replayed = broker.records(crm)[-1]
        # The worker refuses the replay again, naming the replay's position as the source, and
        # (not carrying fin.replay.attempt over) calls it attempt 1.
        refused_at = SourcePosition("crm.events", replayed.partition, replayed.offset)
        dead_letter(broker, source=refused_at, attempts=1)
    _, report = run_replay(broker, max_attempts=3)
    assert [dict(record.headers)[HEADER_REPLAY_ATTEMPT] for record in broker.records(crm)] == [
        b"2",
        b"3",
    ]
    assert [plan.verdict for plan in report.plans] == [
        Verdict.ALREADY_REPLAYED,
        Verdict.ALREADY_REPLAYED,
        Verdict.ATTEMPTS_EXHAUSTED,
    ]


def test_a_dry_run_sends_nothing_and_writes_no_marker() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    output, report = run_replay(broker, dry_run=True)
    assert broker.records(f"{PREFIX}fin.commands") == []
    assert broker.records(MARKERS) == []
    assert "would replay 0:0  compensation_target_unknown" in output
    assert "to fin.commands[2] as attempt 2" in output
    assert report.count(Verdict.REPLAY) == 1


@pytest.mark.parametrize(
    ("source", "note"),
    [
        (SourcePosition("fin.ledger.postings", 0, 1), "is not a topic FIN consumes"),
        (SourcePosition("fin.internal.by-event-id", 0, 1), "is not a topic FIN consumes"),
    ],
)
def test_a_dead_letter_from_a_topic_fin_does_not_consume_is_not_replayed(
    source: SourcePosition, note: str
) -> None:
    broker = broker_with_topics()
    dead_letter(broker, source=source)
    output, report = run_replay(broker)
    assert [plan.verdict for plan in report.plans] == [Verdict.NO_SOURCE]
    assert note in output
    assert broker.records(MARKERS) == []


def test_a_dead_letter_without_a_source_position_is_not_replayed() -> None:
    broker = broker_with_topics()
    broker.append(DLQ, 0, b"k", b"v", [("fin.reason", b"wire_format_invalid")])
    output, report = run_replay(broker)
    assert [plan.verdict for plan in report.plans] == [Verdict.NO_SOURCE]
    assert "no source position in headers" in output


def test_a_replay_kafka_refuses_gets_no_marker_and_is_reported_as_failed() -> None:
    broker = broker_with_topics()
    dead_letter(broker, source=SourcePosition("crm.events", 0, 1))
    dead_letter(broker, source=SourcePosition("fin.commands", 0, 1))
    producer = FakeProducer(broker, refused_topics=[f"{PREFIX}crm.events"])
    output, report = run_replay(broker, producer=producer)
    assert [marker.dead_letter for marker in report.replayed] == [DlqPosition(0, 1)]
    assert [record.key for record in broker.records(MARKERS)] == [b"0:1"]
    assert "FAILED 0:0  compensation_target_unknown" in output
    assert "UnknownTopicOrPartitionError" in output
    _, again = run_replay(broker)
    assert [marker.dead_letter for marker in again.replayed] == [DlqPosition(0, 0)]


def test_a_marker_that_cannot_be_written_fails_the_run_loudly() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    with pytest.raises(RuntimeError, match="UnknownTopicOrPartitionError"):
        run_replay(broker, producer=FakeProducer(broker, refused_topics=[MARKERS]))


def test_a_tombstone_marker_lets_a_dead_letter_be_replayed_again() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    run_replay(broker)
    broker.append(MARKERS, 0, b"0:0", None)
    _, report = run_replay(broker)
    assert len(report.replayed) == 1
    assert len(broker.records(f"{PREFIX}fin.commands")) == 2


def test_an_unreadable_marker_stops_the_replay_before_anything_is_sent() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    broker.append(MARKERS, 0, b"0:0", b"not json")
    with pytest.raises(DlqError, match="unreadable replay marker for 0:0"):
        run_replay(broker)
    assert broker.records(f"{PREFIX}fin.commands") == []


def test_without_a_marker_topic_no_dead_letter_counts_as_replayed() -> None:
    broker = broker_with_topics()
    del broker.topics[MARKERS]
    log = read_replay_log(FakeConsumer(broker), SETTINGS)
    assert log.markers == {}


def test_positions_asked_for_but_absent_are_reported_as_not_found() -> None:
    broker = broker_with_topics()
    dead_letter(broker)
    output, _ = run_replay(broker, Selection.from_arguments(positions=["0:0", "3:9"]))
    assert "not found 3:9" in output
    assert output.splitlines()[-1].endswith("not found 1")


def test_a_plan_lists_verdicts_in_dead_letter_order_with_already_replayed_first() -> None:
    broker = broker_with_topics()
    dead_letter(broker, dlq_partition=1, attempts=5)
    dead_letter(broker, dlq_partition=0, attempts=5)
    marker = ReplayMarker(DlqPosition(1, 0), T0, "fin.commands", 2, 3, 6)
    plans = plan_replay(
        letters_of(broker), Selection(), ReplayLog({marker.dead_letter: marker}), max_attempts=3
    )
    assert [(str(plan.letter.position), plan.verdict) for plan in plans] == [
        ("0:0", Verdict.ATTEMPTS_EXHAUSTED),
        ("1:0", Verdict.ALREADY_REPLAYED),
    ]


@pytest.mark.parametrize(
    ("text", "position"), [("0:0", DlqPosition(0, 0)), (" 3:17 ", DlqPosition(3, 17))]
)
def test_a_dead_letter_position_is_written_partition_colon_offset(
    text: str, position: DlqPosition
) -> None:
    assert DlqPosition.parse(text) == position
    assert DlqPosition.parse(str(position)) == position


def test_every_rejection_reason_can_be_selected() -> None:
    selection = Selection.from_arguments(reasons=[str(reason) for reason in Reason])
    assert selection.reasons == frozenset(str(reason) for reason in Reason)
