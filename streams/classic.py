"""The classic runtime (``FIN_RUNTIME=classic``): one faust pass per record at every stage.

Kept behind the setting as the reference the fault suite was first proven on; the batched
runtime (``streams/batched.py``) is the default. Each agent here takes one record at a time,
sends its outputs through faust's topics (``send_all``, retried on transient errors) and writes
its table rows through faust's own table writes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from faust.types import EventT, StreamT

from errors import RegistryUnavailableError
from ledger.chart import ChartOfAccounts
from settings import BY_EVENT_ID_TOPIC, COMMANDS_TOPIC, LEDGER_TOPIC, SOURCE_TOPICS
from streams.deadletter import processing_attempt
from streams.effects import Outcome, Send, StageResult
from streams.faust_patches import delivery_audit
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
from streams.stage_records import by_id_record, headers_as_bytes, source_position
from streams.table_agents import register_table_agents

if TYPE_CHECKING:
    from streams.hub import Hub

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transient failures (producer errors) back off exponentially, capped, with full jitter so that
# several workers do not hammer a recovering broker in step.
PRODUCER_BACKOFF = Backoff(initial_s=0.2, maximum_s=10.0)

CountOutcome = Callable[[StageResult, str], None]


def count_outcome(metrics: Metrics, result: StageResult, topic: str) -> None:
    """The process-local outcome counters of one record (both runtimes)."""
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


@dataclass
class ClassicRuntime:
    """The classic agents of one hub: ingest per source topic, posting, the table agents and
    the routed ``entries`` table; each record goes through faust's send and table write."""

    hub: Hub
    chart: ChartOfAccounts

    def __post_init__(self) -> None:
        hub = self.hub
        self.ingest_stage = Ingest(hub.decoder, self.chart)
        self.posting_stage = Posting(hub.decoder, hub.encoder, self.chart)

    @property
    def metrics(self) -> Metrics:
        return self.hub.metrics

    def register(self) -> None:
        hub = self.hub
        app, topics = hub.app, hub.topics
        for name in (*SOURCE_TOPICS, COMMANDS_TOPIC):
            app.agent(topics[name], name=f"ingest-{name}", concurrency=1)(self._ingest_agent_fn())
        app.agent(topics[BY_EVENT_ID_TOPIC], name="posting", concurrency=1)(
            self._posting_agent_fn()
        )
        register_table_agents(
            app,
            tables=hub.tables,
            topics=topics,
            encoder=hub.encoder,
            chart=self.chart,
            metrics=self.metrics,
            send_all=self.send_all,
        )
        app.agent(topics[LEDGER_TOPIC], name="entries", concurrency=1)(self._entries_agent_fn())

    # faust names an agent after its function: each agent is a plain function of its own.
    def _ingest_agent_fn(self) -> Callable[[StreamT[Any]], Awaitable[None]]:
        async def ingest_agent(stream: StreamT[Any]) -> None:
            await self.ingest(stream)

        return ingest_agent

    def _posting_agent_fn(self) -> Callable[[StreamT[Any]], Awaitable[None]]:
        async def posting_agent(stream: StreamT[Any]) -> None:
            await self.posting(stream)

        return posting_agent

    def _entries_agent_fn(self) -> Callable[[StreamT[Any]], Awaitable[None]]:
        async def entries_agent(stream: StreamT[Any]) -> None:
            await self.entries(stream)

        return entries_agent

    async def send_all(self, sends: Iterable[Send]) -> None:
        topics, metrics = self.hub.topics, self.metrics
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

    def write_tables(self, result: StageResult) -> None:
        for table_name, key, value in result.table_writes:
            self.hub.tables[table_name][key.encode()] = value

    def count_durably(
        self,
        key: str,
        offset: int,
        counter: Callable[[bytes | None, int, str], bytes | None],
        outcome: str,
    ) -> None:
        stats = self.hub.tables["stats"]
        current = stats.get(key.encode())
        updated = counter(current if isinstance(current, bytes) else None, offset, outcome)
        if updated is not None:
            stats[key.encode()] = updated
        elif isinstance(current, bytes):
            # Counted before a crash: write the row again so its changelog has it (a kill -9
            # can lose the changelog record of a row that survived locally).
            stats[key.encode()] = current

    async def ingest(self, stream: StreamT[Any]) -> None:
        hub, metrics = self.hub, self.metrics
        event: EventT[Any]
        async for event in stream.events():
            message = event.message
            delivery_audit.processed(message)
            contract = hub.contract_topic_of[message.topic]
            started = time.perf_counter()
            position = source_position(contract, message)
            metrics.events_consumed.labels(contract).inc()
            await hub.prefetch_schema(message.value)
            result = self.ingest_stage.process(
                contract,
                message.key,
                message.value,
                position,
                datetime.now(UTC),
                attempts=processing_attempt(headers_as_bytes(message.headers)),
            )
            await self.send_all(result.sends)
            self.count_durably(
                stats_key_ingest(contract, message.partition),
                message.offset,
                count_ingest,
                result.outcome,
            )
            count_outcome(metrics, result, contract)
            metrics.processing_seconds.labels("ingest").observe(time.perf_counter() - started)

    def get_processed(self, event_id: str) -> bytes | None:
        value = self.hub.tables["processed"].get(event_id.encode())
        return value if isinstance(value, bytes) else None

    async def posting(self, stream: StreamT[Any]) -> None:
        hub, metrics = self.hub, self.metrics
        event: EventT[Any]
        async for event in stream.events():
            message = event.message
            delivery_audit.processed(message)
            started = time.perf_counter()
            record = by_id_record(message, headers_as_bytes(message.headers))
            if (wait_s := record.park_wait_s(time.time())) > 0:
                await asyncio.sleep(wait_s)
            await hub.prefetch_schema(message.value)
            result = self.posting_stage.process(record, self.get_processed, datetime.now(UTC))
            await self.send_all(result.sends)
            self.write_tables(result)
            self.count_durably(
                stats_key_posting(message.partition), message.offset, count_posting, result.outcome
            )
            count_outcome(metrics, result, record.source.topic)
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

    async def entries(self, stream: StreamT[Any]) -> None:
        # Journal entries keyed by entry id, so GET /ledger/entries/{id} can be routed.
        entries = self.hub.tables["entries"]
        event: EventT[Any]
        async for event in stream.events():
            delivery_audit.processed(event.message)
            entries[event.message.key] = event.message.value


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
