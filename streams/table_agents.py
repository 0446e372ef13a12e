"""The tables and the agents that write them.

Each delta table is written by one agent (concurrency 1: concurrent writers of a table can lose
updates, faust-streaming #606) consuming a topic partitioned by the table's key. The other tables
are written by the stream that owns their key: ``processed`` (by event id) by the posting agent,
``entries`` (by entry id) by the entries agent, ``stats`` by the stage whose partition it counts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import faust
import orjson
from faust.types import EventT, StreamT, TableT, TopicT

from ledger.chart import ChartOfAccounts
from ledger.reducers import PeriodRow, trial_balance
from schemas.codec import Encoder
from settings import DELTA_TABLES, Settings, delta_topic
from streams.effects import Outcome, Send
from streams.faust_patches import delivery_audit
from streams.metrics import Metrics
from streams.table_stage import TableApply
from tables.store import packed_rows_table, row_count, row_items, row_value

TABLE_NAMES: tuple[str, ...] = ("processed", "entries", "stats", *DELTA_TABLES)
# The batched runtime finds an entry in its copy of the ledger topic (tables/entries_index.py)
# and never writes the entries table: declaring it there only made a changelog to restore.
CLASSIC_ONLY_TABLES = frozenset({"entries"})
TABLE_GAUGES_INTERVAL_S = 30.0


def declare_tables(app: faust.App, settings: Settings) -> dict[str, TableT[Any, Any]]:
    """RocksDB tables (the app's store) with changelogs; raw bytes in, raw bytes out."""
    options: dict[str, Any] = {
        "partitions": settings.partitions,
        "key_type": bytes,
        "value_type": bytes,
    }
    return {
        # ``processed`` may hold packed changelog records (tables/store.py); its table restores
        # both forms, whatever FIN_PACKED_RECORDS says now.
        name: packed_rows_table(app, name, **options)
        if name == "processed"
        else app.Table(name, **options)
        for name in TABLE_NAMES
        if settings.runtime == "classic" or name not in CLASSIC_ONLY_TABLES
    }


def register_table_agents(
    app: faust.App,
    *,
    tables: dict[str, TableT[Any, Any]],
    topics: dict[str, TopicT],
    encoder: Encoder,
    chart: ChartOfAccounts,
    metrics: Metrics,
    send_all: Callable[[Iterable[Send]], Awaitable[None]],
) -> None:
    def make_table_agent(table_name: str) -> Callable[[StreamT[Any]], Awaitable[None]]:
        stage = TableApply(table_name, encoder, chart)
        table = tables[table_name]

        async def table_agent(stream: StreamT[Any]) -> None:
            event: EventT[Any]
            async for event in stream.events():
                message = event.message
                delivery_audit.processed(message)
                started = time.perf_counter()
                assert message.key is not None and message.value is not None, "keyed deltas"
                # A row the batched runtime wrote in chunks reads whole (tables/chunked.py).
                current = row_value(table, message.key)
                result = stage.process(message.value, current)
                if result.outcome == Outcome.APPLIED:
                    await send_all(result.sends)
                    for _, key, value in result.table_writes:
                        table[key.encode()] = value
                    metrics.deltas_applied.labels(table_name).inc()
                    for alert_type in result.alert_types:
                        metrics.alerts.labels(alert_type).inc()
                else:
                    # Applied before (the guard saw its position). The row is written again,
                    # unchanged: faust writes RocksDB at once but the changelog later, so a
                    # kill -9 can leave a row whose changelog record never left; without this a
                    # rebuild from the changelog (wiped disk, partition moved) would go back.
                    if current is not None:
                        table[message.key] = current
                    metrics.deltas_skipped.labels(table_name).inc()
                metrics.processing_seconds.labels(f"table_{table_name}").observe(
                    time.perf_counter() - started
                )

        return table_agent

    for table_name in DELTA_TABLES:
        app.agent(topics[delta_topic(table_name)], name=f"table-{table_name}", concurrency=1)(
            make_table_agent(table_name)
        )


def register_table_gauges(
    app: faust.App, *, tables: dict[str, TableT[Any, Any]], metrics: Metrics
) -> None:
    @app.timer(interval=TABLE_GAUGES_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def table_gauges() -> None:
        # Counting keys walks RocksDB, so it runs now and then, not per event.
        for name, table in tables.items():
            metrics.table_keys.labels(name).set(row_count(table))
        imbalance = Decimal(0)
        for _, raw in row_items(tables["periods"]):
            balance = trial_balance(PeriodRow.from_json_dict(orjson.loads(raw)))
            imbalance += balance.total_debit - balance.total_credit
        # A gauge is a float by nature; the books themselves stay Decimal.
        metrics.trial_balance_imbalance.set(float(imbalance))
