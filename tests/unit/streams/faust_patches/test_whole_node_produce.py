"""Produce requests take every waiting batch of their broker (whole_node_produce)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Iterator
from typing import Any

import aiokafka
import pytest
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from aiokafka.structs import TopicPartition

from streams.faust_patches import whole_node_produce

AIOKAFKA_VERSION_REVIEWED = "0.14.0"
REVIEWED_SOURCE = {
    (MessageAccumulator, "drain_by_nodes"): "fc995afbfc5718e2",
    (MessageBatch, "remaining_linger"): "6f296891237ba250",
    (MessageBatch, "__init__"): "6fd2fe1c2df19a7e",
}


@pytest.fixture(autouse=True)
def aiokafka_as_it_was() -> Iterator[None]:
    yield
    whole_node_produce.uninstall()


def test_the_installed_aiokafka_is_the_reviewed_one_with_the_reviewed_code() -> None:
    assert aiokafka.__version__ == AIOKAFKA_VERSION_REVIEWED
    for (owner, name), digest in REVIEWED_SOURCE.items():
        source = inspect.getsource(getattr(owner, name))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
            f"aiokafka's {owner.__name__}.{name} changed: review "
            "streams/faust_patches/whole_node_produce.py"
        )
    for owner, name in (*whole_node_produce.REPLACED, *whole_node_produce.READ):
        assert hasattr(owner, name) or f"self.{name} =" in inspect.getsource(owner), name


class Cluster:
    def __init__(self, leaders: dict[TopicPartition, int]) -> None:
        self.leaders = leaders

    def leader_for_partition(self, tp: TopicPartition) -> int | None:
        return self.leaders.get(tp)


class Builder:
    def closed(self) -> bool:
        return False

    def record_count(self) -> int:
        return 1


async def accumulator_with(
    batches: dict[TopicPartition, float], leaders: dict[TopicPartition, int]
) -> Any:
    """aiokafka's accumulator (in the running loop) holding one batch per partition, each
    ``age`` seconds old, with a linger of 10 ms."""
    accumulator = MessageAccumulator(
        Cluster(leaders), batch_size=16384, compression_type=0, batch_ttl=30.0, linger_ms=10
    )
    now = time.monotonic()
    for tp, age in batches.items():
        batch = MessageBatch(tp, Builder(), ttl=30.0, linger_time=0.010)
        batch._ctime = now - age
        accumulator._batches[tp].append(batch)
    return accumulator


A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def drained(
    batches: dict[TopicPartition, float], leaders: dict[TopicPartition, int]
) -> dict[int, set[TopicPartition]]:
    async def drain() -> Any:
        accumulator = await accumulator_with(batches, leaders)
        nodes, _unknown = accumulator.drain_by_nodes(ignore_nodes=set())
        return {node: set(found) for node, found in nodes.items()}

    return dict(asyncio.run(drain()))


def test_aiokafka_alone_sends_only_the_batch_whose_linger_ran_out() -> None:
    assert drained({A0: 0.020, A1: 0.001, B0: 0.001}, {A0: 1, A1: 1, B0: 2}) == {1: {A0}}


def test_with_the_patch_a_ready_batch_takes_the_lingering_ones_of_its_broker_along() -> None:
    whole_node_produce.install()
    found = drained({A0: 0.020, A1: 0.001, B0: 0.001}, {A0: 1, A1: 1, B0: 2})
    assert found == {1: {A0, A1}}  # B0's broker had nothing ready: it lingers


def test_with_the_patch_nothing_goes_while_every_batch_still_lingers() -> None:
    whole_node_produce.install()
    assert drained({A0: 0.001, A1: 0.001}, {A0: 1, A1: 1}) == {}


def test_a_broker_the_sender_is_still_waiting_on_is_left_alone() -> None:
    whole_node_produce.install()

    async def marked() -> int:
        accumulator = await accumulator_with({A0: 0.020, A1: 0.001}, {A0: 1, A1: 1})
        return whole_node_produce.ready_with_their_node(accumulator, {1}, frozenset())

    assert asyncio.run(marked()) == 0


def test_install_and_uninstall() -> None:
    whole_node_produce.install()
    assert whole_node_produce.installed()
    whole_node_produce.uninstall()
    assert not whole_node_produce.installed()
