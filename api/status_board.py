"""The status page's live parts: the sample history, the business panel and the last dead letters.

``StatusBoard`` is made once per worker by ``api.routes``; the lag sampler calls ``sample`` every
5 s, and the page and ``/api/v1/fin/status`` call ``view``. The business panel reads this
worker's table rows (cached for a few seconds, so a page left open costs one scan per refresh).
The dead letters are the newest of ``fin.dlq`` (every worker's, not only this one's), read
from the topic's tail by a consumer without a group, so they are what ``python app.py dlq list``
would show last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from api import status_history
from api.status_business import BusinessPanel, RowItems, business_panel
from ledger.chart import ChartOfAccounts
from ledger.rejections import Reason
from settings import DELTA_TABLES, DLQ_TOPIC, LEDGER_TOPIC
from streams.hub import Hub
from tools.dlq_records import DeadLetter

log = logging.getLogger(__name__)

DEAD_LETTERS_SHOWN = 20
DEAD_LETTERS_READ_TIMEOUT_S = 3.0
BUSINESS_CACHE_S = 4.0
DEAD_LETTERS_CACHE_S = 4.0


@dataclass(frozen=True)
class RecentDeadLetter:
    position: str  # partition:offset in fin.dlq, what `python app.py dlq show` takes
    rejected_at: datetime
    reason: str
    source: str  # topic[partition]@offset, or "(no source)"
    event_id: str | None
    detail: str

    @property
    def show_command(self) -> str:
        return f"python app.py dlq show {self.position}"

    @classmethod
    def of(cls, letter: DeadLetter) -> RecentDeadLetter:
        source = letter.source
        where = f"{source.topic}[{source.partition}]@{source.offset}" if source else "(no source)"
        return cls(
            position=str(letter.position),
            rejected_at=letter.rejected_at,
            reason=letter.reason,
            source=where,
            event_id=letter.event_id,
            detail=" ".join(letter.detail.split()),
        )


class RecentDeadLetters:
    """The newest ``limit`` dead letters of the topic, read from each partition's tail."""

    def __init__(self, bootstrap: str, topic: str, limit: int = DEAD_LETTERS_SHOWN) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._limit = limit
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self.letters: tuple[RecentDeadLetter, ...] = ()
        self.error: str | None = None

    async def refresh(self) -> None:
        async with self._lock:
            try:
                await asyncio.wait_for(self._read(), DEAD_LETTERS_READ_TIMEOUT_S)
                self.error = None
            except Exception as exc:  # the page shows it; processing is not concerned
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("status page: the last dead letters could not be read: %s", exc)
                await self.stop()

    async def _read(self) -> None:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap.split(","),
                group_id=None,
                enable_auto_commit=False,
            )
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        cluster = await consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(self._topic) or set()
        partitions = [TopicPartition(self._topic, number) for number in sorted(numbers)]
        if not partitions:
            self.letters = ()
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if ends == self._ends:
            return  # nothing new since the last read
        starts = await consumer.beginning_offsets(partitions)
        wanted: dict[TopicPartition, int] = {}
        for tp in partitions:
            first = max(starts.get(tp, 0), ends[tp] - self._limit)
            if first < ends[tp]:
                consumer.seek(tp, first)
                wanted[tp] = ends[tp]
        letters: list[DeadLetter] = []
        while wanted:
            fetched = await consumer.getmany(*wanted, timeout_ms=500)
            for tp, records in fetched.items():
                letters.extend(
                    DeadLetter.of(record) for record in records if record.offset < wanted[tp]
                )
            for tp in list(wanted):
                if await consumer.position(tp) >= wanted[tp]:
                    del wanted[tp]
        letters.sort(key=lambda letter: (letter.rejected_at, letter.position), reverse=True)
        self.letters = tuple(RecentDeadLetter.of(letter) for letter in letters[: self._limit])
        self._ends = ends

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._ends = {}
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()


