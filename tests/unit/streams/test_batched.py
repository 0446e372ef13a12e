"""The batched runtime's building blocks, without Kafka: record cache, outbox, refusals."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from settings import BY_EVENT_ID_TOPIC, DLQ_TOPIC, LEDGER_TOPIC, Settings
from streams.admin import RECORD_BYTES_MAX
from streams.deadletter import SourcePosition, header_map
from streams.effects import Send, StageResult
from streams.inflight import BatchDelivery, InFlight
from streams.metrics import Metrics
from streams.outbox import (
    BROKER_DEFAULT_RECORD_BYTES_MAX,
    Outbox,
    record_bytes_limit,
    send_or_dead_letter,
)
from tables.store import BatchedTable

SOURCE = SourcePosition("scm.events", 2, 41, 1_700_000_000_000)


@dataclass
class RecordMetadata:
    offset: int
    partition: int | None = None


@dataclass
class FakeProducer:
    """Delivers every record at once, numbering offsets per (topic, partition); refuses values
    longer than ``value_length_max`` as aiokafka refuses records over max_request_size."""

    value_length_max: int = 1_000_000
    sent: list[tuple[str, bytes | None, bytes | None, int | None, Any]] = field(
        default_factory=list
    )
    offsets: dict[tuple[str, int | None], int] = field(default_factory=lambda: defaultdict(int))

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[RecordMetadata]:
        if value is not None and len(value) > self.value_length_max:
            raise ValueError(f"record of {len(value)} bytes is over the limit")
        self.sent.append((topic, key, value, partition, headers))
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = offset + 1
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata(offset, partition))
        return future


class FakeStore:
    def __init__(self) -> None:
        self.dbs: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self.puts = 0
        self._key_index: dict[bytes, int] = {}
        self.persisted: dict[TP, int] = {}

    def _db_for_partition(self, partition: int) -> FakeDb:
        return FakeDb(self, partition)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


@dataclass
class FakeDb:
    store: FakeStore
    partition: int

    def get(self, key: bytes) -> bytes | None:
        return self.store.dbs[self.partition].get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.store.puts += 1
        self.store.dbs[self.partition][key] = value


@dataclass
class FakeTable:
    name: str = "budgets"
    data: FakeStore = field(default_factory=FakeStore)
    changelog_topic_name: str = "app-budgets-changelog"


def test_a_row_changed_many_times_in_a_batch_is_written_and_sent_once() -> None:
    table = FakeTable()
    batched = BatchedTable(table)  # type: ignore[arg-type]
    producer = FakeProducer()
    for amount in range(10):
        batched.put(1, b"ENG-001", str(amount).encode())
    batched.put(3, b"OPS-001", b"7")

    async def flush() -> list[asyncio.Future[Any]]:
        return await batched.flush(producer)

    futures = asyncio.run(flush())

    assert len(futures) == 2
    assert table.data.puts == 2
    assert table.data.dbs[1][b"ENG-001"] == b"9"
    assert [(topic, key, partition) for topic, key, _, partition, _ in producer.sent] == [
        ("app-budgets-changelog", b"ENG-001", 1),
        ("app-budgets-changelog", b"OPS-001", 3),
    ]


def test_a_row_is_read_from_the_batch_before_it_reaches_rocksdb() -> None:
    table = FakeTable()
    table.data.dbs[0][b"k"] = b"old"
    batched = BatchedTable(table)  # type: ignore[arg-type]
    assert batched.get(0, b"k") == b"old"
    batched.put(0, b"k", b"new")
    assert batched.get(0, b"k") == b"new"
    assert table.data.dbs[0][b"k"] == b"old"
    assert batched.get(1, b"k") is None  # another partition's database


def test_the_persisted_offset_is_the_highest_delivered_changelog_offset_per_partition() -> None:
    table = FakeTable()
    batched = BatchedTable(table)  # type: ignore[arg-type]
    producer = FakeProducer()

    async def two_batches() -> None:
        for batch in range(2):
            batched.put(0, f"a{batch}".encode(), b"1")
            batched.put(0, f"b{batch}".encode(), b"1")
            batched.put(2, f"c{batch}".encode(), b"1")
            futures = await batched.flush(producer)
            await asyncio.gather(*futures)
            batched.mark_persisted(futures)

    asyncio.run(two_batches())

    assert table.data.persisted == {
        TP("app-budgets-changelog", 0): 3,
        TP("app-budgets-changelog", 2): 1,
    }


def _outbox(producer: FakeProducer) -> Outbox:
    return Outbox(producer, Settings(topic_prefix="t."), Metrics())


def send_record_outputs(
    producer: FakeProducer, send: Send, *, key: bytes, value: bytes, event_id: str
) -> StageResult | None:
    """One source record's output through a fresh outbox, delivered: send_or_dead_letter's
    answer (None: sent as it was; else the record's dead-letter result)."""
    outbox = _outbox(producer)

    async def run() -> StageResult | None:
        result = await send_or_dead_letter(
            outbox, [send], key=key, value=value, source=SOURCE, event_id=event_id, attempts=1
        )
        await outbox.delivered()
        return result

    return asyncio.run(run())


def test_a_forward_the_producer_refuses_is_dead_lettered_with_its_original_bytes() -> None:
    producer = FakeProducer(value_length_max=100)
    big = b"x" * 150
    result = send_record_outputs(
        producer,
        Send(BY_EVENT_ID_TOPIC, b"event-1", big),
        key=b"PO-1",
        value=b"original",
        event_id="event-1",
    )

    assert result is not None and result.reason == "processing_error"
    [(topic, key, value, _, headers)] = producer.sent
    assert (topic, key, value) == ("t." + DLQ_TOPIC, b"PO-1", b"original")
    named = header_map(headers)
    assert named["fin.reason"] == "processing_error"
    assert "over the limit" in named["fin.detail"]
    assert (named["fin.source.topic"], named["fin.source.offset"]) == ("scm.events", "41")


def test_a_dead_letter_too_large_to_copy_is_sent_without_its_bytes_naming_the_original() -> None:
    producer = FakeProducer(value_length_max=100)
    huge = b"y" * 500
    result = send_record_outputs(
        producer,
        Send(BY_EVENT_ID_TOPIC, b"event-2", huge),
        key=b"PO-2",
        value=huge,
        event_id="event-2",
    )

    assert result is not None and result.outcome == "rejected"
    [(topic, key, value, _, headers)] = producer.sent
    assert (topic, key, value) == ("t." + DLQ_TOPIC, b"PO-2", None)
    detail = header_map(headers)["fin.detail"]
    assert "original record not copied" in detail
    assert "scm.events[2]@41" in detail


def test_outputs_that_the_producer_accepts_pass_through_unchanged() -> None:
    producer = FakeProducer()
    assert (
        send_record_outputs(
            producer,
            Send(BY_EVENT_ID_TOPIC, b"e", b"v", (("h", b"1"),)),
            key=b"k",
            value=b"v",
            event_id="e",
        )
        is None
    )
    assert producer.sent == [("t." + BY_EVENT_ID_TOPIC, b"e", b"v", None, [("h", b"1")])]


def test_settings_refuse_an_unknown_runtime() -> None:
    from errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="FIN_RUNTIME"):
        Settings.from_env({"FIN_RUNTIME": "fast"}, registry_url_file=None)


