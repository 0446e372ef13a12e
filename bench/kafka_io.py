"""Kafka plumbing for the benchmark (confluent-kafka: fast, and none of it is measured).

Topic creation and deletion, bulk loading with big batches, end offsets, and reading record
timestamps back, which is how drain times and end-to-end latencies are measured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

# librdkafka's notices (e.g. "partition count changed" for topics other runs just deleted)
# would drown the benchmark's own output; warnings and errors still show.
QUIET = {"log_level": 4}
LOAD_PRODUCER_CONFIG = {
    **QUIET,
    "acks": "all",
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # The Java client's partitioner, so keys land where any Kafka producer would put them.
    "partitioner": "murmur2_random",
}
# Broker-side append time: "when the record appeared on the topic", for latency and drain ends.
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True)
class Outgoing:
    topic: str  # the real (prefixed) topic
    key: bytes
    value: bytes


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        self._consumer = Consumer(
            {
                **QUIET,
                "bootstrap.servers": bootstrap,
                "group.id": "fin-bench-reader",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    # --- topics ----------------------------------------------------------------------------

    def create_topics(
        self, names: Iterable[str], partitions: int, config: dict[str, str] | None = None
    ) -> None:
        wanted = [
            NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
            for name in names
        ]
        if not wanted:
            return
        for name, future in self.admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"creating {name}: {exc}") from exc
        self._wait_for_metadata([topic.topic for topic in wanted])

    def _wait_for_metadata(self, names: Sequence[str], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            known = self.admin.list_topics(timeout=10).topics
            if all(name in known and not known[name].error for name in names):
                return
            time.sleep(0.2)
        raise TimeoutError(f"topics not visible after {timeout_s}s: {names}")

    def topics_starting_with(self, *prefixes: str) -> list[str]:
        known = self.admin.list_topics(timeout=10).topics
        return sorted(name for name in known if name.startswith(prefixes))

    def delete_topics(self, names: Sequence[str]) -> None:
        if not names:
            return
        for future in self.admin.delete_topics(list(names), operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # already gone: nothing to clean
                future.result()

    # --- consumer groups -------------------------------------------------------------------

    def group_assignment(self, group_id: str) -> list[set[tuple[str, int]]] | None:
        """The (topic, partition) pairs of every member of a *stable* group; None while the
        group is rebalancing, empty or unknown."""
        future = self.admin.describe_consumer_groups([group_id], request_timeout=10)[group_id]
        try:
            description = future.result()
        except KafkaException:
            return None
        if description.state != ConsumerGroupState.STABLE:
            return None
        return [
            {
                (tp.topic, tp.partition)
                for tp in (member.assignment.topic_partitions if member.assignment else [])
            }
            for member in description.members
        ]

    # --- loading ---------------------------------------------------------------------------

    def load(self, records: Sequence[Outgoing]) -> float:
        """Send every record (acks=all, big batches); the seconds it took."""
        producer = Producer({"bootstrap.servers": self.bootstrap, **LOAD_PRODUCER_CONFIG})
        failures: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        started = time.monotonic()
        for record in records:
            while True:
                try:
                    producer.produce(
                        record.topic, value=record.value, key=record.key, on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        remaining = producer.flush(120)
        if remaining or failures:
            raise RuntimeError(
                f"loading failed: {remaining} not delivered, {len(failures)} refused "
                f"({failures[:3]})"
            )
        return time.monotonic() - started

    # --- reading ---------------------------------------------------------------------------

    def partitions(self, topic: str) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return []
        return sorted(metadata.partitions)

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return {
            partition: self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            for partition in self.partitions(topic)
        }

    def count(self, topic: str) -> int:
        """Records ever written to ``topic`` (sum of end offsets; nothing is deleted here)."""
        return sum(high for _, high in self.watermarks(topic).values())

    def timestamps_at(self, topic: str, *, last: bool) -> list[int]:
        """Timestamps (ms) of the first (or last) record of every non-empty partition."""
        return [timestamp for timestamp, _ in self._edge_records(topic, last=last)]

    def last_keys(self, topic: str) -> list[bytes]:
        """The key of the last record of every non-empty partition."""
        return [key for _, key in self._edge_records(topic, last=True)]

    def _edge_records(self, topic: str, *, last: bool) -> list[tuple[int, bytes]]:
        """(timestamp ms, key) of the first (or last) record of every non-empty partition."""
        wanted = [
            TopicPartition(topic, partition, high - 1 if last else low)
            for partition, (low, high) in self.watermarks(topic).items()
            if high > low
        ]
        if not wanted:
            return []
        found: dict[int, tuple[int, bytes]] = {}
        self._consumer.assign(wanted)
        deadline = time.monotonic() + 30
        try:
            while len(found) < len(wanted) and time.monotonic() < deadline:
                for message in self._consumer.consume(len(wanted), timeout=1.0):
                    partition = message.partition()
                    if message.error() is None and partition is not None:
                        found.setdefault(partition, (message.timestamp()[1], message.key() or b""))
        finally:
            self._consumer.unassign()
        if len(found) < len(wanted):
            raise TimeoutError(
                f"could not read the {'last' if last else 'first'} records of {topic}"
            )
        return list(found.values())

    def read_keys_and_timestamps(
        self, topic: str, timeout_s: float = 120
    ) -> list[tuple[bytes, int]]:
        """(key, timestamp ms) of every record of ``topic`` up to its current end."""
        ends = {p: high for p, (_, high) in self.watermarks(topic).items() if high > 0}
        if not ends:
            return []
        consumer = Consumer(
            {
                **QUIET,
                "bootstrap.servers": self.bootstrap,
                "group.id": "fin-bench-reader",
                "enable.auto.commit": False,
                "fetch.max.bytes": 52_428_800,
            }
        )
        records: list[tuple[bytes, int]] = []
        positions = dict.fromkeys(ends, 0)
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        try:
            while any(positions[p] < ends[p] for p in ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} took over {timeout_s}s")
                for message in consumer.consume(10_000, timeout=0.5):
                    partition, offset = message.partition(), message.offset()
                    if message.error() is not None or partition is None or offset is None:
                        continue
                    positions[partition] = offset + 1
                    records.append((message.key() or b"", message.timestamp()[1]))
        finally:
            consumer.close()
        return records
