"""The last ~15 minutes of a worker, kept in memory for the status page's charts.

Every lag sample (api.status, every 5 s) also takes one ``Sample`` of the worker's own counters:
records consumed, posted, rejected, dead letters by reason, consumer lag by topic and the
record-to-posting latency histogram. The charts are differences between consecutive samples, so
they need no Prometheus; they start empty when the worker starts, like its counters. At one
sample per 5 s the window holds 181 samples of a few hundred bytes each.

Pure: no faust, no I/O; ``take_sample`` only reads a prometheus-client registry.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

WINDOW_S = 15 * 60.0
SAMPLE_INTERVAL_S = 5.0
# The hub's own latency (from publication), not the event's business age: the demo's events
# are dated in 2024, and an upstream's late event is not the hub's delay.
LATENCY_METRIC = "fin_record_to_posting_seconds"


@dataclass(frozen=True)
class Sample:
    """The worker's counters at one moment (wall-clock seconds), cumulative since its start."""

    at_s: float
    consumed: float
    posted: float
    rejected: float
    dead_letters_by_reason: Mapping[str, float]
    lag_by_topic: Mapping[str, int]
    latency_buckets: tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count)


@dataclass(frozen=True)
class Series:
    """One line of a chart: (wall-clock seconds, value) points, oldest first."""

    name: str
    points: tuple[tuple[float, float], ...]


def _sum_of(registry: CollectorRegistry, metric: str, label: str | None = None) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric:
                sums[sample.labels.get(label, "") if label else ""] += sample.value
    return dict(sums)


def take_sample(
    registry: CollectorRegistry, lags: Mapping[tuple[str, int], int], at_s: float
) -> Sample:
    lag_by_topic: dict[str, int] = defaultdict(int)
    for (topic, _), lag in lags.items():
        lag_by_topic[topic] += lag
    buckets = _sum_of(registry, f"{LATENCY_METRIC}_bucket", "le")
    return Sample(
        at_s=at_s,
        consumed=sum(_sum_of(registry, "fin_events_consumed_total").values()),
        posted=sum(_sum_of(registry, "fin_events_posted_total").values()),
        rejected=sum(_sum_of(registry, "fin_events_rejected_total").values()),
        dead_letters_by_reason=_sum_of(registry, "fin_dead_letters_total", "reason"),
        lag_by_topic=dict(lag_by_topic),
        latency_buckets=tuple(sorted((float(le), count) for le, count in buckets.items())),
    )


class History:
    """Samples of the last ``window_s`` seconds, oldest first."""

    def __init__(self, window_s: float = WINDOW_S, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        assert window_s > 0 and interval_s > 0, "window and interval must be positive"
        self.window_s = window_s
        self._samples: deque[Sample] = deque(maxlen=math.ceil(window_s / interval_s) + 1)

    def record(self, sample: Sample) -> None:
        self._samples.append(sample)

    def samples(self) -> list[Sample]:
        if not self._samples:
            return []
        newest = self._samples[-1].at_s
        return [sample for sample in self._samples if sample.at_s >= newest - self.window_s]


def _pairs(samples: Sequence[Sample]) -> Iterable[tuple[Sample, Sample, float]]:
    for before, after in itertools.pairwise(samples):
        elapsed_s = after.at_s - before.at_s
        if elapsed_s > 0:
            yield before, after, elapsed_s


def throughput(samples: Sequence[Sample]) -> list[Series]:
    """Records in, posted and rejected per second, between consecutive samples."""
    lines: dict[str, list[tuple[float, float]]] = {"in": [], "posted": [], "rejected": []}
    for before, after, elapsed_s in _pairs(samples):
        lines["in"].append((after.at_s, max(0.0, after.consumed - before.consumed) / elapsed_s))
        lines["posted"].append((after.at_s, max(0.0, after.posted - before.posted) / elapsed_s))
        lines["rejected"].append(
            (after.at_s, max(0.0, after.rejected - before.rejected) / elapsed_s)
        )
    return [Series(name, tuple(points)) for name, points in lines.items()]


def lag(samples: Sequence[Sample]) -> list[Series]:
    """Consumer lag per topic (its partitions summed), one line per topic ever seen."""
    topics = sorted({topic for sample in samples for topic in sample.lag_by_topic})
    return [
        Series(
            topic,
            tuple(
                (sample.at_s, float(sample.lag_by_topic[topic]))
                for sample in samples
                if topic in sample.lag_by_topic
            ),
        )
        for topic in topics
    ]


def dead_letters(samples: Sequence[Sample]) -> list[Series]:
    """Dead letters per minute by reason; only reasons that had one in the window."""
    reasons = sorted(
        {
            reason
            for before, after, _ in _pairs(samples)
            for reason, count in after.dead_letters_by_reason.items()
            if count > before.dead_letters_by_reason.get(reason, 0.0)
        }
    )
    return [
        Series(
            reason,
            tuple(
                (
                    after.at_s,
                    60.0
                    * max(
                        0.0,
                        after.dead_letters_by_reason.get(reason, 0.0)
                        - before.dead_letters_by_reason.get(reason, 0.0),
                    )
                    / elapsed_s,
                )
                for before, after, elapsed_s in _pairs(samples)
            ),
        )
        for reason in reasons
    ]


def histogram_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' estimate: linear within the bucket holding the rank; None without data.

    ``buckets`` are (upper bound, cumulative count) sorted by bound, the last one +Inf. A rank in
    the +Inf bucket answers the highest finite bound, as Prometheus does.
    """
    assert 0.0 <= quantile <= 1.0, "a quantile is between 0 and 1"
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def latency(samples: Sequence[Sample], quantiles: Sequence[float] = (0.5, 0.99)) -> list[Series]:
    """Event-to-posting latency quantiles in seconds, per interval that posted anything.

    The histogram's last finite bucket is an hour: an event older than that (a backfill, the
    demo's 2024 dates) shows as 3,600 s, as Prometheus' ``histogram_quantile`` would say.
    """
    lines: dict[float, list[tuple[float, float]]] = {quantile: [] for quantile in quantiles}
    for before, after, _ in _pairs(samples):
        earlier = dict(before.latency_buckets)
        delta = tuple(
            (bound, max(0.0, count - earlier.get(bound, 0.0)))
            for bound, count in after.latency_buckets
        )
        for quantile in quantiles:
            seconds = histogram_quantile(quantile, delta)
            if seconds is not None:
                lines[quantile].append((after.at_s, seconds))
    return [Series(f"p{quantile * 100:g}", tuple(points)) for quantile, points in lines.items()]
