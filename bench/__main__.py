"""``python -m bench`` (``make bench``): FIN's hub against a bare aiokafka loop and the broker.

What one run does, on the broker of ``make up`` (started here if it is not running):

1. Generates ``--events`` N events with ``demo.generator.synthetic_events`` (seeded, the
   realistic mix, no compensations: see ``bench/dataset.py``), encodes them once (Avro,
   Confluent wire format, schemas registered under the run's own prefix) and computes the
   reference ledger of ``tests/unit/ledger/reference.py`` from the same events.
2. Broker limit: Kafka's ``kafka-producer-perf-test`` and ``kafka-consumer-perf-test`` with
   records of the events' mean size (acks=all, 4 partitions).
3. ``--runs`` K times, alternating, each on a fresh topic prefix:
   a. hub, 1 worker: one ``python app.py worker`` with its own prefix, app id and data dir,
      RocksDB tables, default settings, its runtime from ``--runtime`` (classic or batched;
      without it FIN_RUNTIME is not set by the bench: the inherited one or the worker's
      default applies). The topics are loaded before it starts (loading is not measured).
      Drain time = first record it forwards to its by-event-id topic (start of consumption)
      .. the last output record on the broker (journal entries, alerts, every table
      changelog); completion seen on its /metrics and on the end offsets of its entries
      changelog (classic) or of the ledger topic (batched). Its trial balance of every period
      (REST), its integrity report (REST) and the ledger topic's record count must equal the
      reference.
   b. baseline: ``python -m bench.baseline``, an aiokafka loop doing the same per-event work
      with state in dicts; drain time = its first fetched batch .. its producer flushed. Its
      trial balances (dict) and the ledger topic's record count must equal the reference.
   c. hub, 2 workers (unless ``--no-two-workers``): two workers in one consumer group (same
      prefix and app id, their own data dirs and ports). Both are started on empty topics;
      once both answer /ready and the group is stable with source partitions on each, the
      topics are loaded (so no rebalance falls inside the drain). Drain time and validity as
      in (a), the books read through either worker's REST API; CPU time and peak RSS summed
      over both. Reported: its events/s and two workers / one worker (issue 13: ≥ 1.5).
   CPU µs/event = the processes' CPU time over the drain span / N (/proc for the hub, the
   process's own clock for the baseline); peak RSS = VmHWM / ru_maxrss. A run whose output
   differs from the reference is printed INVALID and not counted.
   Per stage, µs per input event (a stage's whole time / N): the hub's own
   ``fin_processing_seconds`` histogram (stages ingest, posting, table_<name>; sum read from
   /metrics at the end of the drain, summed over workers), and the baseline's own
   ``perf_counter_ns`` timings of decode, validate, idempotency, posting, reducers, encode
   and send; medians of the valid runs, side by side in one table. Both are wall time inside
   the stage (on a loaded machine, time the process waited for a core counts too); the
   process CPU per event beside them covers what lies outside every stage.
4. Recovery (unless ``--no-recovery``): the last one-worker hub restarted with its data dir
   intact, then wiped. Restore time = the worker's log from its first "restoring" line to
   its last "done reading" line: FIN's bulk reader's
   (``streams/faust_patches/fast_recovery.py``), or
   faust's own "Restoring state from changelog topics" .. "Done reading from changelog
   topics" (with ``FIN_FAST_RECOVERY=0``), as changelog records/s; the wall time until
   /ready (dominated by process start and group join) is reported beside it for both
   restarts. In the batched runtime the wiped
   worker rebuilds its entries index (a copy of the ledger topic) too, outside faust and after
   /ready: the time from its start until it serves the last entry of every ledger partition.
   Every table row and persisted changelog offset is compared before the wipe and after the
   rebuild. ``--recovery-records`` N (default 200,000; 0: skip): the changelogs grown to N
   records by appending each partition's own records again (the tables they rebuild are the
   same), the wiped restart once more, for a records/s where records outweigh fixed costs
   (``bench/recovery.py``; ``python -m bench.recovery`` runs one drain and this alone).
5. Latency: a fresh process per contestant (one hub worker), an unmeasured 3 s warm-up, then
   open-loop load at 50% and 80% of its own median drain throughput for ``--latency-seconds``
   each; latency = broker append time of the journal entry - scheduled send time of its event
   (see ``bench/latency.py``).
6. ``--profile``: one more hub drain with py-spy attached (not counted): the top frames.

Results go to ``--out`` (default ``bench/results/``) as ``latest.json`` and ``latest.md``; the
table is printed, and so are the ratios (hub / baseline, two workers / one worker).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baseline_run, dataset, hub, perf_tools, report
from bench import latency as latency_module
from bench.context import PARTITIONS, ROOT, Context, registry_url_from_ops, stop_workers_on_sigterm
from bench.kafka_io import Kafka
from bench.measure import DrainResult, LatencyResult
from bench.profile import py_spy, summarise
from ledger.chart import ChartOfAccounts, default_chart_path, load_chart
from schemas.catalog import SchemaCatalog
from schemas.codec import Encoder
from schemas.registry import RegistryClient, SchemaIds
from settings import RUNTIMES

log = logging.getLogger("bench")

# 16,000 events drain in ~7 s at today's rates. At 4,000 (~2 s) the first fetches, the last
# batch's acknowledgements and the rebalance's tail weighed on every figure, most on two
# workers: on one hour's runs, 0.91x at 4,000 against 1.26x at 16,000 events.
DEFAULT_EVENTS = 16_000
DEFAULT_RUNS = 5
DEFAULT_LATENCY_SECONDS = 15.0
DEFAULT_RECOVERY_RECORDS = 200_000
PERF_RECORDS = 500_000
LOADS = [0.5, 0.8]
RESULTS = ROOT / "bench" / "results"
SCRATCH = ROOT / ".state" / "bench"  # worker data dirs and logs of a run (removed after it)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events per drain run")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="drain runs per contestant")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="FIN_RUNTIME of every hub worker (default: inherited FIN_RUNTIME, else the "
        "worker's own default)",
    )
    parser.add_argument(
        "--no-two-workers", action="store_true", help="skip the two-worker hub contestant"
    )
    parser.add_argument("--latency-seconds", type=float, default=DEFAULT_LATENCY_SECONDS)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument(
        "--recovery-records",
        type=int,
        default=DEFAULT_RECOVERY_RECORDS,
        help="recovery measured again on the changelogs grown to this many records (0: not)",
    )
    parser.add_argument(
        "--recovery-profile", type=Path, default=None, help="py-spy raw output of that restart"
    )
    parser.add_argument("--no-broker", action="store_true", help="skip Kafka's perf tools")
    parser.add_argument("--profile", action="store_true", help="one extra hub run under py-spy")
    parser.add_argument("--bootstrap", default=None, help="default: ops/kafka.sh on 127.0.0.1:9092")
    parser.add_argument("--registry-url", default=None, help="default: ops/registry.sh url")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument(
        "--keep-scratch", action="store_true", help=f"keep worker logs and data under {SCRATCH}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def ensure_infrastructure() -> None:
    for script in ("kafka.sh", "registry.sh"):
        subprocess.run([str(ROOT / "ops" / script), "start"], cwd=ROOT, check=True, timeout=300)


def machine(loadavg_start: str) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory_kb = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": memory_kb / 1024 / 1024,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kafka": "Apache Kafka 4.3.1, one KRaft node (ops/kafka.sh)",
        "registry": "ops/registry.sh",
        "loadavg_start": loadavg_start,
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_workers_on_sigterm()
    if args.bootstrap is None:
        ensure_infrastructure()
    bootstrap = args.bootstrap or "127.0.0.1:9092"
    registry_url = args.registry_url or registry_url_from_ops()
    ctx = Context(
        bootstrap,
        registry_url,
        SCRATCH,
        Kafka(bootstrap),
        keep_topics=args.keep_topics,
        runtime=args.runtime,
    )
    try:
        return run(args, argv, ctx)
    finally:
        # After a failure too: no topics of this run stay behind on the shared broker.
        for prefix in ctx.prefixes:
            ctx.cleanup(prefix)
        ctx.kafka.close()


def run(args: argparse.Namespace, argv: Sequence[str] | None, ctx: Context) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = loadavg()
    scratch = ctx.scratch = SCRATCH / f"run-{ctx.run_id}"
    scratch.mkdir(parents=True)
    say(
        f"scratch {scratch}, prefixes bench{ctx.run_id}-*, hub runtime {ctx.effective_runtime}, "
        f"load average {load_start}"
    )

    catalog = SchemaCatalog.load()
    chart = load_chart(default_chart_path())
    registry = RegistryClient(ctx.registry_url)
    encoder = Encoder(catalog, SchemaIds(catalog, registry, topic_prefix=ctx.new_prefix("load")))
    events = dataset.build(args.seed, args.events, encoder, chart)
    say(
        f"{len(events):,} events built and encoded in {events.seconds_to_build:.1f}s "
        f"({events.entries:,} entries, {events.deltas:,} deltas, "
        f"{events.mean_value_bytes:.0f} B mean value)"
    )

    missing: list[str] = []
    broker: dict[str, Any] = {}
    if not args.no_broker:
        broker = perf_tools.run(
            ctx, records=PERF_RECORDS, record_size=round(events.mean_value_bytes)
        )
        say(
            f"broker: produce {broker.get('producer_records_per_s', 0):,.0f}/s, "
            f"consume {broker.get('consumer_records_per_s', 0):,.0f}/s"
        )
    else:
        missing.append("broker limit (--no-broker)")

    drains: list[DrainResult] = []
    last_hub: hub.HubDeployment | None = None
    for run in range(1, args.runs + 1):
        keep = run == args.runs and not args.no_recovery
        result, deployment = hub.drain(ctx, events, label=str(run), keep=keep)
        if keep:
            last_hub = deployment
        drains.append(result)
        say(_line(result, run))
        base = baseline_run.drain(ctx, events, label=str(run))
        drains.append(base)
        say(_line(base, run))
        if not args.no_two_workers:
            two, _ = hub.drain(ctx, events, label=str(run), workers=2)
            drains.append(two)
            say(_line(two, run))

    recovery: dict[str, Any] | None = None
    if last_hub is not None:
        measured = hub.recovery(
            ctx,
            last_hub,
            scale_records=args.recovery_records,
            profile_to=args.recovery_profile,
        )
        ctx.cleanup(last_hub.prefix)
        recovery = measured.to_json()
        say(f"recovery: {recovery}")
    elif not args.no_recovery:
        missing.append("table recovery (no hub run)")
    else:
        missing.append("table recovery (--no-recovery)")

    config = run_config(args, ctx, events)
    names = ("hub", "baseline") if args.no_two_workers else ("hub", "hub2", "baseline")
    summary: dict[str, Any] = {
        name: report.summarise_drain([d for d in drains if d.contestant == name]) for name in names
    }
    hub_rate, base_rate = (summary[n]["events_per_s"] for n in ("hub", "baseline"))
    summary["hub_to_baseline"] = report.ratio(summary["hub"], summary["baseline"])
    if not args.no_two_workers:
        summary["two_workers_to_one"] = report.ratio(summary["hub2"], summary["hub"])
    for line in report.summary_lines({"summary": summary, "config": config}):
        say(line.replace("**", ""))

    latencies = measure_latency(args, ctx, encoder, chart, hub_rate, base_rate, missing)
    profile = measure_profile(args, ctx, events, scratch, missing)

    data: dict[str, Any] = {
        "command": "make bench  # = "
        + shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])]),
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {**machine(load_start), "loadavg_end": loadavg()},
        "config": config,
        "summary": summary,
        "drain": [d.to_json() for d in drains],
        "broker": broker,
        "recovery": recovery,
        "latency": [r.to_json() for r in latencies],
        "profile": profile,
        "missing": missing,
    }
    text = report.write(args.out, data, latencies)
    registry.close()
    if not args.keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(text)
    return 0


def run_config(args: argparse.Namespace, ctx: Context, events: dataset.Dataset) -> dict[str, Any]:
    return {
        "events": len(events),
        "runs": args.runs,
        "seed": args.seed,
        "partitions": PARTITIONS,
        "runtime": ctx.effective_runtime,
        "runtime_from": "--runtime"
        if args.runtime
        else ("FIN_RUNTIME" if os.environ.get("FIN_RUNTIME") else "worker default"),
        "two_workers": not args.no_two_workers,
        "latency_seconds": args.latency_seconds,
        "loads": LOADS,
        "mean_value_bytes": events.mean_value_bytes,
        "events_by_topic": events.by_topic(),
        "entries": events.entries,
        "deltas": events.deltas,
    }


def measure_latency(
    args: argparse.Namespace,
    ctx: Context,
    encoder: Encoder,
    chart: ChartOfAccounts,
    hub_rate: Any,
    base_rate: Any,
    missing: list[str],
) -> list[LatencyResult]:
    """Open-loop latency of the hub and the baseline at LOADS of their own drain rates."""
    latencies: list[LatencyResult] = []
    if args.no_latency:
        missing.append("end-to-end latency (--no-latency)")
    elif not (hub_rate and base_rate):
        missing.append("end-to-end latency (no valid drain figure to take 50%/80% of)")
    else:
        needed = max(
            latency_module.events_needed(rate["median"], LOADS, args.latency_seconds)
            for rate in (hub_rate, base_rate)
        )
        latency_events = dataset.build(args.seed + 1, needed, encoder, chart)
        say(f"{needed:,} latency events built in {latency_events.seconds_to_build:.1f}s")
        for name, runner, rate in (
            ("hub", hub.latency, hub_rate),
            ("baseline", baseline_run.latency, base_rate),
        ):
            results = runner(
                ctx,
                latency_events,
                max_rate=rate["median"],
                loads=LOADS,
                seconds=args.latency_seconds,
            )
            latencies.extend(results)
            for r in results:
                say(
                    f"latency {name} {r.load:.0%} ({r.rate:,.0f}/s): p50 {r.p50_ms:.0f} ms, "
                    f"p99 {r.p99_ms:.0f} ms, p99.9 {r.p999_ms:.0f} ms; cores: {name} "
                    f"{r.contestant_cpu_cores}, broker {r.broker_cpu_cores}"
                    + ("" if r.valid else f" INVALID {r.problems[:2]}")
                )
    return latencies


def measure_profile(
    args: argparse.Namespace,
    ctx: Context,
    events: dataset.Dataset,
    scratch: Path,
    missing: list[str],
) -> dict[str, Any] | None:
    """One extra hub drain under py-spy (``--profile``), summarised; not counted."""
    profile: dict[str, Any] | None = None
    if args.profile:
        if py_spy() is None:
            missing.append("profile (py-spy is not installed: pip install py-spy)")
        else:
            raw = scratch / "hub-profile.txt"
            result, _ = hub.drain(ctx, events, label="profiled", profile_to=raw)
            profile = summarise(raw) if raw.exists() else None
            if profile is None:
                missing.append("profile (py-spy wrote nothing; ptrace not permitted?)")
            else:
                profile["run"] = result.to_json()
                say(f"profile: {profile['samples']} samples")
    return profile


def _line(result: DrainResult, run: int) -> str:
    verdict = "" if result.valid else f" INVALID: {'; '.join(result.problems[:3])}"
    return (
        f"run {run} {result.contestant}: {result.events_per_s:,.0f} events/s, "
        f"{result.cpu_us_per_event:,.0f} µs CPU/event, "
        f"peak RSS {result.peak_rss_kb / 1024:.0f} MB, "
        f"load {result.details.get('loadavg_1min', 0):.2f}" + verdict
    )


if __name__ == "__main__":
    sys.exit(main())
