"""The cores a contestant and the broker used during a latency load (bench/latency.py
``CpuWindow``) and their line in the report."""

from __future__ import annotations

import time

from bench import procstat
from bench.latency import CpuWindow
from bench.measure import LatencyResult
from bench.report import latency_cost_line, latency_cpu_line


def result(
    contestant: str, load: float, cores: float | None, broker: float | None
) -> LatencyResult:
    return LatencyResult(
        contestant=contestant,
        load=load,
        rate=100.0,
        events=10,
        entries_measured=10,
        p50_ms=1.0,
        p99_ms=2.0,
        p999_ms=2.0,
        max_ms=2.0,
        generator_late_p99_ms=0.1,
        valid=True,
        contestant_cpu_cores=cores,
        broker_cpu_cores=broker,
    )


def test_cores_are_cpu_seconds_over_the_wall_time_of_the_window(monkeypatch) -> None:
    used = iter([10.0, 10.5])  # the contestant's CPU seconds at the start and at the end
    broker = iter([100.0, 100.25])
    monkeypatch.setattr(procstat, "cpu_seconds_or_none", lambda pid: next(broker))
    window = CpuWindow(lambda: next(used), broker=1234)
    time.sleep(0.5)
    contestant, broker_cores = window.cores()
    assert contestant is not None and 0.6 <= contestant <= 1.0  # 0.5 s of CPU in >= 0.5 s
    assert broker_cores is not None and 0.3 <= broker_cores <= 0.5


def test_nothing_is_made_up_when_nothing_was_measured(monkeypatch) -> None:
    monkeypatch.setattr(procstat, "cpu_seconds_or_none", lambda pid: None)
    assert CpuWindow(None, broker=None).cores() == (None, None)
    assert latency_cpu_line([result("hub", 0.5, None, None)], 2) is None


def test_the_report_names_each_load_with_both_figures() -> None:
    line = latency_cpu_line(
        [result("hub", 0.5, 0.91, 0.33), result("baseline", 0.8, 0.97, None)], 2
    )
    assert line is not None
    assert "the machine has 2" in line
    assert "hub 50% 0.91 + broker 0.33" in line
    assert "baseline 80% 0.97 + broker -" in line


def test_cpu_per_event_at_a_load_is_set_against_the_drains() -> None:
    # 0.9 core at 100 events/s: 9,000 µs per event, 2x a drain's 4,500.
    summary = {"hub": {"cpu_us_per_event": {"median": 4500.0}}, "baseline": {}}
    line = latency_cost_line(
        [result("hub", 0.5, 0.9, 0.3), result("baseline", 0.5, 0.8, 0.4)], summary
    )
    assert line == "CPU per event during each load: hub 50% 9,000 µs (2.00x its drain's)."


def test_no_cost_line_without_the_cores_or_a_drain() -> None:
    summary = {"hub": {"cpu_us_per_event": {"median": 4500.0}}}
    assert latency_cost_line([result("hub", 0.5, None, None)], summary) is None
    assert latency_cost_line([result("hub", 0.5, 0.9, None)], {"hub": {}}) is None
