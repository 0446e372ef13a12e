"""The batched runtime (``FIN_RUNTIME=batched``): the same stages as ``streams/hub.py``, per batch.

Why: every faust pass costs ~160 µs per record to consume, a send through faust ~285 µs and a
table write with its changelog ~330 µs (measured, ../shared/ARCHITECTURE.md "Dataflow"), while
a bare producer send costs ~20 µs. So here:

- agents take records in batches of what is ready (``streams.take.take_ready``);
- every output record of a batch goes straight to the producer (``app.producer.send``), and the
  batch is acknowledged only after every one of them was delivered (awaited futures), so no
  offset is committed past a record whose outputs are not on the broker;
- table rows go through ``tables.store.BatchedTable``: each row written once per batch, one
  changelog record per row and batch (``processed``: packed, a few records per partition);
- the posting stage coalesces its deltas per row and batch, each row's deltas in order (each
  with its position, so the table's guard still applies them exactly once, whatever the batch
  boundaries after a crash), and sends them packed, one record per table and partition
  (``delta_sends``);
- the pieces: ``streams/outbox.py`` (outputs to the producer, refusals dead-lettered),
  ``streams/inflight.py`` (batches delivered in the background, acknowledged in order), this
  module (``BatchedRuntime``: one method per agent's batch; ``register_batched_agents``);
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
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.types import EventT, StreamT

from errors import FinError
from ledger.chart import ChartOfAccounts
from schemas.codec import Decoder, Encoder
from settings import (
    BY_EVENT_ID_TOPIC,
    COMMANDS_TOPIC,
    DELTA_TABLES,
    SOURCE_TOPICS,
    Settings,
    delta_topic,
)
from streams.deadletter import processing_attempt
from streams.delta_tables import make_tables_agent
from streams.effects import Send, StageResult
from streams.faust_patches import delivery_audit
from streams.handoff import Handoff, is_handed
from streams.inflight import BatchDelivery, run_agent
from streams.metrics import Metrics
from streams.outbox import Outbox, send_or_dead_letter
from streams.partitioner import partition_for
from streams.pipeline import (
    Ingest,
    ingest_counters,
    posting_counters,
    stats_key_ingest,
    stats_key_posting,
)
from streams.posting import Posting
from streams.rdkafka_sends import batch_producer
from streams.stage_records import by_id_record, processing_error, source_position
from streams.stats_counter import StatsCounter
from streams.validated import ValidatedEvents
from tables.store import PACK_BYTES_MAX, BatchedTable, pack_key

log = logging.getLogger(__name__)

CountOutcome = Callable[[StageResult, str], None]


class InjectedFaultError(FinError):
    """Raised on purpose (FIN_FAULT_INJECT_EVENT_ID), to prove a defect loses no record."""


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


@dataclass
class BatchedRuntime:
    """What the batched agents share, built once by ``register_batched_agents``; each agent's
    batch is one method. Each agent gets its own record caches (``BatchedTable``): agents run
    concurrently, and one agent's flush must never send another's rows halfway through that
    one's batch."""

    app: Any
    settings: Settings
    tables: dict[str, Any]
    contract_topic_of: dict[str, str]
    decoder: Decoder
    encoder: Encoder
    chart: ChartOfAccounts
    metrics: Metrics
    prefetch_schema: Callable[[bytes | None], Awaitable[None]]
    count_outcome: CountOutcome
    headers_as_bytes: Callable[[Any], dict[str, bytes]]
    record_limits: Mapping[str, int]
    partition_counts: dict[str, int] = field(default_factory=dict)
    # By-event-id records handed from the ingest agent to the posting agent once delivered
    # (streams/handoff.py; FIN_LOCAL_HANDOFF); None: the posting agent only fetches them.
    handoff: Handoff | None = None
    # Where output records go: faust's producer, or librdkafka's (FIN_LIBRDKAFKA_SENDS), made
    # on first use in the worker's running loop (``sends``).
    _sends: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        # The posting stage takes what the ingest stage read from the same bytes, when both
        # ran here, instead of decoding them again (streams/validated.py).
        validated = ValidatedEvents()
        self.ingest_stage = Ingest(self.decoder, self.chart, validated=validated)
        self.posting_stage = Posting(
            self.decoder, self.encoder, self.chart, coalesce_deltas=True, validated=validated
        )
        # Metric children resolved once (a labels() look-up per record costs a lock and a dict).
        self.ingest_seconds = self.metrics.processing_seconds.labels("ingest")
        self.posting_seconds = self.metrics.processing_seconds.labels("posting")
        self.consumed_of = functools.cache(self.metrics.events_consumed.labels)
        fault = self.settings.fault_inject_event_id
        self.inject_fault_on = fault.encode() if fault else None
        if self.inject_fault_on is not None:
            log.warning("FAULT INJECTION: the posting stage raises on event id %s", fault)

    def entries_busy(self) -> bool:
        """Delivered by-event-id records wait to be posted (FIN_TABLES_GIVE_WAY_MS): the entries'
        path has work the tables agent should not hold up. (Records queued for an agent's
        reader were tried as a signal too, and measured no better: docs/design.md, "Latency".)"""
        return self.handoff is not None and len(self.handoff) > 0

    def sends(self) -> Any:
        """The producer the batches' records go to (see ``_sends``)."""
        if self._sends is None:
            self._sends = batch_producer(self.app, self.settings)
        return self._sends

    def outbox(self) -> Outbox:
        return Outbox(
            self.sends(),
            self.settings,
            self.metrics,
            self.partition_counts,
            self.record_limits,
            metadata=self.app.producer,
        )

    async def seal(self, box: Outbox, *written: BatchedTable) -> BatchDelivery:
        """The batch's table rows written and their changelog records sent; what is left is
        waiting for its deliveries (``BatchDelivery.complete``)."""
        await box.flush()
        changelogs: list[tuple[BatchedTable, list[asyncio.Future[Any]]]] = []
        for table in written:
            keys: list[bytes] = []
            futures = await table.flush(self.sends(), keys)
            box.add_futures(f"{table.name}-changelog", zip(keys, futures, strict=True))
            changelogs.append((table, futures))
        return BatchDelivery(box, changelogs)

    async def run(
        self, stream: StreamT[Any], what: str, process: Any, side: Handoff | None = None
    ) -> None:
        settings = self.settings
        await run_agent(
            stream,
            what,
            process,
            settings.batch_max,
            settings.batch_linger_s,
            settings.batch_gap_s,
            behind_records=settings.batch_behind_records,
            side=side,
        )

    async def ingest_batch(
        self, events: Sequence[EventT[Any]], stats: StatsCounter
    ) -> BatchDelivery:
        box = self.outbox()
        for event in events:
            message = event.message
            delivery_audit.processed(message)
            contract = self.contract_topic_of[message.topic]
            started = time.perf_counter()
            position = source_position(contract, message)
            self.consumed_of(contract).inc()
            attempts = processing_attempt(self.headers_as_bytes(message.headers))
            now = datetime.now(UTC)
            await self.prefetch_schema(message.value)
            try:
                result = self.ingest_stage.process(
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
            self.count_outcome(result, contract)
            self.ingest_seconds.observe(time.perf_counter() - started)
        delivery = await self.seal(box, stats.stage())
        handoff = self.handoff
        if handoff is not None:
            delivery.after = lambda: handoff.offer(box.delivered_to(BY_EVENT_ID_TOPIC))
        return delivery

    async def ingest_agent(self, stream: StreamT[Any]) -> None:
        stats = StatsCounter(BatchedTable(self.tables["stats"]))
        await self.run(stream, "ingest", functools.partial(self.ingest_batch, stats=stats))

    async def posting_batch(
        self, events: Sequence[EventT[Any]], processed: BatchedTable, stats: StatsCounter
    ) -> BatchDelivery:
        box = self.outbox()
        coalesced: dict[tuple[str, str], list[dict[str, Any]]] = {}
        posted_timestamps: list[datetime] = []
        published_ms: list[int] = []
        handoff = self.handoff
        for event in events:
            message = event.message
            handed = is_handed(event)
            if not handed:
                delivery_audit.processed(message)
            if handoff is not None and not handoff.claim(event):
                continue  # processed already (handed over), or to come by fetch
            started = time.perf_counter()
            record = by_id_record(message, self.headers_as_bytes(message.headers))
            if (wait_s := record.park_wait_s(time.time())) > 0:
                await asyncio.sleep(wait_s)
            await self.prefetch_schema(message.value)
            partition = message.partition

            def get_processed(event_id: str, partition: int = partition) -> bytes | None:
                return processed.get(partition, event_id.encode())

            now = datetime.now(UTC)
            try:
                if self.inject_fault_on is not None and message.key == self.inject_fault_on:
                    raise InjectedFaultError(f"fault injected on event id {self.inject_fault_on!r}")
                result = self.posting_stage.process(record, get_processed, now)
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
                for delta, position, event_id, delta_json in result.deltas:
                    coalesced.setdefault((delta.table, delta.key), []).append(
                        {
                            "delta": delta_json,
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
            self.count_outcome(result, record.source.topic)
            if result.outcome == "posted":
                if result.event_timestamp is not None:
                    posted_timestamps.append(result.event_timestamp)
                if record.source.timestamp_ms is not None:
                    published_ms.append(record.source.timestamp_ms)
            self.posting_seconds.observe(time.perf_counter() - started)
        counts = box.partition_count if self.settings.packed_records else (lambda topic: None)
        for send in delta_sends(coalesced, counts):
            await box.send(send)
        delivery = await self.seal(box, processed, stats.stage())

        def observe_latency() -> None:
            delivered_at = time.time()
            for timestamp in posted_timestamps:
                self.metrics.event_to_posting_seconds.observe(
                    max(0.0, delivered_at - timestamp.timestamp())
                )
            for stamp_ms in published_ms:
                self.metrics.record_to_posting_seconds.observe(
                    max(0.0, delivered_at - stamp_ms / 1000)
                )

        delivery.after = observe_latency
        return delivery

    async def posting_agent(self, stream: StreamT[Any]) -> None:
        processed = BatchedTable(self.tables["processed"], packed=self.settings.packed_records)
        stats = StatsCounter(BatchedTable(self.tables["stats"]))
        await self.run(
            stream,
            "posting",
            functools.partial(self.posting_batch, processed=processed, stats=stats),
            side=self.handoff,
        )


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
    """The agents of the batched runtime (ingest, posting, and one for the delta tables);
    ``record_limits``: the largest record each contract topic takes, by contract name."""
    runtime = BatchedRuntime(
        app=app,
        settings=settings,
        tables=tables,
        contract_topic_of=contract_topic_of,
        decoder=decoder,
        encoder=encoder,
        chart=chart,
        metrics=metrics,
        prefetch_schema=prefetch_schema,
        count_outcome=count_outcome,
        headers_as_bytes=headers_as_bytes,
        record_limits=record_limits,
    )
    if settings.local_handoff and not settings.bulk_sends:
        # (Bulk sends have one delivery result per producer batch, not per record.)
        runtime.handoff = Handoff(
            app, settings.topic(BY_EVENT_ID_TOPIC), counter=metrics.handoff_records
        )
        runtime.handoff.install()

    # One ingest agent for every source topic and the commands topic: one batch carries what
    # arrived on any of them (six agents made six small batches, each with its own stats rows
    # and deliveries to wait for).
    ingest_names = [
        name for topic in (*SOURCE_TOPICS, COMMANDS_TOPIC) for name in topics[topic].topics
    ]
    ingest_topic = _raw_topics(app, ingest_names, settings)

    async def ingest_agent(stream: StreamT[Any]) -> None:
        await runtime.ingest_agent(stream)

    async def posting_agent(stream: StreamT[Any]) -> None:
        await runtime.posting_agent(stream)

    app.agent(ingest_topic, name="ingest", concurrency=1)(ingest_agent)
    app.agent(topics[BY_EVENT_ID_TOPIC], name="posting", concurrency=1)(posting_agent)
    # One agent for the six deltas topics: a posting batch sends at most one record per table
    # and partition, so six agents made six small batches per posting batch, each with its own
    # linger, flush, deliveries and acknowledgements to wait for.
    table_of = {
        name: table_name
        for table_name in DELTA_TABLES
        for name in topics[delta_topic(table_name)].topics
    }
    deltas_topic = _raw_topics(app, table_of, settings)
    tables_agent = make_tables_agent(
        table_of,
        tables={
            name: BatchedTable(tables[name], chunk_bytes=settings.row_chunk_bytes)
            for name in DELTA_TABLES
        },
        encoder=encoder,
        chart=chart,
        metrics=metrics,
        outbox=runtime.outbox,
        seal=runtime.seal,
        batch_max=settings.batch_max,
        # FIN_TABLES_LINGER_MS: a fixed linger whatever the gaps (the gap is the linger itself).
        linger=settings.tables_linger_s or settings.batch_linger_s,
        gap=settings.tables_linger_s or settings.batch_gap_s,
        behind=0 if settings.tables_linger_s else settings.batch_behind_records,
        give_way_to=runtime.entries_busy if settings.tables_give_way_s > 0 else None,
        give_way_s=settings.tables_give_way_s,
    )
    app.agent(deltas_topic, name="tables", concurrency=1)(tables_agent)


def _raw_topics(app: Any, names: Iterable[str], settings: Settings) -> Any:
    """One faust topic over ``names`` whose records reach the agent as raw bytes."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
