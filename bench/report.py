"""The benchmark's results as JSON and as a Markdown table (``bench/results/latest.*``)."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench.measure import DrainResult, LatencyResult, spread


def summarise_drain(runs: Sequence[DrainResult]) -> dict[str, Any]:
    valid = [run for run in runs if run.valid]
    rate = spread([run.events_per_s for run in valid])
    cpu = spread([run.cpu_us_per_event for run in valid])
    rss = spread([run.peak_rss_kb / 1024 for run in valid])
    broker = spread(
        [
            run.details["broker_cpu_s"] * 1e6 / run.events
            for run in valid
            if run.details.get("broker_cpu_s") is not None and run.events
        ]
    )
    return {
        "runs": len(runs),
        "valid_runs": len(valid),
        "events_per_s": rate.to_json() if rate else None,
        "cpu_us_per_event": cpu.to_json() if cpu else None,
        "broker_cpu_us_per_event": broker.to_json() if broker else None,
        "peak_rss_mb": rss.to_json() if rss else None,
        "stage_us_per_event": stage_medians(valid),
    }


def stage_medians(runs: Sequence[DrainResult]) -> dict[str, float]:
    """Median µs per input event of every stage over ``runs`` (in the order first seen)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for stage, value in run.details.get("stage_us_per_event", {}).items():
            values.setdefault(stage, []).append(value)
    return {stage: round(statistics.median(found), 1) for stage, found in values.items()}


