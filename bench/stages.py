"""``python -m bench.stages``: FIN's own per-event work, stage by stage, without Kafka.

    python -m bench.stages [--events N] [--repeat R] [--json PATH] [--cpu]

The events are ``demo.generator.synthetic_events(seed, count=N)`` (compensations included),
encoded once in the Confluent wire format with ``schemas.codec.Encoder`` under in-memory schema
ids (catalog order, 1..12, as the unit-test fakes do); a ``Decoder`` reads them back through a
dict that stands in for the registry. Each stage then runs over the whole list, timed with
``time.perf_counter_ns`` (``--cpu``: ``time.thread_time_ns``), and is reported as total time / N
(µs per event, whether or not every event takes part in the stage):

* decode: ``Decoder.decode`` (schema ids already cached by an untimed warm-up pass)
* validate: ``ledger.validation.validate``
* fingerprint: ``ledger.idempotency.fingerprint``
* posting: ``ledger.rules.post`` (a compensation: ``rules.reverse`` of its target's posting)
* processed: the ``ProcessedRecord`` with ``rules.posting_to_json_dict``, then
  ``ProcessedRecord.to_json_dict`` + ``orjson.dumps`` (what the posting stage writes to its table)
* reducers: ``ledger.reducers.apply`` of every delta, rows held in a dict
* entry encode: ``entries.to_avro_dict`` + ``Encoder.encode`` of every journal entry

Every stage runs ``--repeat`` times and the fastest run counts (the usual microbenchmark rule:
the slower runs measure the machine's other work, not FIN's). Each stage's input is the previous
stage's output from its first run, so the stages measure the same records.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson

from demo.generator import synthetic_events
from ledger import idempotency, reducers, rules, validation
from ledger.chart import ChartOfAccounts, default_chart_path, load_chart
from ledger.entries import SourceRef, to_avro_dict
from ledger.events import CompensationRequested, Event
from ledger.rejections import Rejection
from schemas.catalog import SchemaCatalog, contract_for_record
from schemas.codec import Decoded, Decoder, Encoder

DEFAULT_EVENTS = 20_000
DEFAULT_REPEAT = 3
SEED = 7
STAGES = (
    "decode",
    "validate",
    "fingerprint",
    "posting",
    "processed",
    "reducers",
    "entry_encode",
)


@dataclass
class Inputs:
    """The encoded events and the objects every stage needs."""

    catalog: SchemaCatalog
    chart: ChartOfAccounts
    encoder: Encoder
    decoder: Decoder
    values: list[tuple[str, bytes]]  # (contract topic, wire-format value)
    received_at: datetime


def prepare(count: int, seed: int = SEED) -> Inputs:
    catalog = SchemaCatalog.load()
    ids = {entry.subject: index for index, entry in enumerate(catalog.entries, start=1)}
    texts = {index: entry.schema_str for index, entry in enumerate(catalog.entries, start=1)}
    encoder = Encoder(catalog, ids.__getitem__)
    decoder = Decoder(catalog, texts.__getitem__)
    values = [
        (contract_for_record(record).topic, encoder.encode(record))
        for record in synthetic_events(seed, count=count)
    ]
    return Inputs(
        catalog=catalog,
        chart=load_chart(default_chart_path()),
        encoder=encoder,
        decoder=decoder,
        values=values,
        received_at=datetime.now(UTC),
    )


def _timed(function: Callable[[], Any], repeat: int, clock: Callable[[], int]) -> tuple[int, Any]:
    """(fastest run in ns, result of the first run)."""
    best: int | None = None
    first: Any = None
    for attempt in range(repeat):
        # The inputs (N decoded records, events, postings) are the harness's, not the hub's,
        # which holds one event at a time: frozen, the collector does not rescan them on every
        # pass, which would otherwise bill the stage for a heap that grows with N.
        gc.collect()
        gc.freeze()
        started = clock()
        result = function()
        elapsed = clock() - started
        gc.unfreeze()
        if attempt == 0:
            first = result
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best, first


def run(
    inputs: Inputs, repeat: int = DEFAULT_REPEAT, clock: Callable[[], int] = time.perf_counter_ns
) -> dict[str, Any]:
    """Time every stage; returns ns per stage and a few counts that say what was measured."""

    def timed(function: Callable[[], Any]) -> tuple[int, Any]:
        return _timed(function, repeat, clock)

    chart, decoder, encoder = inputs.chart, inputs.decoder, inputs.encoder
    values = inputs.values
    for topic, value in values:  # warm-up: every schema id fetched and parsed once
        decoder.decode(topic, value)
    nanoseconds: dict[str, int] = {}

    def decode() -> list[Decoded]:
        decoded = [decoder.decode(topic, value) for topic, value in values]
        assert not any(isinstance(item, Rejection) for item in decoded)
        return cast(list[Decoded], decoded)

    nanoseconds["decode"], decoded = timed(decode)
    topics = [topic for topic, _ in values]
    received_at = inputs.received_at

    def validate() -> list[Event]:
        checked = [
            validation.validate(item.record, topic=topic, received_at=received_at, chart=chart)
            for item, topic in zip(decoded, topics, strict=True)
        ]
        rejected = [item for item in checked if isinstance(item, Rejection)]
        assert not rejected, rejected[:3]
        return cast(list[Event], checked)

    nanoseconds["validate"], events = timed(validate)

    def fingerprint() -> list[str]:
        return [idempotency.fingerprint(item.record) for item in decoded]

    nanoseconds["fingerprint"], fingerprints = timed(fingerprint)
    sources = [
        SourceRef(event.event_id, event.event_type, topic, 0, offset)
        for offset, (event, topic) in enumerate(zip(events, topics, strict=True))
    ]

    def post() -> list[rules.Posting | None]:
        postings: dict[str, rules.Posting] = {}
        result: list[rules.Posting | None] = []
        for event, source in zip(events, sources, strict=True):
            if isinstance(event, CompensationRequested):
                target = postings.get(event.target_event_id)
                posting = None if target is None else rules.reverse(target, event.event_id, source)
            else:
                posting = rules.post(event, source, chart)
            if posting is not None:
                postings[event.event_id] = posting
            result.append(posting)
        return result

    nanoseconds["posting"], postings = timed(post)

    def processed() -> int:
        written = 0
        for posting, source, print_ in zip(postings, sources, fingerprints, strict=True):
            if posting is None:
                continue
            record = idempotency.ProcessedRecord(
                fingerprint=print_,
                source=source,
                by_id_offset=source.offset,
                posting=rules.posting_to_json_dict(posting),
            )
            written += len(orjson.dumps(record.to_json_dict()))
        return written

    nanoseconds["processed"], processed_bytes = timed(processed)

    def reduce() -> tuple[int, int]:
        rows: dict[tuple[str, str], reducers.Row] = {}
        applied = alerts = 0
        for posting, source in zip(postings, sources, strict=True):
            if posting is None:
                continue
            for index, delta in enumerate(posting.deltas):
                row_key = (delta.table, delta.key)
                outcome = reducers.apply(
                    rows.get(row_key),
                    delta,
                    (0, source.offset, index),
                    chart,
                    source_event_id=source.event_id,
                )
                if outcome.applied:
                    rows[row_key] = outcome.row
                    applied += 1
                    alerts += len(outcome.alerts)
        return applied, alerts

    nanoseconds["reducers"], (deltas_applied, alerts) = timed(reduce)
    entries = [posting.entry for posting in postings if posting and posting.entry is not None]

    def entry_encode() -> int:
        return sum(len(encoder.encode(to_avro_dict(entry))) for entry in entries)

    nanoseconds["entry_encode"], entry_bytes = timed(entry_encode)
    return {
        "nanoseconds": nanoseconds,
        "events": len(values),
        "entries": len(entries),
        "deltas_applied": deltas_applied,
        "alerts": alerts,
        "processed_bytes": processed_bytes,
        "entry_bytes": entry_bytes,
    }


def summary(result: dict[str, Any], repeat: int, clock: str = "wall") -> dict[str, Any]:
    events = result["events"]
    per_event = {name: result["nanoseconds"][name] / events / 1000 for name in STAGES}
    return {
        "benchmark": "bench.stages",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seed": SEED,
        "repeat": repeat,
        "clock": clock,
        "events": events,
        "entries": result["entries"],
        "deltas_applied": result["deltas_applied"],
        "alerts": result["alerts"],
        "us_per_event": {name: round(value, 2) for name, value in per_event.items()},
        "total_us_per_event": round(sum(per_event.values()), 2),
    }


def table(data: dict[str, Any]) -> str:
    lines = [
        f"bench.stages: {data['events']} events (seed {data['seed']}), "
        f"{data['entries']} entries, {data['deltas_applied']} deltas; "
        f"fastest of {data['repeat']} runs, {data['clock']} time",
        f"{'stage':<14} {'µs/event':>10}",
    ]
    for name, value in data["us_per_event"].items():
        lines.append(f"{name:<14} {value:>10.2f}")
    lines.append(f"{'total':<14} {data['total_us_per_event']:>10.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per stage")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time with the thread's CPU clock instead of the wall clock: steadier on a machine "
        "busy with other work, which stretches wall time but not this thread's CPU time",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be positive")
    clock = time.thread_time_ns if args.cpu else time.perf_counter_ns
    result = run(prepare(args.events), args.repeat, clock)
    data = summary(result, args.repeat, "thread CPU" if args.cpu else "wall")
    print(table(data))
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
