"""Latency per hop at a fixed rate, settings alternated on the same broker in the same hour.

``python -m bench.hops --rate 765 --pairs 2 --variant FIN_LOCAL_HANDOFF=0 --variant
FIN_LOCAL_HANDOFF=1`` runs one fresh worker per variant and round, alternating (A B A B ...), and
for each: an unmeasured warm-up at the rate, then ``--seconds`` of open-loop load
(``bench.latency.send_at_rate``). An event's latency is cut at the broker's timestamps of its
records: hop 1 from its scheduled send to its by-event-id record (ingest), hop 2 from there to
its journal entry (posting), and the whole. Also the worker's CPU per event over the measured
window. Latency on this shared machine moves with the hour far more than with most changes;
alternating pairs are what can tell a change from the hour (``make bench`` runs one latency
measurement per build).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.dataset import Dataset
from bench.hub import HubDeployment
from bench.latency import send_at_rate
from bench.measure import percentile
from settings import BY_EVENT_ID_TOPIC, LEDGER_TOPIC

WARMUP_SECONDS = 3.0
SETTLE_SECONDS = 3.0


@dataclass(frozen=True)
class HopResult:
    variant: str
    round: int
    rate: float
    entries: int
    hop1_p50_ms: float
    hop1_p99_ms: float
    hop2_p50_ms: float
    hop2_p99_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_us_per_event: float

    def line(self) -> str:
        return (
            f"{self.variant:32s} round {self.round}: hop 1 p50/p99 {self.hop1_p50_ms:.0f}/"
            f"{self.hop1_p99_ms:.0f} ms, hop 2 {self.hop2_p50_ms:.0f}/{self.hop2_p99_ms:.0f} ms, "
            f"end to end p50/p90/p99 {self.p50_ms:.0f}/{self.p90_ms:.0f}/{self.p99_ms:.0f} ms "
            f"(max {self.max_ms:.0f}), {self.cpu_us_per_event:,.0f} µs CPU/event, "
            f"{self.entries} entries"
        )


def hops(
    scheduled_ms: Sequence[int],
    event_ids: Sequence[str],
    entry_ids: Sequence[str | None],
    by_id_ms: Mapping[str, int],
    ledger_ms: Mapping[str, int],
) -> tuple[list[float], list[float], list[float]]:
    """Hop 1, hop 2 and end-to-end latencies (ms) of the events that made a journal entry."""
    first: list[float] = []
    second: list[float] = []
    whole: list[float] = []
    for sent, event_id, entry_id in zip(scheduled_ms, event_ids, entry_ids, strict=True):
        if entry_id is None:
            continue
        by_id = by_id_ms.get(event_id)
        ledger = ledger_ms.get(entry_id)
        if by_id is None or ledger is None:
            raise RuntimeError(f"event {event_id}: a record of it never appeared")
        first.append(float(by_id - sent))
        second.append(float(ledger - by_id))
        whole.append(float(ledger - sent))
    return first, second, whole


def first_stamps(pairs: Sequence[tuple[bytes, int]]) -> dict[str, int]:
    """Each key's first broker timestamp (a replayed record does not move it)."""
    stamps: dict[str, int] = {}
    for key, stamp in pairs:
        stamps.setdefault(key.decode(), stamp)
    return stamps


def measure(
    ctx: Context, data: Dataset, variant: Mapping[str, str], rate: float, seconds: float
) -> tuple[list[float], list[float], list[float], float]:
    """One fresh worker with ``variant`` set, at ``rate``: (hop 1, hop 2, whole, µs/event)."""
    prefix = ctx.new_prefix("hops")
    deployment = HubDeployment(ctx, prefix, ctx.scratch / prefix.rstrip("."))
    for worker in deployment.workers:
        worker.env.update(variant)
    ctx.create_contract_topics(prefix)
    warm = int(rate * WARMUP_SECONDS)
    measured = list(data.events[warm:])
    records = data.records[warm:]
    deployment.start()
    try:
        deployment.wait_ready()
        send_at_rate(ctx.bootstrap, prefix, data.events[:warm], rate)
        time.sleep(SETTLE_SECONDS)
        cpu_before = deployment.cpu_seconds()
        scheduled, _ = send_at_rate(ctx.bootstrap, prefix, measured, rate)
        wanted = sum(1 for event in data.events if event.entry_id is not None)
        deadline = time.monotonic() + 120
        while ctx.kafka.count(prefix + LEDGER_TOPIC) < wanted:
            deployment.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dict(variant)}: the worker did not post every event")
            time.sleep(0.2)
        cpu_us = (deployment.cpu_seconds() - cpu_before) / len(measured) * 1e6
        by_id = first_stamps(ctx.kafka.read_keys_and_timestamps(prefix + BY_EVENT_ID_TOPIC))
        ledger = first_stamps(ctx.kafka.read_keys_and_timestamps(prefix + LEDGER_TOPIC))
    finally:
        deployment.stop()
        ctx.cleanup(prefix)
    first, second, whole = hops(
        scheduled,
        [record["event_id"] for record in records],
        [event.entry_id for event in measured],
        by_id,
        ledger,
    )
    return first, second, whole, cpu_us


