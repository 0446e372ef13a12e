"""The agent of the delta tables (budgets, customers, vendors, periods, projects, products).

It reads the deltas topics (a posting batch's coalesced deltas, packed per partition:
``streams.batched.delta_sends``), applies each row's deltas in order through the reducer's
guard, writes each touched row once per batch and sends the alerts. It is off the journal
entries' path: with ``give_way_to`` it lets the posting of delivered by-event-id records take a
busy event loop first (FIN_TABLES_GIVE_WAY_MS; docs/design.md, "Latency"), and
``fin_table_delta_age_seconds`` says how fresh that leaves the tables.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from faust.types import EventT, StreamT

from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.deltas import delta_from_json_dict
from schemas.codec import Encoder
from settings import ALERTS_TOPIC
from streams.effects import Send
from streams.faust_patches import delivery_audit
from streams.inflight import BatchDelivery, run_agent
from streams.loop_share import DEFAULT_EVERY_S, LoopShare
from streams.metrics import Metrics
from streams.outbox import Outbox
from tables.decoded_rows import DecodedRows
from tables.store import BatchedTable, is_pack

# A tables batch hands the event loop back at least this often: gathered over
# FIN_TABLES_LINGER_MS, one batch is tens of ms of work, which as a single step of the loop
# held the journal entries' path behind it (docs/design.md, "Latency").
YIELD_EVERY_S = DEFAULT_EVERY_S


def make_tables_agent(
    table_of: Mapping[str, str],
    *,
    tables: Mapping[str, BatchedTable],
    encoder: Encoder,
    chart: ChartOfAccounts,
    metrics: Metrics,
    outbox: Callable[[], Outbox],
    seal: Callable[..., Awaitable[BatchDelivery]],
    batch_max: int,
    linger: float,
    gap: float,
    behind: int = 0,
    give_way_to: Callable[[], bool] | None = None,
    give_way_s: float = 0.0,
) -> Callable[[StreamT[Any]], Awaitable[None]]:
    """The agent of the delta tables: their delta records in batches (``table_of``: each deltas
    topic's name -> its table), each row parsed once and written once per batch."""
    seconds_of = {name: metrics.processing_seconds.labels(f"table_{name}") for name in tables}
    decoded: DecodedRows[reducers.Row] = DecodedRows()
    applied_of = {name: metrics.deltas_applied.labels(name) for name in tables}
    skipped_of = {name: metrics.deltas_skipped.labels(name) for name in tables}

    age = metrics.table_delta_age_seconds

    async def tables_batch(events: Sequence[EventT[Any]]) -> BatchDelivery:
        box = outbox()
        rows: dict[tuple[str, int, bytes], reducers.Row] = {}
        written_at: list[float] = []  # the deltas records' Kafka timestamps (seconds)
        loop_share = LoopShare(YIELD_EVERY_S)
        for event in events:
            await loop_share.turn()
            message = event.message
            if message.timestamp:
                written_at.append(float(message.timestamp))
            delivery_audit.processed(message)
            started = time.perf_counter()
            assert message.key is not None and message.value is not None
            table_name = table_of[message.topic]
            body = orjson.loads(message.value)
            if is_pack(message.key):
                # The rows of one partition and batch in one record (``delta_sends``).
                for key, items in body["rows"]:
                    slot = (table_name, message.partition, key.encode())
                    await apply_items(box, rows, slot, items)
            else:
                # One record per delta (the classic runtime) or per row and batch.
                items = body.get("deltas", [body])
                slot = (table_name, message.partition, message.key)
                await apply_items(box, rows, slot, items)
            seconds_of[table_name].observe(time.perf_counter() - started)
        touched = await _write_rows(rows, tables, decoded, loop_share)
        delivery = await seal(box, *touched)
        delivery.after = functools.partial(_observe_ages, age, written_at)
        return delivery

    async def apply_items(
        box: Outbox,
        rows: dict[tuple[str, int, bytes], reducers.Row],
        slot: tuple[str, int, bytes],
        items: Sequence[Mapping[str, Any]],
    ) -> None:
        """One row's deltas, in order, through the reducer's guard; its alerts sent."""
        table_name, partition, key = slot
        row = rows.get(slot)
        if row is None:
            raw = tables[table_name].get(partition, key)
            kept = None if raw is None else decoded.get(slot, raw)
            if kept is not None:
                row = kept
            elif raw is not None:
                row = reducers.row_from_json_dict(table_name, orjson.loads(raw))
            else:
                row = reducers.empty_row(table_name)
        for item in items:
            source_partition, offset, index = item["position"]
            outcome = reducers.apply(
                row,
                delta_from_json_dict(item["delta"]),
                (source_partition, offset, index),
                chart,
                source_event_id=item["event_id"],
            )
            if not outcome.applied:
                skipped_of[table_name].inc()
                continue
            row = outcome.row
            applied_of[table_name].inc()
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

    async def tables_agent(stream: StreamT[Any]) -> None:
        await run_agent(
            stream,
            "tables",
            tables_batch,
            batch_max,
            linger,
            gap,
            behind_records=behind,
            give_way_to=give_way_to,
            give_way_s=give_way_s,
        )

    return tables_agent


async def _write_rows(
    rows: Mapping[tuple[str, int, bytes], reducers.Row],
    tables: Mapping[str, BatchedTable],
    decoded: DecodedRows[reducers.Row],
    loop_share: LoopShare,
) -> list[BatchedTable]:
    """Each row of the batch into its table's record cache, once; the tables written."""
    touched: dict[str, BatchedTable] = {}
    for slot, row in rows.items():
        await loop_share.turn()
        table_name, partition, key = slot
        table = touched[table_name] = tables[table_name]
        raw = orjson.dumps(reducers.row_to_json_dict(row))
        table.put(partition, key, raw)
        decoded.put(slot, raw, row)
    return list(touched.values())


def _observe_ages(histogram: Any, written_at: Sequence[float]) -> None:
    """Once a batch is delivered: how long after its deltas records were written."""
    delivered_at = time.time()
    for stamp in written_at:
        histogram.observe(max(0.0, delivered_at - stamp))