def test_an_entry_over_the_ledger_topics_limit_is_refused_before_the_broker_sees_it() -> None:
    # A broker refusing it after the hand-over would fail the batch and stop the worker every
    # time it came back (a crash loop); refused here, the source record is dead-lettered.
    producer = FakeProducer(value_length_max=10_000_000)
    result = send_record_outputs(
        producer,
        Send(LEDGER_TOPIC, b"entry-1", b"e" * 1_500_000),
        key=b"PO-3",
        value=b"original",
        event_id="event-3",
    )

    assert result is not None and result.reason == "processing_error"
    [(topic, key, value, _, headers)] = producer.sent
    assert (topic, key, value) == ("t." + DLQ_TOPIC, b"PO-3", b"original")
    assert "RecordTooLargeError" in header_map(headers)["fin.detail"]


def test_a_source_record_of_the_brokers_largest_size_can_be_dead_lettered_whole() -> None:
    # fin.dlq as FIN creates it (max.message.bytes = RECORD_BYTES_MAX, read at start).
    producer = FakeProducer(value_length_max=10_000_000)
    outbox = Outbox(
        producer,
        Settings(topic_prefix="t."),
        Metrics(),
        record_limits={DLQ_TOPIC: RECORD_BYTES_MAX},
    )
    original = b"s" * 1_048_000

    async def run() -> None:
        await outbox.send(Send(DLQ_TOPIC, b"k", original, (("fin.reason", b"field_too_long"),)))
        await outbox.delivered()

    asyncio.run(run())
    assert producer.sent[0][2] == original


