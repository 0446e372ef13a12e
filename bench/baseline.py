"""Contestant (b): a hand-written aiokafka loop doing FIN's work per event, without faust.

    python -m bench.baseline --bootstrap B --registry-url R --prefix P --group G \
        --expect N --out state.json

Per record, the same work as the hub's ingest and posting stages, with the same code from
``schemas`` and ``ledger``: strict decode (Confluent wire format, writer schema by id) →
validate → idempotency decision against a dict of processed event ids (fingerprint included)
→ posting rule → every state delta through the pure reducer into dict state → balance check →
encode the journal entry (and any alert) → send (acks=all). What it does *not* do is what the
framework adds: the re-keying hop through the by-event-id topic, the delta topics, table
writes and their changelogs, durable outcome counters.

It consumes the source topics with its own consumer group until ``--expect`` records were
processed, flushes its producer, and writes its timings, CPU time, peak RSS and the trial
balance of every period it booked to ``--out`` (the benchmark compares those with the
reference ledger).

It also times its own stages with ``time.perf_counter_ns`` (wall time inside the stage; about
ten clock reads per event, well under 1 µs): decode; validate (with the record's received-at
time); idempotency (fingerprint, decision, the processed record); posting (the posting rule and
the balance check); reducers (every delta into its row); encode (journal entry and alerts to
Avro); send (appending the record to its topic partition's batch, and handing each batch of a
fetch to the producer, as the hub's bulk sends do; not the network round trip, which runs in the
background and is awaited once by the final flush).

The garbage collector is set as the hub's worker sets it (``streams.gc_tuning``: start-up frozen
out of its view, ``FIN_GC_YOUNG_THRESHOLD``), so neither contestant pays a cost the other does
not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ledger import idempotency, reducers, rules, validation
from ledger.chart import default_chart_path, load_chart
from ledger.deltas import PERIODS
from ledger.entries import SourceRef, assert_balanced, to_avro_dict
from ledger.rejections import Rejection
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoder, Encoder
from schemas.registry import RegistryClient, register_all
from settings import ALERTS_TOPIC, COMMANDS_TOPIC, LEDGER_TOPIC, SOURCE_TOPICS, Settings
from streams.faust_patches import whole_node_produce
from streams.gc_tuning import freeze_long_lived
from streams.partitioner import partition_for

FETCH_TIMEOUT_MS = 500
STAGES = ("decode", "validate", "idempotency", "posting", "reducers", "encode", "send")


class Books:
    """The baseline's whole state: processed event ids and table rows, in dicts."""

    def __init__(self) -> None:
        self.processed: dict[str, idempotency.ProcessedRecord] = {}
        self.rows: dict[tuple[str, str], reducers.Row] = {}
        self.sequence = 0  # one position counter: this loop is the only writer
        self.outcomes: dict[str, int] = {}
        self.stage_ns: dict[str, int] = dict.fromkeys(STAGES, 0)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def trial_balances(self) -> dict[str, dict[str, Any]]:
        balances: dict[str, dict[str, Any]] = {}
        for (table, key), row in sorted(self.rows.items()):
            if table != PERIODS or not isinstance(row, reducers.PeriodRow):
                continue
            view = reducers.trial_balance(row)
            balances[key] = {
                "accounts": {
                    line.account: (f"{line.debit:.2f}", f"{line.credit:.2f}") for line in view.lines
                },
                "entries": view.entry_count,
            }
        return balances


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix: str = args.prefix
    chart = load_chart(default_chart_path())
    catalog = SchemaCatalog.load()
    registry = RegistryClient(args.registry_url)
    subject_ids = register_all(catalog, registry, topic_prefix=prefix)
    decoder = Decoder(catalog, registry.get_schema)
    encoder = Encoder(catalog, lambda subject: subject_ids[subject])
    contract_of = {prefix + name: name for name in (*SOURCE_TOPICS, COMMANDS_TOPIC)}
    ledger_topic, alerts_topic = prefix + LEDGER_TOPIC, prefix + ALERTS_TOPIC

    consumer = AIOKafkaConsumer(
        *contract_of,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    if Settings.from_env().whole_node_produce:  # as the hub's worker (streams/hub.py)
        whole_node_produce.install()
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    # The collector as the hub's worker sets it (FIN_GC_YOUNG_THRESHOLD, streams/gc_tuning.py).
    freeze_long_lived(Settings.from_env().gc_young_threshold, moment="after the start")
    books = Books()
    consumed = 0
    first_at: float | None = None
    cpu_at_first = 0.0
    try:
        while consumed < args.expect:
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
            if not batches:
                if args.ready_file and consumer.assignment():
                    Path(args.ready_file).touch()
                continue
            if first_at is None:
                first_at, cpu_at_first = time.time(), time.process_time()
            sends = Sends(producer)
            for partition, messages in batches.items():
                topic = contract_of[partition.topic]
                for message in messages:
                    consumed += 1
                    await process(
                        message,
                        topic,
                        books,
                        decoder,
                        encoder,
                        chart,
                        sends,
                        ledger_topic,
                        alerts_topic,
                    )
            started = time.perf_counter_ns()
            await sends.hand_over()
            books.stage_ns["send"] += time.perf_counter_ns() - started
        await producer.flush()
        done_at, cpu_at_done = time.time(), time.process_time()
    finally:
        await consumer.stop()
        await producer.stop()
        registry.close()
    return {
        "consumed": consumed,
        "first_at": first_at,
        "done_at": done_at,
        "cpu_s": cpu_at_done - cpu_at_first,
        "cpu_total_s": cpu_at_done,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "outcomes": books.outcomes,
        "stage_ns": books.stage_ns,
        "trial_balances": books.trial_balances(),
    }


async def process(
    message: Any,
    topic: str,
    books: Books,
    decoder: Decoder,
    encoder: Encoder,
    chart: Any,
    sends: Sends,
    ledger_topic: str,
    alerts_topic: str,
) -> None:
    clock = time.perf_counter_ns
    spent = books.stage_ns
    t0 = clock()
    decoded = decoder.decode(topic, message.value)
    t1 = clock()
    spent["decode"] += t1 - t0
    if isinstance(decoded, Rejection):
        books.count(f"rejected:{decoded.reason}")
        return
    received_at = datetime.fromtimestamp(message.timestamp / 1000, UTC)
    event = validation.validate(decoded.record, topic=topic, received_at=received_at, chart=chart)
    t2 = clock()
    spent["validate"] += t2 - t1
    if isinstance(event, Rejection):
        books.count(f"rejected:{event.reason}")
        return
    books.sequence += 1
    source = SourceRef(event.event_id, event.event_type, topic, message.partition, message.offset)
    fingerprint = idempotency.fingerprint(decoded.record)
    decision = idempotency.decide(
        books.processed.get(event.event_id),
        fingerprint=fingerprint,
        source=source,
        by_id_offset=books.sequence,
    )
    t3 = clock()
    spent["idempotency"] += t3 - t2
    if decision is not idempotency.Decision.POST:
        books.count(str(decision))
        return
    posting = rules.post(event, source, chart)
    if posting.entry is not None:
        assert_balanced(posting.entry)
    t4 = clock()
    spent["posting"] += t4 - t3
    # The entry's Avro record built once: kept (as JSON) and encoded, as the hub does.
    entry_record = None if posting.entry is None else to_avro_dict(posting.entry)
    books.processed[event.event_id] = idempotency.ProcessedRecord(
        fingerprint=fingerprint,
        source=source,
        by_id_offset=books.sequence,
        posting=rules.posting_to_json_dict(posting, entry_record),
        compensated_by=None,
    )
    books.count("posted")
    t5 = clock()
    spent["idempotency"] += t5 - t4
    alerts: list[reducers.Alert] = []
    for index, delta in enumerate(posting.deltas):
        row_key = (delta.table, delta.key)
        outcome = reducers.apply(
            books.rows.get(row_key),
            delta,
            (0, books.sequence, index),
            chart,
            source_event_id=event.event_id,
        )
        if not outcome.applied:
            continue
        books.rows[row_key] = outcome.row
        alerts.extend(outcome.alerts)
    t6 = clock()
    spent["reducers"] += t6 - t5
    outputs = [
        (alerts_topic, alert.subject.encode(), encoder.encode(reducers.alert_to_avro_dict(alert)))
        for alert in alerts
    ]
    if posting.entry is not None and entry_record is not None:
        outputs.append(
            (ledger_topic, posting.entry.entry_id.encode(), encoder.encode(entry_record))
        )
    t7 = clock()
    spent["encode"] += t7 - t6
    for out_topic, key, value in outputs:
        # The hub's own partitioner (streams/partitioner.py), as the hub uses it: the same
        # partition as aiokafka's default, at a fraction of its cost.
        count = PARTITION_COUNTS.get(out_topic)
        if count is None:
            count = PARTITION_COUNTS[out_topic] = len(
                await sends.producer.partitions_for(out_topic)
            )
        await sends.add(out_topic, partition_for(key, count), key, value)
    spent["send"] += clock() - t7


# Topic -> partition count, learnt once per topic (the hub keeps the same cache).
PARTITION_COUNTS: dict[str, int] = {}


class Sends:
    """The outputs of one fetched batch, as the hub's bulk sends (``FIN_BULK_SENDS``,
    ``streams/outbox.py``) hand them over: appended to one aiokafka batch per topic partition,
    each batch handed to the producer once (a full one at once; a record larger than a whole
    batch alone)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._batches: dict[tuple[str, int], Any] = {}

    async def add(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        slot = (topic, partition)
        filling = self._batches.get(slot)
        if filling is not None:
            if filling.append(timestamp=None, key=key, value=value, headers=[]) is not None:
                return
            await self.producer.send_batch(self._batches.pop(slot), topic, partition=partition)
        builder = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=[]) is not None:
            self._batches[slot] = builder
            return
        await self.producer.send(topic, key=key, value=value, partition=partition)

    async def hand_over(self) -> None:
        for (topic, partition), builder in self._batches.items():
            await self.producer.send_batch(builder, topic, partition=partition)
        self._batches.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True, help="records to process")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready-file", default=None, help="touched once partitions are assigned")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
