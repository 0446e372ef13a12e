"""Read a whole topic, synchronously, from its beginning to its end offsets as of now.

Operator tools (``tools/``) and the master-data preload read topics this way with kafka-python:
every partition assigned, read from the beginning, stopped at the end offsets captured when the
read started (a topic that keeps growing never makes a read hang), under a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from kafka import TopicPartition

from errors import FinError
from streams.deadletter import ConsumedRecord

READ_TIMEOUT_S = 60.0
POLL_TIMEOUT_MS = 500


class TopicReadError(FinError):
    """A topic could not be read to its end: it does not exist, or the deadline passed."""


class Consumer(Protocol):
    """The part of kafka-python's ``KafkaConsumer`` used here (tests pass a hand-written fake)."""

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def position(self, partition: TopicPartition) -> int | None: ...

    def poll(self, timeout_ms: int = 0) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...


def read_topic(
    consumer: Consumer,
    topic: str,
    *,
    timeout_s: float = READ_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ConsumedRecord]:
    """Every record of ``topic`` from the beginning up to its end offsets as of this call.

    Records written after the call starts are not returned. Raises TopicReadError when the topic
    does not exist or the end is not reached within ``timeout_s``.
    """
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise TopicReadError(f"topic {topic} does not exist")
    partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    pending = {partition for partition in partitions if before_end(consumer, partition, end)}
    consumer.pause(*(partition for partition in partitions if partition not in pending))
    deadline = clock() + timeout_s
    while pending:
        if clock() > deadline:
            raise TopicReadError(f"could not read {topic} to its end within {timeout_s:.0f}s")
        for partition, records in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).items():
            yield from (record for record in records if record.offset < end[partition])
        done = {partition for partition in pending if not before_end(consumer, partition, end)}
        if done:
            consumer.pause(*done)
            pending -= done


def before_end(
    consumer: Consumer, partition: TopicPartition, end: Mapping[TopicPartition, int]
) -> bool:
    # The position, not the last record's offset, says whether the end was reached: transaction
    # markers occupy offsets that never come back as records. An unknown position is not the
    # end; the read's deadline bounds the wait for it.
    position = consumer.position(partition)
    return position is None or position < end[partition]
