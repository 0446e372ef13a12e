"""End-to-end latency under open-loop load, for any contestant.

A producer sends events at a fixed rate whatever the contestant does (open loop: a slow
consumer cannot slow the offered load down and hide its queueing). Each record's timestamp is
its *scheduled* send time; the ledger topic is stamped by the broker (LogAppendTime), so an
entry's latency is its append time minus the scheduled send time of its event, both read from
the records themselves. Loads are shares of the contestant's own median drain throughput, run
one after the other on the same process (the lower first), each drained before the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from confluent_kafka import Producer

from bench import gclog, procstat
from bench.context import Context
from bench.dataset import EncodedEvent
from bench.kafka_io import LOAD_PRODUCER_CONFIG
from bench.measure import LatencyResult, percentile
from settings import LEDGER_TOPIC

WARMUP_SECONDS = 3.0
# An entry later than this counts as slow in the tail report (the p99 target of issue 13).
SLOW_MS = 100.0
OPEN_LOOP_CONFIG = {**LOAD_PRODUCER_CONFIG, "linger.ms": 1}


def send_at_rate(
    bootstrap: str, prefix: str, events: Sequence[EncodedEvent], rate: float
) -> tuple[list[int], list[float]]:
    """Send ``events`` at ``rate`` per second: the scheduled send time (ms) of each, and how
    late (ms) the generator handed each to the client (it shares the machine's two cores)."""
    producer = Producer({"bootstrap.servers": bootstrap, **OPEN_LOOP_CONFIG})
    scheduled: list[int] = []
    lateness: list[float] = []
    start = time.time() + 0.05
    for index, event in enumerate(events):
        due = start + index / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        stamp = int(due * 1000)
        producer.produce(prefix + event.topic, value=event.value, key=event.key, timestamp=stamp)
        lateness.append(max(0.0, (time.time() - due) * 1000))
        producer.poll(0)
        scheduled.append(stamp)
    if producer.flush(60):
        raise RuntimeError("the open-loop producer could not deliver every record")
    return scheduled, lateness


def measure(
    ctx: Context,
    prefix: str,
    events: Sequence[EncodedEvent],
    *,
    contestant: str,
    max_rate: float,
    loads: Sequence[float],
    seconds: float,
    check_alive: Callable[[], None],
    warmup_seconds: float = WARMUP_SECONDS,
    cpu_seconds: Callable[[], float] | None = None,
) -> tuple[list[LatencyResult], int]:
    """Run each load for ``seconds`` against a contestant already consuming ``prefix``; the
    results and how many events of ``events`` (from the start) were sent. ``cpu_seconds``: the
    contestant's CPU so far, to report its cores (and the local broker's) during each load."""
    ledger_topic = prefix + LEDGER_TOPIC
    broker = procstat.broker_pid()
    gc_log = gclog.log_path_of(broker)
    plans: list[Plan] = []
    offset = 0
    entries_so_far = 0
    # A short unmeasured warm-up at the first load: first schema fetches, first batches.
    steps = [(loads[0], warmup_seconds, False)] if warmup_seconds > 0 else []
    steps += [(load, seconds, True) for load in loads]
    for load, duration, measured in steps:
        rate = max(1.0, max_rate * load)
        count = max(1, int(rate * duration))
        chunk = list(events[offset : offset + count])
        if len(chunk) < count:
            raise ValueError(f"latency needs {offset + count} events, there are {len(events)}")
        offset += count
        window = CpuWindow(cpu_seconds, broker)
        started = time.time()
        scheduled, lateness = send_at_rate(ctx.bootstrap, prefix, chunk, rate)
        entries_so_far += sum(1 for event in chunk if event.entry_id is not None)
        deadline = time.monotonic() + max(120.0, 10 * duration)
        while ctx.kafka.count(ledger_topic) < entries_so_far:
            check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{contestant} did not drain the {load:.0%} load in time")
            time.sleep(0.2)
        if measured:
            plans.append(
                Plan(load, rate, chunk, scheduled, lateness, window.cores(), started, time.time())
            )

    appended: dict[str, list[int]] = {}
    for key, stamp in ctx.kafka.read_keys_and_timestamps(ledger_topic):
        appended.setdefault(key.decode(), []).append(stamp)
    pauses = gclog.read(gc_log) if gc_log is not None else None
    results: list[LatencyResult] = []
    for plan in plans:
        load, rate, chunk, scheduled = plan.load, plan.rate, plan.chunk, plan.scheduled
        contestant_cores, broker_cores = plan.cores
        latencies: list[float] = []
        slow_at: list[int] = []
        problems: list[str] = []
        for event, sent in zip(chunk, scheduled, strict=True):
            if event.entry_id is None:
                continue
            stamps = appended.get(event.entry_id)
            if not stamps:
                problems.append(f"entry {event.entry_id} never appeared")
                continue
            if len(stamps) > 1:
                problems.append(f"entry {event.entry_id} appeared {len(stamps)} times")
            latency = float(min(stamps) - sent)
            latencies.append(latency)
            if latency > SLOW_MS:
                slow_at.append(sent)
        results.append(
            LatencyResult(
                contestant=contestant,
                load=load,
                rate=round(rate, 1),
                events=len(chunk),
                entries_measured=len(latencies),
                p50_ms=percentile(latencies, 0.50),
                p99_ms=percentile(latencies, 0.99),
                p999_ms=percentile(latencies, 0.999),
                max_ms=max(latencies, default=float("nan")),
                generator_late_p99_ms=round(percentile(plan.lateness, 0.99), 1),
                valid=not problems,
                problems=problems[:10],
                contestant_cpu_cores=contestant_cores,
                broker_cpu_cores=broker_cores,
                slow=slow_tail(slow_at, scheduled[0] if scheduled else 0, len(latencies)),
                broker_gc=(
                    gclog.between(pauses, plan.started, plan.ended).to_json()
                    if pauses is not None
                    else None
                ),
            )
        )
    return results, offset


class Plan(NamedTuple):
    """One measured load: what was sent when, and the window it took to drain."""

    load: float
    rate: float
    chunk: list[EncodedEvent]
    scheduled: list[int]
    lateness: list[float]
    cores: Cores
    started: float  # epoch seconds: before the first send
    ended: float  # ... and once its last entry was on the ledger topic


def slow_tail(slow_sent_ms: Sequence[int], first_ms: int, measured: int) -> dict[str, Any]:
    """Where the entries slower than ``SLOW_MS`` sit in the load: how many, their share, and
    the seconds of the load (counted from its first send) whose events they were. A tail in one
    or two seconds is an episode (a pause, a stall); spread over many, a busy worker."""
    seconds = sorted({(sent - first_ms) // 1000 for sent in slow_sent_ms})
    return {
        "over_ms": SLOW_MS,
        "first_sent_ms": first_ms,  # epoch ms: second 0 of the load
        "count": len(slow_sent_ms),
        "share": round(len(slow_sent_ms) / measured, 4) if measured else 0.0,
        "seconds": seconds,
    }


Cores = tuple[float | None, float | None]


class CpuWindow:
    """The CPU of the contestant and of the broker from now to ``cores()``, in cores."""

    def __init__(self, contestant: Callable[[], float] | None, broker: int | None) -> None:
        self._contestant = contestant
        self._broker = broker
        self._started = time.monotonic()
        self._contestant_start = contestant() if contestant is not None else None
        self._broker_start = procstat.cpu_seconds_or_none(broker)

    def cores(self) -> Cores:
        wall = time.monotonic() - self._started
        contestant = broker = None
        if self._contestant is not None and self._contestant_start is not None and wall > 0:
            contestant = round((self._contestant() - self._contestant_start) / wall, 2)
        broker_end = procstat.cpu_seconds_or_none(self._broker)
        if self._broker_start is not None and broker_end is not None and wall > 0:
            broker = round((broker_end - self._broker_start) / wall, 2)
        return contestant, broker


def events_needed(
    max_rate: float, loads: Sequence[float], seconds: float, warmup_seconds: float = WARMUP_SECONDS
) -> int:
    def count(load: float, duration: float) -> int:
        return max(1, int(max(1.0, max_rate * load) * duration))

    warmup = count(loads[0], warmup_seconds) if warmup_seconds > 0 else 0
    return warmup + sum(count(load, seconds) for load in loads)
