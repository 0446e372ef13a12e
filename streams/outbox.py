"""Output records of one batch straight to the producer, and what happens when one is refused.

The batched runtime (``streams/batched.py``) hands every output record of a batch to the
producer at once (``Outbox``) and waits for their deliveries at the end; a record the producer
refuses (too large) dead-letters its source record instead (``send_or_dead_letter``), with its
original bytes when they fit, else without them and a detail naming where the original is. A
failed delivery, or a dead letter that cannot be sent at all, stops the worker at once without
acknowledging (``stop_without_commit``): the restart processes the batch again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from errors import FinError
from settings import (
    DLQ_TOPIC,
    Settings,
)
from streams.admin import RECORD_BYTES_MAX
from streams.deadletter import SourcePosition
from streams.effects import Send, StageResult
from streams.metrics import Metrics
from streams.partitioner import partition_for
from streams.stage_records import processing_error

log = logging.getLogger(__name__)

# Kafka's default message.max.bytes (1 MiB + 12), less a margin for the record batch framing.
BROKER_DEFAULT_RECORD_BYTES_MAX = 1_000_000

# The process exit status when the worker stops itself rather than commit past a record.
EXIT_UNSAFE_TO_CONTINUE = 70


def stop_without_commit(what: str) -> NoReturn:
    """Stop the worker now, acknowledging nothing more (see the module docstring)."""
    log.critical("%s; stopping the worker without committing (a restart processes it again)", what)
    logging.shutdown()
    os._exit(EXIT_UNSAFE_TO_CONTINUE)


class Outbox:
    """The records of one batch, handed to the producer at once, delivery awaited at the end.

    With ``settings.bulk_sends`` a keyed record (its partition known) is appended to one
    producer batch per topic partition (aiokafka's ``BatchBuilder``: no producer call, no
    future per record), and ``flush`` hands each batch over once; the records of a partition
    keep their order (a full batch is handed over before the next one starts, a record larger
    than a whole batch goes alone, after it). The caller flushes before it waits for the
    deliveries (``delivered`` flushes what is left too)."""

    def __init__(
        self,
        producer: Any,
        settings: Settings,
        metrics: Metrics,
        partition_counts: dict[str, int] | None = None,
        record_limits: Mapping[str, int] | None = None,
        metadata: Any = None,
    ) -> None:
        self._producer = producer
        # faust's producer, whose aiokafka client knows the topics' partition counts (the
        # producer records go to may be another: streams/rdkafka_sends.py).
        self._metadata = metadata if metadata is not None else producer
        self._record_limits = record_limits or {}
        self._settings = settings
        self._metrics = metrics
        self._deliveries: list[tuple[Send, asyncio.Future[Any]]] = []
        self._delivered: list[tuple[Send, asyncio.Future[Any]]] = []  # after ``delivered``
        # Keyed records get their partition from FIN's murmur2 (streams/partitioner.py), the
        # same as aiokafka's default partitioner at a fraction of its cost.
        self._partition_counts = partition_counts if partition_counts is not None else {}
        # (topic, partition) -> (the batch being filled, its first record: names the batch in
        # a delivery failure). Insertion-ordered: handed over in the order first written.
        self._bulk = settings.bulk_sends
        self._batches: dict[tuple[str, int], tuple[Any, Send]] = {}

    def _record_limit(self, topic: str) -> int:
        return record_bytes_limit(topic, self._record_limits)

    def _partition_count(self, topic: str) -> int | None:
        """The topic's partition count from the producer's metadata (None: not known yet, and
        aiokafka's own partitioner decides, with the same result, only slower)."""
        client = getattr(getattr(self._metadata, "_producer", None), "client", None)
        partitions = client.cluster.partitions_for_topic(topic) if client is not None else None
        if not partitions:
            return None
        # Kafka numbers partitions 0..n-1; the default partitioner indexes the sorted list.
        count = len(partitions)
        self._partition_counts[topic] = count
        return count

    def partition_count(self, contract_topic: str) -> int | None:
        """The partition count of a contract topic, if the producer knows it yet."""
        topic = self._settings.topic(contract_topic)
        return self._partition_counts.get(topic) or self._partition_count(topic)

    async def send(self, send: Send) -> None:
        """Hand ``send`` to the producer; raises if the producer refuses it outright."""
        size = len(send.key or b"") + len(send.value or b"")
        size += sum(len(name) + len(value) for name, value in send.headers)
        limit = self._record_limit(send.topic)
        if size > limit:
            # Refused here, where the record that caused it is known: a broker refusing it after
            # the hand-over would fail the batch's delivery and stop the worker (a crash loop).
            raise RecordTooLargeError(
                f"a {size}-byte record for {send.topic} is over its {limit}-byte limit"
            )
        topic = self._settings.topic(send.topic)
        partition = send.partition
        if partition is None and send.key is not None:
            count = self._partition_counts.get(topic) or self._partition_count(topic)
            if count:
                partition = partition_for(send.key, count)
        headers = list(send.headers)
        if self._bulk and partition is not None:
            client = getattr(self._producer, "_producer", None)  # aiokafka's, behind faust's
            if client is not None and await self._append(client, send, topic, partition, headers):
                return
        future = await self._producer.send(
            topic,
            send.key,
            send.value,
            partition,
            None,
            headers or None,
        )
        self._deliveries.append((send, future))

    async def _append(
        self, client: Any, send: Send, topic: str, partition: int, headers: list[Any]
    ) -> bool:
        """Append ``send`` to its partition's batch; False if it is larger than a whole batch
        (the caller sends it alone, after the batch before it)."""
        slot = (topic, partition)
        filling = self._batches.get(slot)
        if filling is not None:
            appended = filling[0].append(
                timestamp=None, key=send.key, value=send.value, headers=headers
            )
            if appended is not None:
                return True
            await self._hand_over(client, slot)  # full: the next records start a new batch
        builder = client.create_batch()
        if (
            builder.append(timestamp=None, key=send.key, value=send.value, headers=headers)
            is not None
        ):
            self._batches[slot] = (builder, send)
            return True
        return False

    async def _hand_over(self, client: Any, slot: tuple[str, int]) -> None:
        builder, first = self._batches.pop(slot)
        topic, partition = slot
        future = await client.send_batch(builder, topic, partition=partition)
        self._deliveries.append((first, future))

    async def flush(self) -> None:
        """Hand every batch still being filled to the producer."""
        if not self._batches:
            return
        client = getattr(self._producer, "_producer", None)
        for slot in list(self._batches):
            await self._hand_over(client, slot)

    def delivered_to(self, contract_topic: str) -> list[tuple[Send, Any]]:
        """After ``delivered``: each record sent on its own to ``contract_topic``, with its
        delivery result (aiokafka's record metadata: partition, offset), in the order sent."""
        return [
            (send, future.result())
            for send, future in self._delivered
            if send.topic == contract_topic
        ]

    def add_futures(self, what: str, futures: Iterable[tuple[bytes, asyncio.Future[Any]]]) -> None:
        """Deliveries sent outside this outbox (a table's changelog records), each with its
        record's key, which a failure's log names."""
        self._deliveries.extend((Send(what, key, None), future) for key, future in futures)

    async def delivered(self) -> None:
        """Wait for every delivery; a failed one stops the worker (input left unacknowledged)."""
        await self.flush()
        if not self._deliveries:
            return
        await asyncio.wait([future for _, future in self._deliveries])
        for send, future in self._deliveries:
            failure = future.exception() if not future.cancelled() else asyncio.CancelledError()
            if failure is not None:
                self._metrics.send_failures.labels(send.topic).inc()
                stop_without_commit(
                    f"delivery to {send.topic} failed (key {send.key!r}): {failure!r}"
                )
        self._delivered.extend(self._deliveries)
        self._deliveries.clear()


class RecordTooLargeError(FinError):
    """An output record larger than its topic accepts."""


def record_bytes_limit(topic: str, configured: Mapping[str, int]) -> int:
    """The largest record (key + value + headers) FIN sends to a contract topic: its own
    ``max.message.bytes`` as read at start (``streams.admin.record_byte_limits``), else the
    broker's default limit; never more than the producer takes."""
    return min(configured.get(topic, BROKER_DEFAULT_RECORD_BYTES_MAX), RECORD_BYTES_MAX)


async def send_or_dead_letter(
    outbox: Outbox,
    sends: Sequence[Send],
    *,
    key: bytes | None,
    value: bytes | None,
    source: SourcePosition,
    event_id: str | None,
    attempts: int,
) -> StageResult | None:
    """Send a record's outputs; if the producer refuses one, dead-letter the record instead.

    Returns the dead-letter result in that case (the caller counts that outcome), else None.
    Outputs already handed over stay (a journal entry then has its dead letter beside it: the
    consumers of both dedupe, and the posting is recorded, so a replay does not repeat it)."""
    for send in sends:
        try:
            await outbox.send(send)
        except Exception as exc:
            if send.topic == DLQ_TOPIC:
                await dead_letter_without_value(outbox, send, exc, source, event_id)
                return None
            result = processing_error(
                exc,
                key=key,
                value=value,
                source=source,
                now=datetime.now(UTC),
                event_id=event_id,
                attempts=attempts,
            )
            for letter in result.sends:
                try:
                    await outbox.send(letter)
                except Exception as letter_exc:
                    await dead_letter_without_value(outbox, letter, letter_exc, source, event_id)
            return result
    return None


async def dead_letter_without_value(
    outbox: Outbox,
    letter: Send,
    exc: BaseException,
    source: SourcePosition,
    event_id: str | None,
) -> None:
    """The dead letter itself was refused (its original bytes are too large to copy): send it
    without them, saying so and where the original is; if even that fails, stop."""
    size = len(letter.value or b"") + len(letter.key or b"")
    note = (
        f"; original record not copied ({size} bytes refused by the producer: "
        f"{type(exc).__name__}); read it at {source.topic}[{source.partition}]@{source.offset}"
    )
    headers = tuple(
        (name, value + note.encode()) if name == "fin.detail" else (name, value)
        for name, value in letter.headers
    )
    key = letter.key if letter.key is not None and len(letter.key) <= 1024 else None
    try:
        await outbox.send(Send(DLQ_TOPIC, key, None, headers))
    except Exception as final:
        stop_without_commit(
            f"cannot dead-letter {source.topic}[{source.partition}]@{source.offset} "
            f"event_id={event_id or '-'}: {final!r}"
        )
