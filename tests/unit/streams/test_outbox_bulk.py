"""Bulk sends (FIN_BULK_SENDS): a batch's outputs appended to one producer batch per topic
partition, with aiokafka's own ``BatchBuilder``, and handed over once; order and delivery as
with one send per record."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from settings import BY_EVENT_ID_TOPIC, LEDGER_TOPIC, Settings
from streams import outbox as outbox_module
from streams.effects import Send
from streams.metrics import Metrics
from streams.outbox import Outbox
from streams.partitioner import partition_for

PREFIX = "t."
PARTITIONS = 4


class RecordingBuilder(BatchBuilder):  # type: ignore[misc]
    """aiokafka's BatchBuilder, remembering the keys it accepted."""

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size, 0)
        self.keys: list[bytes | None] = []

    def append(self, *, timestamp: Any, key: Any, value: Any, headers: Any = ()) -> Any:
        metadata = super().append(timestamp=timestamp, key=key, value=value, headers=headers)
        if metadata is not None:
            self.keys.append(key)
        return metadata


class FakeAiokafka:
    """What the Outbox uses of aiokafka's producer: batches, and the log of hand-overs (one
    sequence with the per-record sends, so the order across both is visible)."""

    def __init__(self, batch_size: int, log: list[tuple[str, int | None, list[Any]]]) -> None:
        self.batch_size = batch_size
        self.log = log
        self.fail_topic: str | None = None

    def create_batch(self) -> RecordingBuilder:
        return RecordingBuilder(self.batch_size)

    async def send_batch(self, builder: RecordingBuilder, topic: str, *, partition: int) -> Any:
        self.log.append((topic, partition, list(builder.keys)))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.fail_topic:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


class FakeFaustProducer:
    """faust's producer: per-record ``send``, and aiokafka's producer behind it."""

    def __init__(self, batch_size: int = 16_384) -> None:
        self.log: list[tuple[str, int | None, list[Any]]] = []
        self._producer = FakeAiokafka(batch_size, self.log)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[Any]:
        self.log.append((topic, partition, [key]))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def outbox(producer: FakeFaustProducer, *, bulk: bool = True) -> Outbox:
    settings = replace(Settings(topic_prefix=PREFIX), bulk_sends=bulk)
    counts = {PREFIX + BY_EVENT_ID_TOPIC: PARTITIONS, PREFIX + LEDGER_TOPIC: PARTITIONS}
    return Outbox(producer, settings, Metrics(), partition_counts=counts)


def keys_by_partition(keys: list[bytes]) -> dict[int, list[bytes]]:
    grouped: dict[int, list[bytes]] = {}
    for key in keys:
        grouped.setdefault(partition_for(key, PARTITIONS), []).append(key)
    return grouped


def test_a_batchs_records_reach_the_producer_once_per_partition_in_their_order() -> None:
    producer = FakeFaustProducer()
    box = outbox(producer)
    keys = [f"event-{number}".encode() for number in range(40)]

    async def run() -> None:
        for key in keys:
            await box.send(Send(BY_EVENT_ID_TOPIC, key, b"v" * 20, (("h", b"1"),)))
        await box.send(Send(LEDGER_TOPIC, keys[0], b"entry"))
        assert producer.log == []  # appended, not handed over yet
        await box.flush()
        await box.delivered()

    asyncio.run(run())
    by_id = {partition: sent for topic, partition, sent in producer.log if "by-event-id" in topic}
    assert by_id == keys_by_partition(keys)
    assert len(producer.log) == len(by_id) + 1  # one hand-over per topic partition
    assert producer.log[-1] == (PREFIX + LEDGER_TOPIC, partition_for(keys[0], 4), [keys[0]])


def test_a_full_batch_is_handed_over_before_the_next_record_starts_another() -> None:
    producer = FakeFaustProducer(batch_size=400)
    box = outbox(producer)
    keys = [f"k{number:03d}".encode() for number in range(60)]
    same_partition = [key for key in keys if partition_for(key, PARTITIONS) == 0]

    async def run() -> None:
        for key in same_partition:
            await box.send(Send(BY_EVENT_ID_TOPIC, key, b"v" * 60))
        await box.delivered()  # flushes what is left

    asyncio.run(run())
    batches = [sent for _, _, sent in producer.log]
    assert len(batches) > 1
    assert [key for batch in batches for key in batch] == same_partition


def test_a_record_larger_than_a_whole_batch_goes_alone_after_the_batch_before_it() -> None:
    producer = FakeFaustProducer(batch_size=1_000)
    box = outbox(producer)
    same = [key for key in (f"a{n}".encode() for n in range(40)) if partition_for(key, 4) == 0]
    first, large, last = same[:3]

    async def run() -> None:
        await box.send(Send(BY_EVENT_ID_TOPIC, first, b"small"))
        await box.send(Send(BY_EVENT_ID_TOPIC, large, b"L" * 5_000))
        await box.send(Send(BY_EVENT_ID_TOPIC, last, b"small"))
        await box.delivered()

    asyncio.run(run())
    assert [sent for _, _, sent in producer.log] == [[first], [large], [last]]


def test_without_bulk_sends_every_record_is_its_own_send() -> None:
    producer = FakeFaustProducer()
    box = outbox(producer, bulk=False)

    async def run() -> None:
        for key in (b"x", b"y"):
            await box.send(Send(BY_EVENT_ID_TOPIC, key, b"v"))
        assert len(producer.log) == 2
        await box.delivered()

    asyncio.run(run())
    assert [sent for _, _, sent in producer.log] == [[b"x"], [b"y"]]


def test_a_failed_batch_delivery_stops_the_worker_naming_the_batchs_first_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeFaustProducer()
    producer._producer.fail_topic = PREFIX + LEDGER_TOPIC
    box = outbox(producer)
    stopped: list[str] = []

    def stop(what: str) -> None:
        stopped.append(what)
        raise SystemExit(70)

    monkeypatch.setattr(outbox_module, "stop_without_commit", stop)

    async def run() -> None:
        await box.send(Send(LEDGER_TOPIC, b"entry-1", b"e"))
        await box.delivered()

    with pytest.raises(SystemExit):
        asyncio.run(run())
    assert len(stopped) == 1
    assert "delivery to fin.ledger.postings failed (key b'entry-1')" in stopped[0]
