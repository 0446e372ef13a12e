"""The faust application: topics, tables and thin agents that carry out ``streams.pipeline``.

Built by ``build_hub(...)`` when the worker starts (never at import time). Each agent runs with
concurrency 1: a table written by two concurrent actors can lose updates (faust-streaming #606),
and per-partition order is what makes the position guards of the reducers sound.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from faust.sensors.monitor import Monitor
from faust.types import EventT, StreamT, TableT, TopicT

from errors import RegistryUnavailableError
from ledger.chart import ChartOfAccounts
from schemas.codec import Decoder, Encoder
from settings import (
    ALERTS_TOPIC,
    BY_EVENT_ID_TOPIC,
    COMMANDS_TOPIC,
    DELTA_TABLES,
    DLQ_TOPIC,
    LEDGER_TOPIC,
    SOURCE_TOPICS,
    Settings,
    delta_topic,
)
from streams import diagnostics, fast_recovery
from streams.admin import RECORD_BYTES_MAX
from streams.batched import register_batched_agents
from streams.deadletter import SourcePosition, processing_attempt
from streams.effects import Outcome, Send, StageResult
from streams.faust_patches import commit_guard, delivery_audit
from streams.faust_patches.quiet_monitor import QuietMonitor
from streams.metrics import Metrics
from streams.pipeline import (
    Ingest,
    count_ingest,
    count_posting,
    stats_key_ingest,
    stats_key_posting,
)
from streams.posting import Posting
from streams.resilience import Backoff
from streams.stage_records import by_id_record
from streams.table_agents import declare_tables, register_table_agents, register_table_gauges
from tables.entries_index import EntriesIndex

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transient failures (producer errors) back off exponentially, capped, with full jitter so that
# several workers do not hammer a recovering broker in step.
PRODUCER_BACKOFF = Backoff(initial_s=0.2, maximum_s=10.0)


def headers_as_bytes(headers: Any) -> dict[str, bytes]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        str(key): value if isinstance(value, bytes) else str(value).encode() for key, value in items
    }


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


@dataclass
class Hub:
    settings: Settings
    app: faust.App
    metrics: Metrics
    tables: dict[str, TableT[Any, Any]]
    topics: dict[str, TopicT]
    contract_topic_of: dict[str, str]
    decoder: Decoder
    encoder: Encoder
    prefetch_schema: Callable[[bytes | None], Awaitable[None]]
    started_at: float = field(default_factory=time.time)
    # The batched runtime's local copy of the ledger topic by entry id (None: the classic
    # runtime's routed ``entries`` table answers).
    entries_index: EntriesIndex | None = None

    def topic(self, contract_name: str) -> TopicT:
        return self.topics[contract_name]


def build_hub(
    settings: Settings,
    *,
    chart: ChartOfAccounts,
    decoder: Decoder,
    encoder: Encoder,
    prefetch_schema: Callable[[bytes | None], Awaitable[None]],
    metrics: Metrics,
    record_limits: Mapping[str, int] | None = None,
) -> Hub:
    """Wire topics, tables and agents. ``prefetch_schema`` makes sure the writer schema of a
    value is in the decoder's cache (asking the registry off the event loop, with retries)."""
    commit_guard.install()  # faust 0.15.3 advances committed offsets after a failed commit
    data_dir = settings.data_dir / settings.app_id
    data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap),
        store="rocksdb://",
        # One folder per app id: tables of another deployment in the same FIN_DATA_DIR must never
        # be taken for ours (their persisted changelog offsets would not match our changelogs).
        datadir=str(data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.web_url,
        topic_partitions=settings.partitions,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=settings.producer_batch_bytes,
        # Room for a forwarded or dead-lettered source record of the broker's largest size plus
        # FIN's headers (the topics that carry them accept as much: streams/admin.py).
        producer_max_request_size=RECORD_BYTES_MAX + 64 * 1024,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        autodiscover=False,
        # faust's Monitor keeps per-record statistics that only its (disabled) web stats read.
        Monitor=Monitor if settings.faust_monitor else QuietMonitor,
        key_serializer="raw",
        value_serializer="raw",
    )
    # faust's resume after its seek dropped records already delivered to the agents (a hole).
    commit_guard.keep_queued_records_on_resume(
        app.flow_control,
        lambda: app.tables.changelog_queue,  # type: ignore[attr-defined]
    )
    delivery_audit.install(app, enabled=settings.delivery_audit)
    if settings.fast_recovery:  # tables restored in bulk, not per record (docs/design.md)
        fast_recovery.install(
            app, bootstrap=settings.kafka_bootstrap, fetch_bytes=settings.recovery_fetch_bytes
        )

    def raw_topic(name: str, *, internal: bool) -> TopicT:
        return app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            internal=internal,
        )

    contract_names = (
        *SOURCE_TOPICS,
        COMMANDS_TOPIC,
        LEDGER_TOPIC,
        ALERTS_TOPIC,
        DLQ_TOPIC,
    )
    topics: dict[str, TopicT] = {name: raw_topic(name, internal=False) for name in contract_names}
    topics[BY_EVENT_ID_TOPIC] = raw_topic(BY_EVENT_ID_TOPIC, internal=True)
    for table in DELTA_TABLES:
        topics[delta_topic(table)] = raw_topic(delta_topic(table), internal=True)
    contract_topic_of = {settings.topic(name): name for name in topics}
    if settings.processing_guarantee == "at_least_once":
        # FIN writes these without transactions: an offset never acknowledged is a record.
        commit_guard.declare_marker_free(
            settings.topic(name)
            for name in (BY_EVENT_ID_TOPIC, LEDGER_TOPIC, *map(delta_topic, DELTA_TABLES))
        )

    tables = declare_tables(app, settings)
    hub = Hub(
        settings, app, metrics, tables, topics, contract_topic_of, decoder, encoder, prefetch_schema
    )

    async def send_all(sends: Iterable[Send]) -> None:
        for send in sends:
            delivery = await retry(
                lambda send=send: topics[send.topic].send(  # type: ignore[misc]
                    key=send.key, value=send.value, headers=list(send.headers) or None
                ),
                what="producer",
                metrics=metrics,
            )
            if isinstance(delivery, asyncio.Future):
                delivery.add_done_callback(functools.partial(report_failed_delivery, send, metrics))

    def write_tables(result: StageResult) -> None:
        for table_name, key, value in result.table_writes:
            tables[table_name][key.encode()] = value

    ingest_stage = Ingest(decoder, chart)

    async def ingest_agent(stream: StreamT[Any]) -> None:
        event: EventT[Any]
        async for event in stream.events():
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
            metrics.events_consumed.labels(contract).inc()
            await prefetch_schema(message.value)
            result = ingest_stage.process(
                contract,
                message.key,
                message.value,
                position,
                datetime.now(UTC),
                attempts=processing_attempt(headers_as_bytes(message.headers)),
            )
            await send_all(result.sends)
            count_durably(
                stats_key_ingest(contract, message.partition),
                message.offset,
                count_ingest,
                result.outcome,
            )
            count_outcome(result, contract)
            metrics.processing_seconds.labels("ingest").observe(time.perf_counter() - started)

    stats = tables["stats"]

    def count_durably(
        key: str,
        offset: int,
        counter: Callable[[bytes | None, int, str], bytes | None],
        outcome: str,
    ) -> None:
        current = stats.get(key.encode())
        updated = counter(current if isinstance(current, bytes) else None, offset, outcome)
        if updated is not None:
            stats[key.encode()] = updated
        elif isinstance(current, bytes):
            # Counted before a crash: write the row again so its changelog has it (a kill -9
            # can lose the changelog record of a row that survived locally).
            stats[key.encode()] = current

    def count_outcome(result: StageResult, topic: str) -> None:
        if result.outcome == Outcome.REJECTED:
            assert result.reason is not None
            metrics.events_rejected.labels(topic, result.reason).inc()
            metrics.dead_letters.labels(result.reason).inc()
        elif result.outcome == Outcome.POSTED:
            metrics.events_posted.labels(topic, result.event_type or "").inc()
        elif result.outcome == Outcome.DUPLICATE:
            metrics.events_duplicate.labels(topic, result.event_type or "").inc()
        elif result.outcome == Outcome.PARKED:
            metrics.parked.inc()
        elif result.outcome in (Outcome.REPLAY, Outcome.REEMIT):
            metrics.replays.labels("posting").inc()

    if settings.runtime == "batched":
        hub.entries_index = index = EntriesIndex(
            settings.kafka_bootstrap,
            settings.topic(LEDGER_TOPIC),
            data_dir / "entries-index",
        )

        @app.task  # type: ignore[untyped-decorator]
        async def start_entries_index() -> None:
            index.start()

        register_batched_agents(
            app=app,
            settings=settings,
            tables=tables,
            topics=topics,
            contract_topic_of=contract_topic_of,
            decoder=decoder,
            encoder=encoder,
            chart=chart,
            metrics=metrics,
            prefetch_schema=prefetch_schema,
            count_outcome=count_outcome,
            headers_as_bytes=headers_as_bytes,
            record_limits=record_limits or {},
        )
        register_table_gauges(app, tables=tables, metrics=metrics)
        register_diagnostics(app)
        return hub

    for name in (*SOURCE_TOPICS, COMMANDS_TOPIC):
        app.agent(topics[name], name=f"ingest-{name}", concurrency=1)(ingest_agent)

    posting_stage = Posting(decoder, encoder, chart)
    processed = tables["processed"]

    def get_processed(event_id: str) -> bytes | None:
        value = processed.get(event_id.encode())
        return value if isinstance(value, bytes) else None

    async def posting_agent(stream: StreamT[Any]) -> None:
        event: EventT[Any]
        async for event in stream.events():
            message = event.message
            delivery_audit.processed(message)
            started = time.perf_counter()
            record = by_id_record(message, headers_as_bytes(message.headers))
            if (wait_s := record.park_wait_s(time.time())) > 0:
                await asyncio.sleep(wait_s)
            await prefetch_schema(message.value)
            result = posting_stage.process(record, get_processed, datetime.now(UTC))
            await send_all(result.sends)
            write_tables(result)
            count_durably(
                stats_key_posting(message.partition), message.offset, count_posting, result.outcome
            )
            count_outcome(result, record.source.topic)
            if result.outcome == Outcome.POSTED and result.event_timestamp is not None:
                metrics.event_to_posting_seconds.observe(
                    max(0.0, time.time() - result.event_timestamp.timestamp())
                )
            if result.outcome == Outcome.POSTED and record.source.timestamp_ms is not None:
                # Handed to the producer here (the classic runtime does not await delivery).
                metrics.record_to_posting_seconds.observe(
                    max(0.0, time.time() - record.source.timestamp_ms / 1000)
                )
            metrics.processing_seconds.labels("posting").observe(time.perf_counter() - started)

    app.agent(topics[BY_EVENT_ID_TOPIC], name="posting", concurrency=1)(posting_agent)

    register_table_agents(
        app,
        tables=tables,
        topics=topics,
        encoder=encoder,
        chart=chart,
        metrics=metrics,
        send_all=send_all,
    )

    entries = tables["entries"]

    async def entries_agent(stream: StreamT[Any]) -> None:
        # Journal entries keyed by entry id, so GET /ledger/entries/{id} can be routed.
        event: EventT[Any]
        async for event in stream.events():
            delivery_audit.processed(event.message)
            entries[event.message.key] = event.message.value

    app.agent(topics[LEDGER_TOPIC], name="entries", concurrency=1)(entries_agent)

    register_table_gauges(app, tables=tables, metrics=metrics)
    register_diagnostics(app)
    return hub