@dataclass(frozen=True)
class BoardView:
    """Everything the page shows beyond the counters of ``api.status.status_snapshot``."""

    now_s: float
    window_s: float
    samples: int
    throughput: list[status_history.Series]
    lag: list[status_history.Series]
    latency: list[status_history.Series]
    dead_letter_rates: list[status_history.Series]
    business: BusinessPanel | None
    business_error: str | None
    dead_letters: tuple[RecentDeadLetter, ...]
    dead_letters_error: str | None
    registry_reachable: bool
    integrity_leader: bool  # this worker runs the periodic integrity check

    def to_json(self) -> dict[str, Any]:
        def lines(series: list[status_history.Series]) -> dict[str, list[list[float]]]:
            return {
                line.name: [[at, round(value, 3)] for at, value in line.points] for line in series
            }

        return {
            "registry_reachable": self.registry_reachable,
            "integrity_leader": self.integrity_leader,
            "history": {
                "window_s": self.window_s,
                "samples": self.samples,
                "events_per_second": lines(self.throughput),
                "lag_by_topic": lines(self.lag),
                "event_to_posting_s": lines(self.latency),
                "dead_letters_per_minute": lines(self.dead_letter_rates),
            },
            "business": self.business,
            "business_error": self.business_error,
            "recent_dead_letters": [
                {
                    "position": letter.position,
                    "rejected_at": letter.rejected_at,
                    "reason": letter.reason,
                    "source": letter.source,
                    "event_id": letter.event_id,
                    "detail": letter.detail,
                    "show": letter.show_command,
                }
                for letter in self.dead_letters
            ],
            "recent_dead_letters_error": self.dead_letters_error,
        }


def _decoded_rows(table: Mapping[Any, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key, value in table.items():
        if isinstance(key, bytes) and isinstance(value, bytes):
            yield key.decode(), orjson.loads(value)


def zero_known_series(hub: Hub) -> None:
    """Create the labelled counters that only failures increment, at 0, so Prometheus sees them.

    Without a series, a dashboard panel says "no data" instead of 0 and ``increase()`` cannot
    see the first increment (a series born at 1 has none).
    """
    metrics = hub.metrics
    for reason in Reason:
        metrics.dead_letters.labels(reason.value)
    for dependency in ("schema_registry", "producer"):
        metrics.retries.labels(dependency)
    for table in DELTA_TABLES:
        metrics.deltas_skipped.labels(table)
    for topic in (LEDGER_TOPIC, DLQ_TOPIC):  # labelled by contract name, as streams.effects
        metrics.send_failures.labels(topic)


@dataclass
class StatusBoard:
    hub: Hub
    chart: ChartOfAccounts
    registry_reachable: Callable[[], bool]
    history: status_history.History = field(default_factory=status_history.History)
    _business: tuple[float, BusinessPanel | None, str | None] = (0.0, None, None)
    _dead_letters: RecentDeadLetters | None = None
    _dead_letters_read_s: float = 0.0

    def sample(self, lags: Mapping[tuple[str, int], int]) -> None:
        self.history.record(
            status_history.take_sample(self.hub.metrics.registry, lags, time.time())
        )

    def _business_panel(self, monotonic_s: float) -> tuple[BusinessPanel | None, str | None]:
        taken_s, panel, error = self._business
        if panel is not None and monotonic_s - taken_s < BUSINESS_CACHE_S:
            return panel, error
        tables = self.hub.tables

        def rows(name: str) -> RowItems:
            return _decoded_rows(tables[name]) if name in tables else iter(())

        try:
            panel = business_panel(
                budgets=rows("budgets"),
                customers=rows("customers"),
                vendors=rows("vendors"),
                chart=self.chart,
                as_of=datetime.now(UTC).date(),
            )
            error = None
        except Exception as exc:  # e.g. a table mid-rebalance; the rest of the page still shows
            log.warning("status page: the business panel could not be read: %s", exc)
            error = f"{type(exc).__name__}: {exc}"
        self._business = (monotonic_s, panel, error)
        return panel, error

    async def view(self) -> BoardView:
        monotonic_s = time.monotonic()
        if self._dead_letters is None:
            self._dead_letters = RecentDeadLetters(
                self.hub.settings.kafka_bootstrap, self.hub.settings.topic(DLQ_TOPIC)
            )
        if monotonic_s - self._dead_letters_read_s >= DEAD_LETTERS_CACHE_S:
            self._dead_letters_read_s = monotonic_s
            await self._dead_letters.refresh()
        business, business_error = self._business_panel(monotonic_s)
        samples = self.history.samples()
        return BoardView(
            now_s=time.time(),
            window_s=self.history.window_s,
            samples=len(samples),
            throughput=status_history.throughput(samples),
            lag=status_history.lag(samples),
            latency=status_history.latency(samples),
            dead_letter_rates=status_history.dead_letters(samples),
            business=business,
            business_error=business_error,
            dead_letters=self._dead_letters.letters,
            dead_letters_error=self._dead_letters.error,
            registry_reachable=self.registry_reachable(),
            integrity_leader=bool(self.hub.app.is_leader()),
        )
