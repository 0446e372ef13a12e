"""The runtime's lag watch (streams/lag.py): what REST reads of the worker's own partitions,
against a hand-written stand-in for faust's consumer and producer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from settings import Settings
from streams.lag import LagWatch, Throughput
from streams.metrics import Metrics

PREFIX = "t1."
SETTINGS = Settings(topic_prefix=PREFIX)
BUDGETS = f"{PREFIX}fin.internal.deltas.budgets"


@dataclass
class FakeConsumer:
    ends: dict[TP, int]
    starts: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    _acked: dict[TP, list[int]] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.starts.get(tp, 0) for tp in partitions}


@dataclass
class FakePartitioned:
    partition: int


@dataclass
class FakeProducer:
    partition: int

    def key_partition(self, topic: str, key: bytes) -> FakePartitioned:
        return FakePartitioned(self.partition)


@dataclass
class FakeApp:
    consumer: FakeConsumer
    producer: FakeProducer


@dataclass
class FakeHub:
    app: FakeApp
    settings: Settings = SETTINGS
    metrics: Metrics = field(default_factory=Metrics)
    contract_topic_of: dict[str, str] = field(
        default_factory=lambda: {BUDGETS: "fin.internal.deltas.budgets"}
    )


def watch_over(consumer: FakeConsumer, partition: int = 1) -> tuple[LagWatch, Any]:
    hub = FakeHub(FakeApp(consumer, FakeProducer(partition)))
    return LagWatch(hub), hub  # type: ignore[arg-type]


def test_a_sample_is_end_minus_committed_and_reaches_every_listener() -> None:
    tp = TP(BUDGETS, 1)
    consumer = FakeConsumer(ends={tp: 120}, _committed_offset={tp: 100})
    watch, _ = watch_over(consumer)
    heard: list[dict[tuple[str, int], int]] = []
    watch.on_sample(lambda lags: heard.append(dict(lags)))
    asyncio.run(watch.sample())
    assert watch.lags == {("fin.internal.deltas.budgets", 1): 20}
    assert heard == [{("fin.internal.deltas.budgets", 1): 20}]


def test_a_partition_never_committed_counts_from_its_first_offset() -> None:
    tp = TP(BUDGETS, 1)
    watch, _ = watch_over(FakeConsumer(ends={tp: 50}, starts={tp: 10}))
    asyncio.run(watch.sample())
    assert watch.lags == {("fin.internal.deltas.budgets", 1): 40}


def test_the_lags_rest_reads_cannot_be_changed_by_it() -> None:
    watch, _ = watch_over(FakeConsumer(ends={}))
    with pytest.raises(TypeError):
        watch.lags[("fin.internal.deltas.budgets", 0)] = 1  # type: ignore[index]


def test_a_key_position_names_its_partition_committed_offset_and_last_lag() -> None:
    tp = TP(BUDGETS, 1)
    watch, _ = watch_over(FakeConsumer(ends={tp: 120}, _committed_offset={tp: 100}))
    asyncio.run(watch.sample())
    position = watch.position("fin.internal.deltas.budgets", b"ENG-001|SALARY|2024-Q1")
    assert (position.partition, position.committed_offset, position.lag) == (1, 100, 20)


def test_a_failed_sample_is_counted_and_keeps_the_previous_one() -> None:
    tp = TP(BUDGETS, 1)
    consumer = FakeConsumer(ends={tp: 120}, _committed_offset={tp: 100})
    watch, hub = watch_over(consumer)
    asyncio.run(watch.sample())

    async def broken(*partitions: TP) -> dict[TP, int]:
        raise ConnectionError("broker away")

    consumer.highwaters = broken  # type: ignore[method-assign]
    asyncio.run(watch.sample())
    assert watch.lags == {("fin.internal.deltas.budgets", 1): 20}
    failures = hub.metrics.registry.get_sample_value(
        "fin_timer_failures_total", {"timer": "lag_sampler"}
    )
    assert failures == 1.0


def test_throughput_is_the_consumed_count_per_second_between_two_samples() -> None:
    throughput = Throughput()
    throughput.sample(100.0, now_s=10.0)
    throughput.sample(160.0, now_s=12.0)
    assert throughput.per_second == 30.0
