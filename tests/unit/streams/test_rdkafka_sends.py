"""The librdkafka sends (FIN_LIBRDKAFKA_SENDS) with a stand-in for confluent-kafka's Producer:
futures resolved on the loop from delivery reports, failures, a full queue, flush. The same
against a real broker: tests/integration/test_rdkafka_sends.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from settings import Settings
from streams.rdkafka_sends import (
    Delivered,
    DeliveryError,
    RdKafkaSends,
    librdkafka_sends_on,
    producer_config,
)


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class FakeProducer:
    """Queues each produced record's report until ``poll`` serves it, as librdkafka does."""

    def __init__(self) -> None:
        self.produced: list[dict[str, Any]] = []
        self.queued: list[tuple[Any, Any, FakeMessage]] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.full_times = 0
        self.refuse_topic: str | None = None
        self.polls = 0

    def produce(self, topic: str, value: Any, key: Any, *, on_delivery: Any, **extra: Any) -> None:
        if self.full_times:
            self.full_times -= 1
            raise BufferError("Local: Queue full")
        partition = extra.get("partition", 0)
        self.produced.append({"topic": topic, "key": key, "value": value, **extra})
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        error = "Broker: Message size too large" if topic == self.refuse_topic else None
        self.queued.append((on_delivery, error, FakeMessage(topic, partition, offset)))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        served, self.queued = self.queued, []
        for report, error, message in served:
            report(error, message)
        return len(served)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_delivery_report_resolves_the_future_with_the_records_place() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        first = await sends.send("t", b"k", b"v", 2, None, [("fin.reason", b"x")])
        second = await sends.send("t", b"k2", b"v2", 2, None, None)
        assert not first.done()  # nothing is resolved before librdkafka reports it
        assert await first == Delivered("t", 2, 0)
        assert await second == Delivered("t", 2, 1)
        assert fake.produced[0] == {
            "topic": "t",
            "key": b"k",
            "value": b"v",
            "partition": 2,
            "headers": [("fin.reason", b"x")],
        }
        assert "headers" not in fake.produced[1]

    run(scenario())


def test_a_refused_record_fails_its_future_and_only_its_own() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        fake.refuse_topic = "big"
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        refused = await sends.send("big", None, b"v", 0, None, None)
        fine = await sends.send("t", None, b"v", 0, None, None)
        await asyncio.wait([refused, fine])
        with pytest.raises(DeliveryError, match="too large"):
            refused.result()
        assert fine.result() == Delivered("t", 0, 0)

    run(scenario())


def test_a_full_queue_is_waited_out_not_dropped() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        fake.full_times = 3
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        future = await sends.send("t", b"k", b"v", 1, None, None)
        assert len(fake.produced) == 1
        assert await future == Delivered("t", 1, 0)

    run(scenario())


def test_flush_and_the_attached_faust_flush_wait_for_every_record_sent_before() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        order: list[str] = []

        class FaustProducer:
            async def flush(self) -> None:
                order.append("faust")

        faust_producer = FaustProducer()
        sends.attach(faust_producer)
        futures = [await sends.send("t", None, b"v", 0, None, None) for _ in range(5)]
        await faust_producer.flush()
        assert order == ["faust"]
        assert all(future.done() for future in futures)
        await sends.flush()  # nothing outstanding: returns at once

    run(scenario())


def test_the_pump_stops_when_nothing_is_outstanding() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        await (await sends.send("t", None, b"v", 0, None, None))
        await asyncio.sleep(0.01)
        polls = fake.polls
        await asyncio.sleep(0.02)
        assert fake.polls == polls  # no polling while idle

    run(scenario())


def test_the_producer_configuration_keeps_order_and_the_partitioner() -> None:
    config = producer_config(Settings(kafka_bootstrap="b:9092", producer_linger_s=0.005))
    assert config["bootstrap.servers"] == "b:9092"
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"
    assert config["linger.ms"] == 5


def test_librdkafka_sends_are_asked_for_and_never_with_bulk_sends_or_transactions() -> None:
    assert not librdkafka_sends_on(Settings())  # off by default (docs/design.md, "Latency")
    asked = Settings.from_env({"FIN_LIBRDKAFKA_SENDS": "1"})
    assert librdkafka_sends_on(asked)
    assert not librdkafka_sends_on(replace(asked, bulk_sends=True))
    assert not librdkafka_sends_on(replace(asked, processing_guarantee="exactly_once"))


def test_flush_ends_even_when_the_pump_was_cancelled() -> None:
    async def scenario() -> None:
        fake = FakeProducer()
        sends = RdKafkaSends({}, asyncio.get_running_loop(), producer=fake)
        futures = [await sends.send("t", None, b"v", 0, None, None) for _ in range(3)]
        pump = sends._pump
        assert pump is not None
        pump.cancel()  # a worker's stop cancels its tasks
        await asyncio.sleep(0)
        await asyncio.wait_for(sends.flush(), timeout=5)
        assert all(future.done() and future.result().offset >= 0 for future in futures)

    run(scenario())
