"""The batched runtime (``FIN_RUNTIME=batched``): the same stages as ``streams/hub.py``, per batch.

Why: every faust pass costs ~160 µs per record to consume, a send through faust ~285 µs and a
table write with its changelog ~330 µs (measured, ../shared/ARCHITECTURE.md "Dataflow"), while
a bare producer send costs ~20 µs. So here:

- agents take records in batches of what is ready (``streams.take.take_ready``);
- every output record of a batch goes straight to the producer (``app.producer.send``), and the
  batch is acknowledged only after every one of them was delivered (awaited futures), so no
  offset is committed past a record whose outputs are not on the broker;
- table rows go through ``tables.store.BatchedTable``: each row written once per batch, one
  changelog record per row and batch;
- the posting stage coalesces its deltas per row and batch: one delta record per (table, key)
  and batch, holding that row's deltas in order (each with its position, so the table's guard
  still applies them exactly once, whatever the batch boundaries after a crash);
- no agent and no table for the entries index (``GET /ledger/entries/{id}``): every worker
  reads the ledger topic into a local copy keyed by entry id (``tables/entries_index.py``).

Nothing that raises may skip a record: an exception while processing one record dead-letters it
as ``processing_error`` (original bytes, source position, the exception in ``fin.detail``) and
the batch goes on; a record the producer refuses (too large) is dead-lettered the same way, with
its original bytes if they fit, else without them and a detail naming where the original is.
If even that fails, or a delivery fails, the worker stops at once without acknowledging the
batch (``os._exit``): faust would otherwise acknowledge it when the agent ends, and commit past
records whose outputs are not on the broker; the restart processes the batch again, and every
stage recognises a replay.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson
from faust.types import EventT, StreamT

from errors import FinError
from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.deltas import delta_from_json_dict, delta_to_json_dict
from schemas.codec import Decoder, Encoder
from settings import (
    ALERTS_TOPIC,
    BY_EVENT_ID_TOPIC,
    COMMANDS_TOPIC,
    DELTA_TABLES,
    DLQ_TOPIC,
    SOURCE_TOPICS,
    Settings,
    delta_topic,
)
from streams.admin import RECORD_BYTES_MAX
from streams.deadletter import SourcePosition, processing_attempt
from streams.effects import Send, StageResult
from streams.faust_patches import delivery_audit
from streams.metrics import Metrics
from streams.partitioner import partition_for
from streams.pipeline import (
    Ingest,
    Posting,
    by_id_record,
    ingest_counters,
    posting_counters,
    processing_error,
    stats_key_ingest,
    stats_key_posting,
)
from streams.take import take_ready
from tables.store import PACK_BYTES_MAX, BatchedTable, is_pack, pack_key

log = logging.getLogger(__name__)

# Kafka's default message.max.bytes (1 MiB + 12), less a margin for the record batch framing.
BROKER_DEFAULT_RECORD_BYTES_MAX = 1_000_000

# The process exit status when the worker stops itself rather than commit past a record.
EXIT_UNSAFE_TO_CONTINUE = 70

CountOutcome = Callable[[StageResult, str], None]


def stop_without_commit(what: str) -> NoReturn:
    """Stop the worker now, acknowledging nothing more (see the module docstring)."""
    log.critical("%s; stopping the worker without committing (a restart processes it again)", what)
    logging.shutdown()
    os._exit(EXIT_UNSAFE_TO_CONTINUE)


class Outbox:
    """The records of one batch, handed to the producer at once, delivery awaited at the end."""

    def __init__(
        self,
        producer: Any,
        settings: Settings,
        metrics: Metrics,
        partition_counts: dict[str, int] | None = None,
        record_limits: Mapping[str, int] | None = None,
    ) -> None:
        self._producer = producer
        self._record_limits = record_limits or {}
        self._settings = settings
        self._metrics = metrics
        self._deliveries: list[tuple[Send, asyncio.Future[Any]]] = []
        # Keyed records get their partition from FIN's murmur2 (streams/partitioner.py), the
        # same as aiokafka's default partitioner at a fraction of its cost.
        self._partition_counts = partition_counts if partition_counts is not None else {}

    def _record_limit(self, topic: str) -> int:
        return record_bytes_limit(topic, self._record_limits)

    def _partition_count(self, topic: str) -> int | None:
        """The topic's partition count from the producer's metadata (None: not known yet, and
        aiokafka's own partitioner decides, with the same result, only slower)."""
        client = getattr(getattr(self._producer, "_producer", None), "client", None)
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
        future = await self._producer.send(
            topic,
            send.key,
            send.value,
            partition,
            None,
            list(send.headers) or None,
        )
        self._deliveries.append((send, future))

    def add_futures(self, what: str, futures: Iterable[asyncio.Future[Any]]) -> None:
        marker = Send(what, None, None)
        self._deliveries.extend((marker, future) for future in futures)

    async def delivered(self) -> None:
        """Wait for every delivery; a failed one stops the worker (input left unacknowledged)."""
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
        self._deliveries.clear()


class InjectedFaultError(FinError):
    """Raised on purpose (FIN_FAULT_INJECT_EVENT_ID), to prove a defect loses no record."""


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


async def run_batch(work: Callable[[], Awaitable[BatchDelivery]], what: str) -> BatchDelivery:
    """Process one batch to its end (its outputs handed to the producer), even if the agent is
    cancelled meanwhile (stop, rebalance): a batch cut off halfway could not be acknowledged
    honestly. An unexpected exception here is a defect outside any one record's processing:
    stop without acknowledging."""
    task = asyncio.ensure_future(work())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            try:
                await task
            except BaseException as exc:
                stop_without_commit(f"{what} batch failed while stopping: {exc!r}")
        raise
    except BaseException as exc:
        log.exception("%s batch failed", what)
        stop_without_commit(f"{what} batch failed: {exc!r}")


@dataclass
class BatchDelivery:
    """What one processed batch still waits for: the delivery of its outputs and changelog
    records; then its tables' persisted offsets are recorded and ``after`` runs."""

    box: Outbox
    changelogs: list[tuple[BatchedTable, list[asyncio.Future[Any]]]]
    after: Callable[[], None] | None = None

    async def complete(self) -> None:
        await self.box.delivered()  # a failed delivery stops the worker here
        for table, futures in self.changelogs:
            table.mark_persisted(futures)
        if self.after is not None:
            self.after()


class InFlight:
    """The batches of one agent whose deliveries are not complete yet, at most ``depth``.

    An agent processes its next batch while the previous ones are being delivered (the broker
    round trip is most of a small batch's time); a background task completes them in order
    and acknowledges each batch's events only after all its deliveries succeeded, so no offset
    is committed past a record whose outputs were not acknowledged by the broker."""

    def __init__(self, stream: StreamT[Any], what: str, depth: int) -> None:
        self._stream: Any = stream
        self._what = what
        self._queue: asyncio.Queue[tuple[Sequence[EventT[Any]], BatchDelivery]] = asyncio.Queue(
            maxsize=depth
        )
        self._task: asyncio.Task[None] | None = None

    async def push(self, events: Sequence[EventT[Any]], delivery: BatchDelivery) -> None:
        """Hand over a processed batch; waits while ``depth`` batches are still in flight."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._complete_in_order())
        await self._queue.put((events, delivery))

    async def _complete_in_order(self) -> None:
        while True:
            events, delivery = await self._queue.get()
            try:
                await delivery.complete()
                for event in events:
                    await self._stream.ack(event)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.exception("%s: completing a batch failed", self._what)
                stop_without_commit(f"{self._what} batch completion failed: {exc!r}")
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every batch handed over is delivered and acknowledged."""
        if self._task is not None:
            await self._queue.join()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def run_agent(
    stream: StreamT[Any],
    what: str,
    process: Callable[[Sequence[EventT[Any]]], Awaitable[BatchDelivery]],
    batch_max: int,
    linger_s: float,
    gap_s: float,
    depth: int = 2,
) -> None:
    """One batched agent: take what is ready, process it, let it complete in the background.

    When the agent stops (shutdown, rebalance), the batches in flight are delivered and
    acknowledged before it returns, so faust's commit on revocation includes them."""
    in_flight = InFlight(stream, what, depth)
    try:
        async for events in take_ready(stream, batch_max, linger_s, gap_s):
            delivery = await run_batch(functools.partial(process, events), what)
            await in_flight.push(events, delivery)
    finally:
        try:
            await asyncio.shield(in_flight.drain())
        finally:
            in_flight.close()


class StatsCounter:
    """The durable outcome counts (``stats`` rows) of one agent, counted in memory over a batch
    (each row parsed once, written once by ``stage``), with the rule of ``_counted`` in
    ``streams.pipeline``: a record at or below the row's watermark was counted before a crash
    and is not counted again, and the row is written again all the same so that its
    changelog has it (docs/design.md, crash windows)."""

    def __init__(self, stats: BatchedTable) -> None:
        self._stats = stats
        self._rows: dict[tuple[int, bytes], dict[str, int]] = {}

    def count(self, partition: int, key: str, offset: int, counters: tuple[str, ...]) -> None:
        slot = (partition, key.encode())
        row = self._rows.get(slot)
        if row is None:
            raw = self._stats.get(*slot)
            row = orjson.loads(raw) if raw is not None else {"watermark": -1}
            self._rows[slot] = row
        if offset <= row["watermark"]:
            return
        row["watermark"] = offset
        for name in counters:
            row[name] = row.get(name, 0) + 1

    def stage(self) -> BatchedTable:
        """Put the batch's rows in the table's record cache; the table, for ``flush``."""
        for (partition, key), row in self._rows.items():
            self._stats.put(partition, key, orjson.dumps(row))
        self._rows.clear()
        return self._stats


DELTA_PACK_MIN_ROWS = 2  # a partition with a single row gets a plain record keyed by it


def delta_sends(
    coalesced: Mapping[tuple[str, str], list[dict[str, Any]]],
    partition_count: Callable[[str], int | None],
) -> list[Send]:
    """A batch's coalesced deltas as records: per table and partition, the rows going there
    in one record (a pack, keyed by ``pack_key``, sent to that partition explicitly: the
    partition the row's own key gives, so the table agent that owns the row gets it, and its
    changelog row lands where REST routing looks); one row alone, or a topic whose partition
    count is not known yet, keeps its plain record keyed by the row."""
    by_partition: dict[tuple[str, int | None], list[tuple[str, list[dict[str, Any]]]]] = {}
    for (table_name, key), items in coalesced.items():
        topic = delta_topic(table_name)
        count = partition_count(topic)
        partition = partition_for(key.encode(), count) if count else None
        by_partition.setdefault((topic, partition), []).append((key, items))
    sends: list[Send] = []
    for (topic, partition), rows in by_partition.items():
        if partition is None or len(rows) < DELTA_PACK_MIN_ROWS:
            sends.extend(
                Send(topic, key.encode(), orjson.dumps({"deltas": items})) for key, items in rows
            )
            continue
        # Each row serialised once; packs cut at PACK_BYTES_MAX (a row over it goes alone).
        encoded = [orjson.dumps([key, items]) for key, items in rows]
        group: list[bytes] = []
        size = 0
        for part in encoded:
            if group and size + len(part) > PACK_BYTES_MAX:
                sends.append(_delta_pack(topic, partition, group))
                group, size = [], 0
            group.append(part)
            size += len(part) + 1
        sends.append(_delta_pack(topic, partition, group))
    return sends


def _delta_pack(topic: str, partition: int, rows: list[bytes]) -> Send:
    return Send(topic, pack_key(), b'{"rows":[' + b",".join(rows) + b"]}", partition=partition)


def register_batched_agents(
    *,
    app: Any,
    settings: Settings,
    tables: dict[str, Any],
    topics: dict[str, Any],
    contract_topic_of: dict[str, str],
    decoder: Decoder,
    encoder: Encoder,
    chart: ChartOfAccounts,
    metrics: Metrics,
    prefetch_schema: Callable[[bytes | None], Awaitable[None]],
    count_outcome: CountOutcome,
    headers_as_bytes: Callable[[Any], dict[str, bytes]],
    record_limits: Mapping[str, int],
) -> None:
    """The agents of the batched runtime (ingest, posting, one per delta table);
    ``record_limits``: the largest record each contract topic takes, by contract name."""
    # Each agent gets its own record caches: agents run concurrently, and one agent's flush
    # must never send another's rows halfway through that one's batch.
    batch_max = settings.batch_max
    linger = settings.batch_linger_s
    gap = settings.batch_gap_s

    partition_counts: dict[str, int] = {}

    def outbox() -> Outbox:
        return Outbox(app.producer, settings, metrics, partition_counts, record_limits)

    async def seal(box: Outbox, *written: BatchedTable) -> BatchDelivery:
        """The batch's table rows written and their changelog records sent; what is left is
        waiting for its deliveries (``BatchDelivery.complete``)."""
        changelogs: list[tuple[BatchedTable, list[asyncio.Future[Any]]]] = []
        for table in written:
            futures = await table.flush(app.producer)
            box.add_futures(f"{table.name}-changelog", futures)
            changelogs.append((table, futures))
        return BatchDelivery(box, changelogs)

    ingest_stage = Ingest(decoder, chart)
    # Metric children resolved once (a labels() look-up per record costs a lock and a dict).
    ingest_seconds = metrics.processing_seconds.labels("ingest")
    posting_seconds = metrics.processing_seconds.labels("posting")
    consumed_of = functools.cache(metrics.events_consumed.labels)

    async def ingest_batch(events: Sequence[EventT[Any]], stats: StatsCounter) -> BatchDelivery:
        box = outbox()
        for event in events:
            message = event.message
            delivery_audit.processed(message)
            contract = contract_topic_of[message.topic]
            started = time.perf_counter()
            position = SourcePosition(
                contract,
                message.partition,
                message.offset,
                int(message.timestamp * 1000) if message.timestamp else None,
            )
            consumed_of(contract).inc()
            attempts = processing_attempt(headers_as_bytes(message.headers))
            now = datetime.now(UTC)
            await prefetch_schema(message.value)
            try:
                result = ingest_stage.process(
                    contract, message.key, message.value, position, now, attempts=attempts
                )
            except Exception as exc:
                result = processing_error(
                    exc,
                    key=message.key,
                    value=message.value,
                    source=position,
                    now=now,
                    event_id=None,
                    attempts=attempts,
                )
            refused = await send_or_dead_letter(
                box,
                result.sends,
                key=message.key,
                value=message.value,
                source=position,
                event_id=result.event_id,
                attempts=attempts,
            )
            if refused is not None:
                result = refused
            stats.count(
                message.partition,
                stats_key_ingest(contract, message.partition),
                message.offset,
                ingest_counters(result.outcome),
            )
            count_outcome(result, contract)
            ingest_seconds.observe(time.perf_counter() - started)
        return await seal(box, stats.stage())

    async def ingest_agent(stream: StreamT[Any]) -> None:
        stats = StatsCounter(BatchedTable(tables["stats"]))
        await run_agent(
            stream, "ingest", functools.partial(ingest_batch, stats=stats), batch_max, linger, gap
        )

    # One ingest agent for every source topic and the commands topic: one batch carries what
    # arrived on any of them (six agents made six small batches, each with its own stats rows
    # and deliveries to wait for).
    ingest_names = [
        name for topic in (*SOURCE_TOPICS, COMMANDS_TOPIC) for name in topics[topic].topics
    ]
    ingest_topic = app.topic(
        *ingest_names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    app.agent(ingest_topic, name="ingest", concurrency=1)(ingest_agent)

    posting_stage = Posting(decoder, encoder, chart, coalesce_deltas=True)
    inject_fault_on = (
        settings.fault_inject_event_id.encode() if settings.fault_inject_event_id else None
    )
    if inject_fault_on is not None:
        log.warning("FAULT INJECTION: the posting stage raises on event id %s", inject_fault_on)

    async def posting_batch(
        events: Sequence[EventT[Any]], processed: BatchedTable, stats: StatsCounter
    ) -> BatchDelivery:
        box = outbox()
        coalesced: dict[tuple[str, str], list[dict[str, Any]]] = {}
        posted_timestamps: list[datetime] = []
        published_ms: list[int] = []
        for event in events:
            message = event.message
            delivery_audit.processed(message)
            started = time.perf_counter()
            record = by_id_record(message, headers_as_bytes(message.headers))
            if (wait_s := record.park_wait_s(time.time())) > 0:
                await asyncio.sleep(wait_s)
            await prefetch_schema(message.value)
            partition = message.partition

            def get_processed(event_id: str, partition: int = partition) -> bytes | None:
                return processed.get(partition, event_id.encode())

            now = datetime.now(UTC)
            try:
                if inject_fault_on is not None and message.key == inject_fault_on:
                    raise InjectedFaultError(f"fault injected on event id {inject_fault_on!r}")
                result = posting_stage.process(record, get_processed, now)
            except Exception as exc:
                result = processing_error(
                    exc,
                    key=record.original_key,
                    value=record.value,
                    source=record.source,
                    now=now,
                    event_id=None,
                    attempts=record.attempts,
                )
            refused = await send_or_dead_letter(
                box,
                result.sends,
                key=record.original_key,
                value=record.value,
                source=record.source,
                event_id=result.event_id,
                attempts=record.attempts,
            )
            if refused is not None:
                result = refused
            else:
                for delta, position, event_id in result.deltas:
                    coalesced.setdefault((delta.table, delta.key), []).append(
                        {
                            "delta": delta_to_json_dict(delta),
                            "position": list(position),
                            "event_id": event_id,
                        }
                    )
                for table_name, key, value in result.table_writes:
                    assert table_name == "processed", table_name
                    processed.put(partition, key.encode(), value)
            stats.count(
                partition,
                stats_key_posting(partition),
                message.offset,
                posting_counters(result.outcome),
            )
            count_outcome(result, record.source.topic)
            if result.outcome == "posted":
                if result.event_timestamp is not None:
                    posted_timestamps.append(result.event_timestamp)
                if record.source.timestamp_ms is not None:
                    published_ms.append(record.source.timestamp_ms)
            posting_seconds.observe(time.perf_counter() - started)
        counts = box.partition_count if settings.packed_records else (lambda topic: None)
        for send in delta_sends(coalesced, counts):
            await box.send(send)
        delivery = await seal(box, processed, stats.stage())

        def observe_latency() -> None:
            delivered_at = time.time()
            for timestamp in posted_timestamps:
                metrics.event_to_posting_seconds.observe(
                    max(0.0, delivered_at - timestamp.timestamp())
                )
            for stamp_ms in published_ms:
                metrics.record_to_posting_seconds.observe(max(0.0, delivered_at - stamp_ms / 1000))

        delivery.after = observe_latency
        return delivery

    async def posting_agent(stream: StreamT[Any]) -> None:
        processed = BatchedTable(tables["processed"], packed=settings.packed_records)
        stats = StatsCounter(BatchedTable(tables["stats"]))
        await run_agent(
            stream,
            "posting",
            functools.partial(posting_batch, processed=processed, stats=stats),
            batch_max,
            linger,
            gap,
        )

    app.agent(topics[BY_EVENT_ID_TOPIC], name="posting", concurrency=1)(posting_agent)

    for table_name in DELTA_TABLES:
        table_agent = make_table_agent(
            table_name,
            table=BatchedTable(tables[table_name]),
            encoder=encoder,
            chart=chart,
            metrics=metrics,
            outbox=outbox,
            seal=seal,
            batch_max=batch_max,
            linger=linger,
            gap=gap,
        )
        app.agent(topics[delta_topic(table_name)], name=f"table-{table_name}", concurrency=1)(
            table_agent
        )


def make_table_agent(
    table_name: str,
    *,
    table: BatchedTable,
    encoder: Encoder,
    chart: ChartOfAccounts,
    metrics: Metrics,
    outbox: Callable[[], Outbox],
    seal: Callable[..., Awaitable[BatchDelivery]],
    batch_max: int,
    linger: float,
    gap: float,
) -> Callable[[StreamT[Any]], Awaitable[None]]:
    """One table's agent: its delta records in batches, each row parsed once and written once."""

    async def table_batch(events: Sequence[EventT[Any]]) -> BatchDelivery:
        box = outbox()
        rows: dict[tuple[int, bytes], reducers.Row] = {}
        for event in events:
            message = event.message
            delivery_audit.processed(message)
            started = time.perf_counter()
            assert message.key is not None and message.value is not None
            body = orjson.loads(message.value)
            if is_pack(message.key):
                # The rows of one partition and batch in one record (``delta_sends``).
                for key, items in body["rows"]:
                    await apply_items(box, rows, (message.partition, key.encode()), items)
            else:
                # One record per delta (the classic runtime) or per row and batch.
                items = body.get("deltas", [body])
                await apply_items(box, rows, (message.partition, message.key), items)
            metrics.processing_seconds.labels(f"table_{table_name}").observe(
                time.perf_counter() - started
            )
        for (partition, key), row in rows.items():
            table.put(partition, key, orjson.dumps(reducers.row_to_json_dict(row)))
        return await seal(box, table)

    async def apply_items(
        box: Outbox,
        rows: dict[tuple[int, bytes], reducers.Row],
        slot: tuple[int, bytes],
        items: Sequence[Mapping[str, Any]],
    ) -> None:
        """One row's deltas, in order, through the reducer's guard; its alerts sent."""
        row = rows.get(slot)
        if row is None:
            raw = table.get(*slot)
            row = (
                reducers.row_from_json_dict(table_name, orjson.loads(raw))
                if raw is not None
                else reducers.empty_row(table_name)
            )
        for item in items:
            partition, offset, index = item["position"]
            outcome = reducers.apply(
                row,
                delta_from_json_dict(item["delta"]),
                (partition, offset, index),
                chart,
                source_event_id=item["event_id"],
            )
            if not outcome.applied:
                metrics.deltas_skipped.labels(table_name).inc()
                continue
            row = outcome.row
            metrics.deltas_applied.labels(table_name).inc()
            for alert in outcome.alerts:
                metrics.alerts.labels(alert.alert_type).inc()
                await box.send(
                    Send(
                        ALERTS_TOPIC,
                        alert.subject.encode(),
                        encoder.encode(reducers.alert_to_avro_dict(alert)),
                    )
                )
        # Written even when every delta was skipped: a replay after a crash that lost
        # the row's changelog record must put it on the changelog again.
        rows[slot] = row

    async def table_agent(stream: StreamT[Any]) -> None:
        await run_agent(stream, f"table-{table_name}", table_batch, batch_max, linger, gap)

    return table_agent
