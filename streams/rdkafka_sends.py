"""The batched runtime's sends through librdkafka (``FIN_LIBRDKAFKA_SENDS``), off the event loop.

Every output record of the hub costs the worker's one event loop a trip through aiokafka's
producer in Python: the send, the accumulator, the sender task, the produce request encoded
and its answer decoded, a future per record. At half the drain rate that loop is ~85 % busy
(docs/design.md, "Latency"). librdkafka (confluent-kafka) does the batching, encoding and
network I/O in its own C threads without the GIL; the loop only calls ``produce`` and, every
millisecond while records are outstanding, ``poll`` for their delivery reports (served on the
loop's own thread: a report thread would wait for the GIL once per record).

``RdKafkaSends`` offers what ``Outbox`` and ``BatchedTable.flush`` use of faust's producer:
``await send(topic, key, value, partition, timestamp, headers)`` returns an asyncio future of
the record's delivery (its topic, partition and offset), failed if the broker refused it. The
producer is idempotent with ``acks=all`` (order kept per
partition across retries) and partitions keyed records with murmur2, as aiokafka does (the
outbox names the partition itself whenever it knows the partition count).

faust flushes its own producer before each commit, at a revocation and at stop; ``attach``
makes that flush also wait for every record handed to this one before it (so a new owner of a
table partition never restores a changelog that still misses records of ours).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from errors import FinError
from settings import Settings
from streams.admin import RECORD_BYTES_MAX

log = logging.getLogger(__name__)

# How often the loop serves librdkafka's delivery reports while records are outstanding (a
# delivery takes the producer's linger, 5 ms, and a round trip to the broker at least).
PUMP_SECONDS = 0.001


class Delivered(NamedTuple):
    """A record's place in its topic (what FIN reads of aiokafka's RecordMetadata)."""

    topic: str
    partition: int
    offset: int


class DeliveryError(FinError):
    """The broker (or librdkafka, after its retries) refused a record."""


def librdkafka_sends_on(settings: Settings) -> bool:
    """Whether the batched runtime sends through librdkafka: asked for, and neither bulk sends
    (aiokafka's own batches) nor exactly-once (faust's transactional producer) in the way."""
    return (
        settings.librdkafka_sends
        and not settings.bulk_sends
        and settings.processing_guarantee != "exactly_once"
    )


def batch_producer(app: Any, settings: Settings) -> Any:
    """The producer of the batched runtime's records, made in the running loop: ours, attached
    to faust's (``librdkafka_sends_on``), else faust's own."""
    if not librdkafka_sends_on(settings):
        return app.producer
    sends = RdKafkaSends(producer_config(settings), asyncio.get_running_loop())
    sends.attach(app.producer)
    return sends


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": f"{settings.app_id}-sends",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": settings.producer_linger_s * 1000,
        "batch.size": settings.producer_batch_bytes,
        "message.max.bytes": RECORD_BYTES_MAX + 64 * 1024,
        "partitioner": "murmur2_random",  # aiokafka's (and Java's) partitioner for keyed records
        "socket.nagle.disable": True,
    }


class RdKafkaSends:
    """faust's ``producer.send`` as the batched runtime uses it, through librdkafka."""

    def __init__(
        self, config: dict[str, Any], loop: asyncio.AbstractEventLoop, producer: Any = None
    ) -> None:
        if producer is None:
            from confluent_kafka import Producer  # a dependency of the hub only when this is on

            producer = Producer(config)
        self._producer = producer
        self._loop = loop
        self._outstanding: set[asyncio.Future[Delivered]] = set()
        self._pump: asyncio.Task[None] | None = None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: int | None,
        headers: Sequence[tuple[str, bytes]] | None,
    ) -> asyncio.Future[Delivered]:
        future: asyncio.Future[Delivered] = self._loop.create_future()
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamp is not None:
            extra["timestamp"] = timestamp
        if headers:
            extra["headers"] = list(headers)
        report = self._reporter(future)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=report, **extra)
                break
            except BufferError:  # librdkafka's queue is full: let deliveries drain it
                self._producer.poll(0)
                await asyncio.sleep(PUMP_SECONDS)
        self._outstanding.add(future)
        if self._pump is None or self._pump.done():
            self._pump = self._loop.create_task(self._pumping())
        return future

    def _reporter(self, future: asyncio.Future[Delivered]) -> Any:
        outstanding = self._outstanding

        def report(error: Any, message: Any) -> None:  # inside ``poll``, on the loop
            outstanding.discard(future)
            if future.done():
                return
            if error is not None:
                future.set_exception(DeliveryError(str(error)))
            else:
                future.set_result(Delivered(message.topic(), message.partition(), message.offset()))

        return report

    async def _pumping(self) -> None:
        """Serve delivery reports on the loop while records are outstanding."""
        poll = self._producer.poll
        try:
            while self._outstanding:
                poll(0)
                if self._outstanding:
                    await asyncio.sleep(PUMP_SECONDS)
        finally:
            self._pump = None

    async def flush(self) -> None:
        """Wait for every record handed over before this call (failed ones included); serves
        the delivery reports itself, so it ends even if the pump was cancelled (at a stop)."""
        pending = list(self._outstanding)
        while pending:
            self._producer.poll(0)
            pending = [future for future in pending if not future.done()]
            if pending:
                await asyncio.wait(pending, timeout=PUMP_SECONDS)

    def attach(self, faust_producer: Any) -> None:
        """Make faust's own producer flush (before a commit, at a revocation, at stop) wait for
        this one's records too."""
        own_flush = faust_producer.flush

        async def flush_both() -> None:
            await own_flush()
            await self.flush()

        faust_producer.flush = flush_both