def register_diagnostics(app: faust.App) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def task_dump_on_sigusr1() -> None:
        # `kill -USR1 <pid>`: where every task waits and faust's view of every partition.
        diagnostics.dump_on_sigusr1(app.consumer)


def report_failed_delivery(send: Send, metrics: Metrics, delivery: asyncio.Future[Any]) -> None:
    """Log and count a record the producer accepted but did not deliver.

    FIN awaits the hand-over to the producer, not the broker's acknowledgement (one round trip
    per record would cap throughput); faust flushes the producer before each offset commit but
    does not fail the commit for a record that could not be delivered. Such a record is lost for
    its consumers unless the source record is read again, so it is reported loudly."""
    if delivery.cancelled():
        failure: BaseException | None = asyncio.CancelledError()
    else:
        failure = delivery.exception()
    if failure is None:
        return
    metrics.send_failures.labels(send.topic).inc()
    log.error(
        "delivery to %s failed (key %r): %r; the source record of this send may be committed "
        "without it",
        send.topic,
        send.key,
        failure,
    )


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    metrics: Metrics,
    attempts_max: int | None = None,
) -> T:
    """Run ``operation`` until it succeeds, backing off exponentially with full jitter.

    Transient failures are never dead-lettered: the record waits, and so does its partition.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except (RegistryUnavailableError, ConnectionError, TimeoutError, OSError) as exc:
            attempt += 1
            if attempts_max is not None and attempt >= attempts_max:
                raise
            delay = PRODUCER_BACKOFF.delay_s(attempt)
            metrics.retries.labels(what).inc()
            log.warning("%s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
