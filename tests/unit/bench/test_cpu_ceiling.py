"""The benchmark's CPU ceiling line: what the machine's CPUs allow any number of workers, from
one worker's drains (its CPU and the local broker's per event)."""

from __future__ import annotations

from bench.measure import DrainResult
from bench.report import cpu_ceiling, summarise_drain


def run(cpu_s: float, broker_cpu_s: float | None, *, valid: bool = True) -> DrainResult:
    return DrainResult(
        contestant="hub",
        events=1_000,
        seconds=1.0,
        cpu_s=cpu_s,
        peak_rss_kb=1024,
        valid=valid,
        details={"broker_cpu_s": broker_cpu_s},
    )


def test_the_ceiling_is_the_cpus_over_worker_and_broker_cpu_per_event() -> None:
    summary = summarise_drain([run(0.8, 0.2), run(0.8, 0.2), run(5.0, 5.0, valid=False)])
    assert summary["broker_cpu_us_per_event"]["median"] == 200.0
    line = cpu_ceiling(summary, cpus=2)
    assert line is not None
    # 2 CPUs / (800 + 200) µs per event = 2,000 events/s; one worker drained 1,000/s.
    assert "at most 2,000 events/s" in line and "2.00x one worker's 1,000" in line


def test_no_ceiling_without_the_brokers_cpu() -> None:
    summary = summarise_drain([run(0.8, None)])
    assert summary["broker_cpu_us_per_event"] is None
    assert cpu_ceiling(summary, cpus=2) is None
