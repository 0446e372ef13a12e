"""Contestant (c): the broker's own limit, measured by Kafka's perf-test tools (same jars).

Records of the benchmark events' mean encoded size, acks=all, 4 partitions; the producer tool
writes them as fast as it can, then the consumer tool reads them back. These move bytes only,
no decoding or processing, so they bound what any consumer of this broker can do here.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from bench.context import PARTITIONS, ROOT, Context

PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
)


def _tool(name: str, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "ops" / "kafka.sh"), "tool", name, *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )


def run(ctx: Context, *, records: int, record_size: int) -> dict[str, Any]:
    prefix = ctx.new_prefix("perf")
    topic = prefix + "perf"
    ctx.kafka.create_topics([topic], PARTITIONS)
    result: dict[str, Any] = {"records": records, "record_size": record_size}
    try:
        started = time.monotonic()
        produced = _tool(
            "kafka-producer-perf-test",
            "--bootstrap-server",
            ctx.bootstrap,
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--command-property",
            "acks=all",
        )
        result["producer_wall_s"] = round(time.monotonic() - started, 2)
        matches = list(PRODUCER_LINE.finditer(produced.stdout))
        if produced.returncode != 0 or not matches:
            result["producer_error"] = (produced.stdout + produced.stderr)[-800:]
        else:
            final = matches[-1]
            result["producer_records_per_s"] = float(final["rate"])
            result["producer_mb_per_s"] = float(final["mb"])
            result["producer_avg_latency_ms"] = float(final["avg"])
        started = time.monotonic()
        consumed = _tool(
            "kafka-consumer-perf-test",
            "--bootstrap-server",
            ctx.bootstrap,
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--group",
            "bench-perf-" + prefix.rstrip("."),
            "--timeout",
            "60000",
        )
        result["consumer_wall_s"] = round(time.monotonic() - started, 2)
        parsed = _consumer_stats(consumed.stdout)
        if consumed.returncode != 0 or parsed is None:
            result["consumer_error"] = (consumed.stdout + consumed.stderr)[-800:]
        else:
            result.update(parsed)
    finally:
        ctx.cleanup(prefix)
    return result


def _consumer_stats(stdout: str) -> dict[str, Any] | None:
    """The CSV line under the header: ..., data.consumed.in.nMsg, nMsg.sec, ..., fetch.nMsg.sec."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("start.time") and index + 1 < len(lines):
            header = [name.strip() for name in line.split(",")]
            values = [value.strip() for value in lines[index + 1].split(",")]
            row = dict(zip(header, values, strict=False))
            try:
                return {
                    "consumer_records": int(float(row["data.consumed.in.nMsg"])),
                    "consumer_records_per_s": float(row["nMsg.sec"]),
                    "consumer_fetch_records_per_s": float(row["fetch.nMsg.sec"]),
                    "consumer_mb_per_s": float(row["MB.sec"]),
                }
            except (KeyError, ValueError):
                return None
    return None
