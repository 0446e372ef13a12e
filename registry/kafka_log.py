"""The `_schemas` topic as an append-only log: read to its end, append and wait for the acks.

kafka-python is synchronous, so every Kafka call runs on one dedicated thread (its clients are not
meant to be shared between threads) and the event loop awaits it. The topic is created when it is
missing: one partition (the order of records is the order of writes), compacted (the latest
record per key is kept forever), replication factor 1 (a one-node cluster). A topic that exists
with more than one partition is refused; one that is not compacted is used, with a warning, since
retention would eventually delete schemas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from registry.errors import StoreError, StoreTimeoutError
from registry.store import LogRecord

LOG = logging.getLogger(__name__)

# A schema is at most 1 MiB; escaped inside its JSON record it can nearly double.
RECORD_BYTES_MAX = 8 * 1024 * 1024
POLL_TIMEOUT_MS = 500
CONNECT_ATTEMPT_TIMEOUT_MS = 5_000
CONNECT_RETRY_DELAY_S = 1.0

T = TypeVar("T")


class KafkaSchemaLog:
    """`SchemaLog` on a one-partition compacted Kafka topic, written with acks=all."""

    def __init__(self, bootstrap: str, topic: str, *, request_timeout_s: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partition = TopicPartition(topic, 0)
        self._request_timeout_s = request_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry-kafka")
        self._producer: Any = None
        self._consumer: Any = None
        self._closing = False

    async def connect(self, timeout_s: float) -> None:
        """Connect, creating the topic if needed; retry until `timeout_s` has passed."""
        await self._run(self._connect_with_retries, timeout_s)

    async def read_from(self, offset: int) -> list[LogRecord]:
        return await self._run(self._read_from, offset)

    async def append(self, entries: Sequence[tuple[bytes, bytes | None]]) -> list[int]:
        return await self._run(self._append, list(entries))

    async def close(self) -> None:
        self._closing = True
        try:
            await self._run(self._close_clients)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function: Callable[..., T], *arguments: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *arguments)

    # --- on the Kafka thread ----------------------------------------------------------------

    def _connect_with_retries(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._closing:
                raise StoreError("the registry is stopping")
            try:
                self._connect_once()
                return
            except (KafkaError, OSError) as exc:
                self._close_clients()
                if self._closing or time.monotonic() + CONNECT_RETRY_DELAY_S > deadline:
                    raise StoreError(
                        f"cannot use Kafka at {self._bootstrap} (topic {self._topic}): {exc}"
                    ) from exc
                LOG.warning("Kafka at %s not usable yet (%s); retrying", self._bootstrap, exc)
                time.sleep(CONNECT_RETRY_DELAY_S)

    def _connect_once(self) -> None:
        request_timeout_ms = int(self._request_timeout_s * 1000)
        common: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap.split(","),
            "client_id": "fin-registry",
            "bootstrap_timeout_ms": CONNECT_ATTEMPT_TIMEOUT_MS,
            "request_timeout_ms": request_timeout_ms,
        }
        admin = KafkaAdminClient(**common)
        try:
            self._ensure_topic(admin)
        finally:
            admin.close()
        self._producer = KafkaProducer(
            **common,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            max_request_size=RECORD_BYTES_MAX,
            delivery_timeout_ms=request_timeout_ms * 2,
            allow_auto_create_topics=False,
        )
        self._consumer = KafkaConsumer(
            **common,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=RECORD_BYTES_MAX,
            allow_auto_create_topics=False,
        )
        self._consumer.assign([self._partition])

    def _ensure_topic(self, admin: Any) -> None:
        try:
            admin.create_topics(
                {
                    self._topic: {
                        "num_partitions": 1,
                        "replication_factor": 1,
                        "configs": {
                            "cleanup.policy": "compact",
                            "max.message.bytes": str(RECORD_BYTES_MAX),
                        },
                    }
                },
                wait_for_metadata=True,
            )
            LOG.info("created topic %s (1 partition, compacted)", self._topic)
            return
        except TopicAlreadyExistsError:
            pass
        (description,) = admin.describe_topics([self._topic])
        partitions = len(description["partitions"])
        if partitions != 1:
            raise StoreError(
                f"topic {self._topic} has {partitions} partitions; the registry needs exactly one"
                " (the order of its records is the order of writes)"
            )
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, self._topic)], config_filter="all"
        )
        policy = configs["topic"][self._topic].get("cleanup.policy", {}).get("value", "")
        if "compact" not in str(policy).split(","):
            LOG.warning(
                "topic %s has cleanup.policy=%s, not compact: retention may delete schemas",
                self._topic,
                policy,
            )

    def _read_from(self, offset: int) -> list[LogRecord]:
        consumer = self._require(self._consumer)
        timeout_ms = int(self._request_timeout_s * 1000)
        try:
            end = consumer.end_offsets([self._partition], timeout_ms=timeout_ms)[self._partition]
            if offset >= end:
                return []
            consumer.seek(self._partition, offset)
            records: list[LogRecord] = []
            deadline = time.monotonic() + self._request_timeout_s
            while consumer.position(self._partition, timeout_ms=timeout_ms) < end:
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                received = False
                for partition_records in batch.values():
                    for record in partition_records:
                        records.append(LogRecord(record.offset, record.key, record.value))
                        received = True
                if received:
                    deadline = time.monotonic() + self._request_timeout_s
                elif time.monotonic() > deadline:
                    raise StoreTimeoutError(
                        f"timed out reading topic {self._topic} up to offset {end}"
                    )
        except KafkaTimeoutError as exc:
            raise StoreTimeoutError(f"timed out reading topic {self._topic}: {exc}") from exc
        except KafkaError as exc:
            raise StoreError(f"cannot read topic {self._topic}: {exc}") from exc
        return records

    def _append(self, entries: list[tuple[bytes, bytes | None]]) -> list[int]:
        producer = self._require(self._producer)
        try:
            futures = [
                producer.send(self._topic, key=key, value=value, partition=0)
                for key, value in entries
            ]
            producer.flush(timeout=self._request_timeout_s * 2)
            return [future.get(timeout=self._request_timeout_s).offset for future in futures]
        except KafkaTimeoutError as exc:
            raise StoreTimeoutError(f"timed out writing to topic {self._topic}: {exc}") from exc
        except KafkaError as exc:
            raise StoreError(f"cannot write to topic {self._topic}: {exc}") from exc

    def _require(self, client: Any) -> Any:
        if client is None:
            raise StoreError(f"not connected to Kafka (topic {self._topic})")
        return client

    def _close_clients(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing is best effort; the process is stopping
                    LOG.exception("closing a Kafka client failed")
        self._producer = None
        self._consumer = None