def result_of(
    name: str,
    round_: int,
    rate: float,
    measured: tuple[list[float], list[float], list[float], float],
) -> HopResult:
    first, second, whole, cpu_us = measured
    return HopResult(
        variant=name,
        round=round_,
        rate=rate,
        entries=len(whole),
        hop1_p50_ms=percentile(first, 0.5),
        hop1_p99_ms=percentile(first, 0.99),
        hop2_p50_ms=percentile(second, 0.5),
        hop2_p99_ms=percentile(second, 0.99),
        p50_ms=percentile(whole, 0.5),
        p90_ms=percentile(whole, 0.9),
        p99_ms=percentile(whole, 0.99),
        max_ms=max(whole, default=float("nan")),
        cpu_us_per_event=round(cpu_us, 1),
    )


def parse_variant(text: str) -> dict[str, str]:
    """``NAME=VALUE[,NAME=VALUE...]`` (empty: the defaults)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"not NAME=VALUE[,NAME=VALUE...]: {text!r}")
    return {name: value for name, value in pairs}


def main(argv: Sequence[str] | None = None) -> int:
    """Alternating per-hop latency runs of one worker per variant (see the module docstring)."""
    from bench import __main__ as bench_main
    from bench import dataset
    from bench.context import registry_url_from_ops, stop_workers_on_sigterm
    from bench.kafka_io import Kafka
    from ledger.chart import default_chart_path, load_chart
    from schemas.catalog import SchemaCatalog
    from schemas.codec import Encoder
    from schemas.registry import RegistryClient, SchemaIds

    parser = argparse.ArgumentParser(prog="python -m bench.hops", description=main.__doc__)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pairs", type=int, default=2, help="rounds of every variant")
    parser.add_argument("--variant", type=parse_variant, action="append", default=None)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    stop_workers_on_sigterm()
    variants: list[dict[str, str]] = args.variant or [{}]
    bench_main.ensure_infrastructure()
    bootstrap = "127.0.0.1:9092"
    ctx = Context(bootstrap, registry_url_from_ops(), bench_main.SCRATCH, Kafka(bootstrap))
    ctx.scratch = bench_main.SCRATCH / f"run-{ctx.run_id}"
    ctx.scratch.mkdir(parents=True)
    results: list[HopResult] = []
    try:
        catalog = SchemaCatalog.load()
        registry = RegistryClient(ctx.registry_url)
        encoder = Encoder(
            catalog, SchemaIds(catalog, registry, topic_prefix=ctx.new_prefix("load"))
        )
        count = int(args.rate * WARMUP_SECONDS) + int(args.rate * args.seconds)
        data = dataset.build(args.seed, count, encoder, load_chart(default_chart_path()))
        for round_ in range(1, args.pairs + 1):
            for variant in variants:
                name = ",".join(f"{k}={v}" for k, v in variant.items()) or "defaults"
                measured = measure(ctx, data, variant, args.rate, args.seconds)
                results.append(result_of(name, round_, args.rate, measured))
                bench_main.say(results[-1].line())
        registry.close()
    finally:
        for prefix in ctx.prefixes:
            ctx.cleanup(prefix)
    if args.out is not None:
        given = list(argv) if argv is not None else sys.argv[1:]
        payload: dict[str, Any] = {"argv": given, "results": [asdict(r) for r in results]}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
