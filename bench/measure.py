"""Result records of the benchmark and the statistics over repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DrainResult:
    """One contestant draining N preloaded events once."""

    contestant: str
    events: int
    seconds: float  # start of consumption .. last output on the broker
    cpu_s: float  # process CPU time over the same span
    peak_rss_kb: int
    valid: bool
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s * 1e6 / self.events if self.events else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "events_per_s": round(self.events_per_s, 1),
            "cpu_us_per_event": round(self.cpu_us_per_event, 1),
        }


@dataclass
class LatencyResult:
    contestant: str
    load: float  # share of the contestant's own median drain throughput
    rate: float  # events per second offered
    events: int
    entries_measured: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    generator_late_p99_ms: float  # how late the open-loop generator itself sent (p99)
    valid: bool
    problems: list[str] = field(default_factory=list)
    # CPU used from the load's first send to its last entry, in cores (None: not measured):
    # the contestant's processes, and the local broker beside them on the same machine.
    contestant_cpu_cores: float | None = None
    broker_cpu_cores: float | None = None
    # The entries slower than 100 ms (count, share, the seconds of the load they were sent in)
    # and the local broker's GC pauses during the load (count, total_ms, max_ms, max_kind;
    # None: no GC log found): bench/latency.py, bench/gclog.py.
    slow: dict[str, Any] | None = None
    broker_gc: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    count: int

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.count}


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))
