"""Consumer lag and the offset-commit stall watch: the runtime's view of its own partitions.

Every few seconds (``FIN_LAG_SAMPLE_INTERVAL_S``, 5 by default) each worker samples, for the
partitions it owns, the broker's end offset minus the group's committed offset, and watches
whether each committed offset still moves (``streams.faust_patches.commit_guard``'s stall
watch: a stalled commit is logged, the broker's committed offset adopted when faust's fell
behind, a hole at a partition's head read again). This is the only place outside
``streams/faust_patches`` that touches faust's consumer; REST (``api/``) reads what it found
through ``LagWatch``'s read-only accessors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.admin import group_committed_offsets
from streams.faust_patches.commit_guard import (
    CommitWatch,
    adopt_broker_offsets,
    holes_at_head,
    reread_holes,
)
from streams.hub import Hub

log = logging.getLogger(__name__)

CONSUMED_METRIC = "fin_events_consumed_total"

# (contract topic name, partition) -> records behind.
Lags = Mapping[tuple[str, int], int]
LagListener = Callable[[Lags], None]


@dataclass
class Throughput:
    """Records consumed per second between the last two samples of the consumed counter."""

    previous: tuple[float, float] | None = None  # (monotonic seconds, records consumed)
    per_second: float = 0.0

    def sample(self, consumed_total: float, now_s: float) -> None:
        if self.previous is not None:
            elapsed_s = now_s - self.previous[0]
            if elapsed_s > 0:
                self.per_second = max(0.0, (consumed_total - self.previous[1]) / elapsed_s)
        self.previous = (now_s, consumed_total)


def metric_totals(registry: CollectorRegistry, metric: str, label: str) -> dict[str, float]:
    """The samples of ``metric`` summed per value of ``label``."""
    out: dict[str, float] = defaultdict(float)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric:
                out[sample.labels.get(label, "")] += sample.value
    return dict(out)


def consumed_total(registry: CollectorRegistry) -> float:
    return sum(metric_totals(registry, CONSUMED_METRIC, "topic").values())


async def sample_lag(hub: Hub) -> dict[tuple[str, int], int]:
    """End offset minus committed offset for every source/internal partition this worker owns."""
    consumer = hub.app.consumer
    ours = [tp for tp in consumer.assignment() if tp.topic in hub.contract_topic_of]
    if not ours:
        return {}
    ends = await consumer.highwaters(*ours)
    starts = await consumer.earliest_offsets(*ours)
    # faust keeps no public view of committed offsets
    committed_by_tp = consumer._committed_offset  # type: ignore[attr-defined]
    lags: dict[tuple[str, int], int] = {}
    for tp in ours:
        committed = committed_by_tp.get(tp)
        position = committed if committed is not None else starts.get(tp, 0)
        lag = max(0, ends.get(tp, 0) - position)
        contract = hub.contract_topic_of[tp.topic]
        lags[(contract, tp.partition)] = lag
        hub.metrics.consumer_lag.labels(contract, str(tp.partition)).set(lag)
    # Partitions that moved to another worker stop being reported here.
    for labels in list(hub.metrics.consumer_lag._metrics):
        topic, partition = labels
        if (topic, int(partition)) not in lags:
            hub.metrics.consumer_lag.remove(topic, partition)
    return lags


@dataclass(frozen=True)
class KeyPosition:
    """Where a key's records go in a contract topic, and how far this worker has read there."""

    partition: int
    committed_offset: int | None  # faust's committed offset on this worker (None: not ours)
    lag: int | None  # at the last sample (None: not sampled, or not this worker's)


class LagWatch:
    """The lag sampler and stall watch of one worker, and the read-only view REST gets of them."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._lags: dict[tuple[str, int], int] = {}
        self._listeners: list[LagListener] = []
        self.throughput = Throughput()
        self.commit_watch = CommitWatch()

    @property
    def lags(self) -> Lags:
        """The last sample (a read-only view; replaced whole by each sample)."""
        return MappingProxyType(self._lags)

    def on_sample(self, listener: LagListener) -> None:
        """Call ``listener`` with every new sample (the status page keeps a history of them)."""
        self._listeners.append(listener)

    def position(self, contract_topic: str, key: bytes) -> KeyPosition:
        """The partition of ``key`` in ``contract_topic``, its committed offset and its lag."""
        app: faust.App = self._hub.app
        topic_name = self._hub.settings.topic(contract_topic)
        partition = app.producer.key_partition(topic_name, key).partition
        committed = app.consumer._committed_offset.get(  # type: ignore[attr-defined]
            TP(topic_name, partition)
        )
        return KeyPosition(partition, committed, self._lags.get((contract_topic, partition)))

    async def sample(self) -> None:
        """One run of the timer: throughput, the stall watch, then a new lag sample."""
        hub = self._hub
        self.throughput.sample(consumed_total(hub.metrics.registry), time.monotonic())
        await self._watch_commits()
        try:
            sampled = await sample_lag(hub)
        except Exception:
            self._failed("lag_sampler")
            log.exception("consumer lag could not be sampled")
            return
        # Replaced in one step after the await: a page rendered meanwhile sees the old sample,
        # never an empty table.
        self._lags.clear()
        self._lags.update(sampled)
        for listener in self._listeners:
            listener(self.lags)

    async def _watch_commits(self) -> None:
        hub = self._hub
        consumer = hub.app.consumer
        behind = {
            TP(hub.settings.topic(topic), partition): lag
            for (topic, partition), lag in self._lags.items()
        }
        stalled = self.commit_watch.stalled(consumer, time.monotonic(), behind)
        if not stalled:
            return
        for _, report in stalled:
            log.warning("offset commit stalled: %s", report)
        try:
            broker = await asyncio.get_running_loop().run_in_executor(
                None, group_committed_offsets, hub.settings
            )
        except Exception:
            self._failed("lag_sampler")
            log.exception("committed offsets could not be read from the broker")
        else:
            healed = adopt_broker_offsets(consumer, [tp for tp, _ in stalled], broker)
            for change in healed:
                log.warning("committed offset taken from the broker: %s", change)
        holes = holes_at_head(consumer, [tp for tp, _ in stalled])
        try:
            for change in await reread_holes(consumer, holes):
                # Should not happen since keep_queued_records_on_resume; a delta re-read
                # after later ones were applied is refused by its table's position guard.
                log.error(
                    "re-reading a partition with records never processed: %s; check "
                    "GET /api/v1/fin/ledger/integrity",
                    change,
                )
        except Exception:  # e.g. the partition was revoked meanwhile; the watch runs again
            self._failed("lag_sampler")
            log.exception("re-reading %s failed", sorted(holes))

    def _failed(self, timer: str) -> None:
        self._hub.metrics.timer_failures.labels(timer).inc()


def watch_lag(hub: Hub) -> LagWatch:
    """Make the worker's ``LagWatch`` and run its sampler every ``lag_sample_interval_s``."""
    watch = LagWatch(hub)

    @hub.app.timer(interval=hub.settings.lag_sample_interval_s)  # type: ignore[untyped-decorator]
    async def lag_sampler() -> None:
        await watch.sample()

    return watch