def test_a_topic_without_its_own_limit_is_held_to_the_brokers_default() -> None:
    # A dead-letter topic created by hand, without FIN's max.message.bytes: a record the broker
    # would refuse after the hand-over (stopping the worker) is refused before it.
    assert record_bytes_limit(DLQ_TOPIC, {}) == BROKER_DEFAULT_RECORD_BYTES_MAX
    assert record_bytes_limit(DLQ_TOPIC, {DLQ_TOPIC: 50_000_000}) == RECORD_BYTES_MAX


class GatedBox:
    """An outbox whose deliveries complete when the test says so."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def delivered(self) -> None:
        await self.gate.wait()


def fake_events(*names: str) -> Any:
    """Stand-ins for faust events (InFlight only hands them back to ``stream.ack``)."""
    return list(names)


class AckRecorder:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def ack(self, event: str) -> None:
        self.acked.append(event)


def test_batches_in_flight_are_acknowledged_in_order_and_only_once_delivered() -> None:
    async def scenario() -> list[list[str]]:
        stream = AckRecorder()
        in_flight = InFlight(stream, "test", depth=4)  # type: ignore[arg-type]
        first, second = GatedBox(), GatedBox()
        seen: list[list[str]] = []
        await in_flight.push(fake_events("a1", "a2"), BatchDelivery(first, []))  # type: ignore[arg-type]
        await in_flight.push(fake_events("b1"), BatchDelivery(second, []))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        seen.append(list(stream.acked))  # nothing delivered: nothing acknowledged
        second.gate.set()
        await asyncio.sleep(0.01)
        seen.append(list(stream.acked))  # the later batch waits for the earlier one
        first.gate.set()
        await asyncio.wait_for(in_flight.drain(), 5)
        seen.append(list(stream.acked))
        in_flight.close()
        return seen

    assert asyncio.run(scenario()) == [[], [], ["a1", "a2", "b1"]]


def test_a_full_pipeline_holds_the_agent_back_until_the_oldest_batch_completes() -> None:
    async def scenario() -> tuple[bool, bool]:
        stream = AckRecorder()
        in_flight = InFlight(stream, "test", depth=1)  # type: ignore[arg-type]
        boxes = [GatedBox() for _ in range(3)]
        await in_flight.push(fake_events("e0"), BatchDelivery(boxes[0], []))  # type: ignore[arg-type]
        await in_flight.push(fake_events("e1"), BatchDelivery(boxes[1], []))  # type: ignore[arg-type]
        third = asyncio.ensure_future(
            in_flight.push(fake_events("e2"), BatchDelivery(boxes[2], []))  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.02)
        blocked = not third.done()
        boxes[0].gate.set()
        await asyncio.sleep(0.02)
        released = third.done()
        for box in boxes:
            box.gate.set()
        await asyncio.wait_for(in_flight.drain(), 5)
        in_flight.close()
        return blocked, released

    assert asyncio.run(scenario()) == (True, True)


def test_a_completed_batch_records_its_own_changelog_offsets_only() -> None:
    table = FakeTable()
    batched = BatchedTable(table)  # type: ignore[arg-type]
    producer = FakeProducer()

    async def two_flushes_in_flight() -> None:
        batched.put(0, b"a", b"1")
        first = await batched.flush(producer)
        batched.put(0, b"b", b"1")
        second = await batched.flush(producer)
        await asyncio.gather(*first, *second)
        batched.mark_persisted(first)

    asyncio.run(two_flushes_in_flight())
    # The second flush's record (offset 1) is not claimed until its own batch completes.
    assert table.data.persisted == {TP("app-budgets-changelog", 0): 0}
