"""The faust application: topics, tables, and the runtime that carries out the stages
(``streams/batched.py`` by default, ``streams/classic.py`` with ``FIN_RUNTIME=classic``).

Built by ``build_hub(...)`` when the worker starts (never at import time). Each agent runs with
concurrency 1: a table written by two concurrent actors can lose updates (faust-streaming #606),
and per-partition order is what makes the position guards of the reducers sound.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.sensors.monitor import Monitor
from faust.types import TableT, TopicT

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
from streams import diagnostics
from streams.admin import RECORD_BYTES_MAX
from streams.batched import register_batched_agents
from streams.classic import ClassicRuntime, count_outcome
from streams.faust_patches import (
    commit_guard,
    consumer_in_loop,
    delivery_audit,
    fast_drain,
    fast_recovery,
    fetch_wait,
    whole_node_produce,
)
from streams.faust_patches.quiet_monitor import QuietMonitor
from streams.metrics import Metrics
from streams.resilience import Backoff
from streams.stage_records import headers_as_bytes
from streams.table_agents import declare_tables, register_table_gauges
from tables.entries_index import EntriesIndex

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transient failures (producer errors) back off exponentially, capped, with full jitter so that
# several workers do not hammer a recovering broker in step.
PRODUCER_BACKOFF = Backoff(initial_s=0.2, maximum_s=10.0)


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


def make_app(settings: Settings, data_dir: Path) -> faust.App:
    """The faust app with FIN's settings and its patches installed (streams/faust_patches/)."""
    commit_guard.install()  # faust 0.15.3 advances committed offsets after a failed commit
    # faust's consumer fetches answered at the first byte: a round per few records (design.md).
    fetch_wait.install(
        max_wait_ms=int(settings.fetch_max_wait_s * 1000), min_bytes=settings.fetch_min_bytes
    )
    # aiokafka sent one produce request per partition batch whose linger ran out (design.md).
    if settings.whole_node_produce:
        whole_node_produce.install()
    else:
        whole_node_produce.uninstall()
    # An experiment: faust's consumer on this loop instead of a thread of its own (design.md).
    consumer_in_loop.install(settings.consumer_in_loop)
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
    # faust's fetcher raced four tasks per record to hand it to the agents (docs/design.md).
    fast_drain.install(enabled=settings.fast_drain)
    delivery_audit.install(app, enabled=settings.delivery_audit)
    if settings.fast_recovery:  # tables restored in bulk, not per record (docs/design.md)
        fast_recovery.install(
            app, bootstrap=settings.kafka_bootstrap, fetch_bytes=settings.recovery_fetch_bytes
        )

    return app


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
    data_dir = settings.data_dir / settings.app_id
    data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = make_app(settings, data_dir)

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
            count_outcome=functools.partial(count_outcome, metrics),
            headers_as_bytes=headers_as_bytes,
            record_limits=record_limits or {},
        )
        register_table_gauges(app, tables=tables, metrics=metrics)
        register_diagnostics(app)
        return hub

    ClassicRuntime(hub, chart).register()
    register_table_gauges(app, tables=tables, metrics=metrics)
    register_diagnostics(app)
    return hub


def register_diagnostics(app: faust.App) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def task_dump_on_sigusr1() -> None:
        # `kill -USR1 <pid>`: where every task waits and faust's view of every partition.
        diagnostics.dump_on_sigusr1(app.consumer)