def contestants(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(summary key, table label) of every contestant of a run, in table order."""
    runtime = config.get("runtime", "classic")
    found = [("hub", f"hub: 1 worker, {runtime} runtime, RocksDB, defaults")]
    if config.get("two_workers"):
        found.append(("hub2", f"hub: 2 workers, {runtime} runtime, one consumer group"))
    found.append(("baseline", "bare aiokafka loop"))
    return found


def ratio(
    numerator: Mapping[str, Any] | None, denominator: Mapping[str, Any] | None
) -> float | None:
    """Median events/s of one summary over another's (None unless both have valid runs)."""
    top = (numerator or {}).get("events_per_s")
    bottom = (denominator or {}).get("events_per_s")
    if not top or not bottom or not bottom["median"]:
        return None
    return round(float(top["median"]) / float(bottom["median"]), 4)


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def _rate_cell(summary: Mapping[str, Any]) -> str:
    rate = summary.get("events_per_s")
    if not rate:
        return "INVALID"
    return f"{_fmt(rate['median'])} ({_fmt(rate['min'])}-{_fmt(rate['max'])})"


def _latency_cell(results: Sequence[LatencyResult], contestant: str, load: float) -> str:
    for result in results:
        if result.contestant == contestant and abs(result.load - load) < 1e-9:
            if not result.valid:
                return "INVALID"
            return (
                f"{_fmt(result.p50_ms)} / {_fmt(result.p99_ms)} / {_fmt(result.p999_ms)} "
                f"@ {_fmt(result.rate)}/s"
            )
    return "not run"


def markdown(data: Mapping[str, Any], latency: Sequence[LatencyResult]) -> str:
    config = data["config"]
    machine = data["machine"]
    summary = data["summary"]
    lines = [
        "# FIN benchmark — latest run",
        "",
        f"`{data['command']}` — {data['started_at']}, {data['duration_s']:.0f} s in all.",
        "",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gb']:.0f} GB RAM, Python {machine['python']}, {machine['kafka']}, "
        f"registry {machine['registry']}. Load average {machine['loadavg_start']} at start, "
        f"{machine['loadavg_end']} at end (other work on the machine makes figures noisy).",
        "",
        f"{config['events']:,} events (seed {config['seed']}, mean value "
        f"{config['mean_value_bytes']:.0f} bytes, Avro in the Confluent wire format, "
        f"{config['partitions']} partitions per topic), {config['runs']} alternating runs per "
        "contestant. Drain throughput is the median of the valid runs, (min-max).",
        "",
        "| contestant | drain events/s | CPU µs/event | peak RSS MB | valid runs "
        "| latency p50 / p99 / p99.9 ms at 50% | at 80% |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in contestants(config):
        s = summary[name]
        cpu = s.get("cpu_us_per_event")
        rss = s.get("peak_rss_mb")
        lines.append(
            f"| {label} | {_rate_cell(s)} | {_fmt(cpu['median'] if cpu else None)} "
            f"| {_fmt(rss['median'] if rss else None)} | {s['valid_runs']}/{s['runs']} "
            f"| {_latency_cell(latency, name, 0.5)} | {_latency_cell(latency, name, 0.8)} |"
        )
    broker = data.get("broker") or {}
    if broker.get("producer_records_per_s"):
        lines.append(
            f"| broker (Kafka perf tools, {broker['record_size']} B records) "
            f"| produce {_fmt(broker.get('producer_records_per_s'))}, "
            f"consume {_fmt(broker.get('consumer_records_per_s'))} | - | - | n/a | - | - |"
        )
    lines.append("")
    if latency:
        lateness = ", ".join(
            f"{r.contestant} {r.load:.0%} {_fmt(r.generator_late_p99_ms, 1)} ms" for r in latency
        )
        lines += [
            "Latency = broker append time of the journal entry - scheduled send time of its "
            f"event; the open-loop generator's own p99 lateness: {lateness}.",
        ]
        cores = latency_cpu_line(latency, (data.get("machine") or {}).get("cpus"))
        if cores:
            lines.append(cores)
        per_event = latency_cost_line(latency, summary)
        if per_event:
            lines.append(per_event)
        tail = latency_tail_line(latency)
        if tail:
            lines.append(tail)
        lines.append("")
    lines += summary_lines(data)
    stages = stage_table(data)
    if stages:
        lines += ["", *stages, ""]
    amplification = write_amplification(data)
    if amplification:
        lines.append(amplification)
    lines += recovery_lines(data)
    profile = data.get("profile")
    if profile and profile.get("top_self"):
        lines += [
            "",
            f"Hub profile (py-spy, {profile['samples']:,} non-idle samples of one extra drain "
            "run, not counted). Self time by package: "
            + ", ".join(
                f"{row['frame']} {row['share']:.0%}" for row in profile.get("self_by_package", [])
            )
            + ".",
            "",
            "| top frames by self time | share | top frames by total time | share |",
            "|---|---|---|---|",
        ]
        for own, total in zip(profile["top_self"], profile["top_total"], strict=False):
            lines.append(
                f"| `{own['frame']}` | {own['share']:.1%} "
                f"| `{total['frame']}` | {total['share']:.1%} |"
            )
    invalid = [
        f"- {run['contestant']} run {run['details'].get('label')}: {'; '.join(run['problems'][:3])}"
        for run in data["drain"]
        if not run["valid"]
    ]
    invalid += [
        f"- latency {r.contestant} at {r.load:.0%}: {'; '.join(r.problems[:3])}"
        for r in latency
        if not r.valid
    ]
    if invalid:
        lines += ["", "INVALID (output differs from the reference ledger; not counted):", *invalid]
    if data.get("missing"):
        lines += ["", "Not measured in this run:", *(f"- {item}" for item in data["missing"])]
    lines += ["", "How each figure is taken: see `bench/__main__.py`.", ""]
    return "\n".join(lines)


def recovery_lines(data: Mapping[str, Any]) -> list[str]:
    """The report's lines on the table recovery after a wipe (none if it was not measured)."""
    lines: list[str] = []
    recovery = data.get("recovery")
    if not recovery:
        return lines
    lines.append(
        f"Table recovery from changelogs: {recovery['changelog_records']:,} records "
        f"({recovery['changelog_topics']} changelog topics) restored in "
        f"{recovery['recovery_seconds']:.2f} s by {recovery.get('restored_by', 'faust')} "
        "(its log: restoring .. done reading) = "
        f"{_fmt(recovery['records_per_s'])} records/s, "
        f"{_fmt(recovery['seconds_per_million_records'], 1)} s per million records; the "
        f"restarted worker answered /ready {recovery['seconds_to_ready_wiped']:.1f} s after "
        f"its start with the data dir wiped, {recovery['seconds_to_ready_intact']:.1f} s "
        "with it intact."
        + (
            f" Its entries index (batched runtime: a copy of the ledger topic, "
            f"{recovery['ledger_records']:,} records, rebuilt after /ready) served the last "
            f"entry of every ledger partition {recovery['seconds_to_entries_index_wiped']:.1f}"
            " s after the wiped start."
            if recovery.get("seconds_to_entries_index_wiped") is not None
            else ""
        )
        + (
            f" Every table row ({recovery['rows_checked']:,}) and persisted offset checked "
            "after the rebuild."
            if recovery.get("rows_checked")
            else ""
        )
        + "".join(f" PROBLEM: {problem}." for problem in recovery.get("problems", []))
    )
    scaled = recovery.get("at_scale")
    if scaled:
        lines.append(
            f"Table recovery at scale (changelogs grown to {scaled['changelog_records']:,} "
            "records by appending each partition's own records again; the rebuilt tables "
            f"must equal the drained ones): restored in {scaled['recovery_seconds']:.2f} s "
            f"by {scaled['restored_by']} = {_fmt(scaled['records_per_s'])} records/s"
            + rows_clause(scaled)
            + "; "
            f"/ready {scaled['seconds_to_ready_wiped']:.1f} s after the wiped start"
            + quiet_broker_clause(scaled)
            + f"; {scaled['rows_checked']:,} rows checked"
            + (
                "".join(f"; PROBLEM: {problem}" for problem in scaled["problems"])
                if scaled["problems"]
                else ", all identical, persisted offsets at the end of every changelog"
            )
            + "."
        )
    return lines


def rows_clause(scaled: Mapping[str, Any]) -> str:
    """The table rows those records wrote (packed records hold many; absent in older results)."""
    rows = scaled.get("changelog_rows")
    if not rows:
        return ""
    return f" ({rows:,} table rows, packs expanded: {_fmt(scaled['rows_per_s'])} rows/s)"


def quiet_broker_clause(scaled: Mapping[str, Any]) -> str:
    """How busy the broker was around the restore at scale (absent in older results)."""
    during = scaled.get("broker_cores_during")
    if during is None:
        return ""
    return (
        f" (started after waiting {scaled.get('quiet_wait_s', 0.0):.1f} s for the broker to go "
        f"quiet after the append: {scaled.get('broker_cores_before')} core in its last second; "
        f"the broker used {during} core during the restore)"
    )


def summary_lines(data: Mapping[str, Any]) -> list[str]:
    """The ratios the issue's targets are stated in (issue 13)."""
    summary = data["summary"]
    to_baseline = summary.get("hub_to_baseline")
    lines = [
        f"Hub / baseline drain throughput: **{_fmt(to_baseline, 3) if to_baseline else 'n/a'}**."
    ]
    if data["config"].get("two_workers"):
        two = summary.get("hub2", {}).get("events_per_s")
        scale = summary.get("two_workers_to_one")
        lines.append(
            f"Two workers: {_fmt(two['median']) if two else 'n/a'} events/s; two workers / one "
            f"worker drain throughput: **{_fmt(scale, 2) if scale else 'n/a'}** (target ≥ 1.5)."
        )
        ceiling = cpu_ceiling(summary.get("hub", {}), os.cpu_count() or 1)
        if ceiling is not None:
            lines.append(ceiling)
    return lines


def cpu_ceiling(hub: Mapping[str, Any], cpus: int) -> str | None:
    """What this machine's CPUs allow any number of workers, from one worker's drain: the
    worker's and the broker's CPU per event (the load generator and the bench left out)."""
    worker = (hub.get("cpu_us_per_event") or {}).get("median")
    broker = (hub.get("broker_cpu_us_per_event") or {}).get("median")
    rate = (hub.get("events_per_s") or {}).get("median")
    if not worker or broker is None or not rate:
        return None
    ceiling = cpus * 1e6 / (worker + broker)
    return (
        f"During one worker's drains the broker used {_fmt(broker)} µs CPU per event beside the "
        f"worker's {_fmt(worker)}: {cpus} CPUs hold at most {_fmt(ceiling)} events/s however "
        f"many workers share them, {_fmt(ceiling / rate, 2)}x one worker's {_fmt(rate)}."
    )


def stage_table(data: Mapping[str, Any]) -> list[str]:
    """Per-stage µs per input event, hub and baseline side by side (medians of valid runs).

    The hub's stages are its own ``fin_processing_seconds`` histogram (time inside FIN's code
    per record, not faust's consume, commit or changelog work); the baseline's are its own
    perf_counter_ns timings. The last row is the whole process's CPU per event, for the share
    of the work that falls outside every stage."""
    summary = data["summary"]
    two = bool(data["config"].get("two_workers"))
    hub = summary.get("hub", {}).get("stage_us_per_event") or {}
    hub2 = summary.get("hub2", {}).get("stage_us_per_event") or {} if two else {}
    base = summary.get("baseline", {}).get("stage_us_per_event") or {}
    if not hub and not base and not hub2:
        return []
    hub_stages = list(hub) + [stage for stage in hub2 if stage not in hub]
    header = "| hub stage | 1 worker µs/event |" + (" 2 workers µs/event |" if two else "")
    lines = [
        header + " baseline stage | µs/event |",
        "|---|---|" + ("---|" if two else "") + "---|---|",
    ]

    def cells(name: str | None, *columns: Mapping[str, float]) -> str:
        if name is None:
            return " |" * (1 + len(columns))
        return f" {name} |" + "".join(f" {_fmt(column.get(name), 1)} |" for column in columns)

    hub_columns = (hub, hub2) if two else (hub,)
    for hub_stage, base_stage in zip_longest(hub_stages, list(base)):
        lines.append("|" + cells(hub_stage, *hub_columns) + cells(base_stage, base))

    def cpu(name: str) -> float | None:
        found = summary.get(name, {}).get("cpu_us_per_event")
        return found["median"] if found else None

    totals = [sum(column.values()) if column else None for column in hub_columns]
    lines.append(
        "| **sum of stages** |"
        + "".join(f" {_fmt(total, 1)} |" for total in totals)
        + f" **sum of stages** | {_fmt(sum(base.values()) if base else None, 1)} |"
    )
    lines.append(
        "| process CPU |"
        + "".join(f" {_fmt(cpu(name), 1)} |" for name in (("hub", "hub2") if two else ("hub",)))
        + f" process CPU | {_fmt(cpu('baseline'), 1)} |"
    )
    return [
        "Per stage, µs per input event (a stage's whole time / N). Hub: its "
        "`fin_processing_seconds` histogram (FIN's code per record inside faust's agents); "
        "baseline: its own `perf_counter_ns` timings. Process CPU covers everything else too.",
        "",
        *lines,
    ]


def latency_cpu_line(latency: Sequence[LatencyResult], cpus: int | None) -> str | None:
    """The cores the contestant and the broker used during each latency load, if measured."""
    cores = ", ".join(
        f"{r.contestant} {r.load:.0%} {_fmt(r.contestant_cpu_cores, 2)} + broker "
        f"{_fmt(r.broker_cpu_cores, 2)}"
        for r in latency
        if r.contestant_cpu_cores is not None or r.broker_cpu_cores is not None
    )
    if not cores:
        return None
    return (
        "CPU in cores during each load (its first send to its last entry; the machine has "
        f"{_fmt(cpus)}): {cores}."
    )


def latency_tail_line(latency: Sequence[LatencyResult]) -> str | None:
    """Where each load's slow entries sat and what the broker's collector paused meanwhile: a
    tail in one or two seconds beside a long broker pause is the broker's, not the worker's."""
    parts = []
    for r in latency:
        if r.slow is None and r.broker_gc is None:
            continue
        part = f"{r.contestant} {r.load:.0%}: "
        if r.slow is not None:
            seconds = r.slow["seconds"]
            part += (
                f"{r.slow['count']:,} over {r.slow['over_ms']:.0f} ms "
                f"({r.slow['share']:.1%}) in {len(seconds)} s"
                + (f" ({_seconds_list(seconds)})" if seconds else "")
            )
        if r.broker_gc is not None:
            gc = r.broker_gc
            part += f"; broker GC {gc['count']} pauses, {_fmt(gc['total_ms'])} ms in all" + (
                f", longest {_fmt(gc['max_ms'])} ms ({gc['max_kind']})" if gc["count"] else ""
            )
        parts.append(part)
    if not parts:
        return None
    return (
        "The tail of each load (entries over 100 ms, the seconds of the load whose events they "
        "were) and the local broker's GC pauses during it (its GC log): " + "; ".join(parts) + "."
    )


def _seconds_list(seconds: Sequence[int], shown: int = 8) -> str:
    text = ", ".join(f"s{second}" for second in seconds[:shown])
    return text + (f", ... {len(seconds) - shown} more" if len(seconds) > shown else "")


def latency_cost_line(latency: Sequence[LatencyResult], summary: Mapping[str, Any]) -> str | None:
    """CPU per event during each latency load against the same contestant's drain: a load is
    served in batches of what arrived meanwhile, a drain in full batches, so the per-batch
    costs weigh more per event; at 50 % of the drain rate a ratio of 2 means a busy core."""
    parts = []
    for r in latency:
        cpu = (summary.get(r.contestant) or {}).get("cpu_us_per_event")
        if r.contestant_cpu_cores is None or not r.rate or not cpu or not cpu.get("median"):
            continue
        at_load = r.contestant_cpu_cores * 1e6 / r.rate
        parts.append(
            f"{r.contestant} {r.load:.0%} {_fmt(at_load)} µs ({at_load / cpu['median']:.2f}x "
            "its drain's)"
        )
    if not parts:
        return None
    return "CPU per event during each load: " + ", ".join(parts) + "."


def write_amplification(data: Mapping[str, Any]) -> str | None:
    """Kafka records the hub wrote per input event, from its last valid drain run."""
    runs = [
        run
        for run in data["drain"]
        if run["contestant"] == "hub" and run["valid"] and run["details"].get("records_written")
    ]
    if not runs:
        return None
    run = runs[-1]
    written: Mapping[str, int] = run["details"]["records_written"]
    events = run["events"]
    total = sum(written.values())
    parts = ", ".join(
        f"{kind} {count / events:.2f}" for kind, count in sorted(written.items()) if count
    )
    return (
        f"Kafka records the hub wrote per input event: **{total / events:.2f}** ({parts}); "
        "the baseline writes the journal entries and alerts only."
    )


def write(directory: Path, data: Mapping[str, Any], latency: Sequence[LatencyResult]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    text = markdown(data, latency)
    (directory / "latest.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (directory / "latest.md").write_text(text)
    return text
