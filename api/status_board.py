"""The status page's live parts: the sample history, the business panel and the last dead letters.

``StatusBoard`` is made once per worker by ``api.routes``; the runtime's lag watch
(``streams.lag``) calls ``sample`` every 5 s, and the page and ``/api/v1/fin/status`` call
``view``. The business panel reads this worker's table rows (cached for a few seconds, so a page
left open costs one scan per refresh).
The dead letters are the newest of ``fin.dlq`` (every worker's, not only this one's), read
from the topic's tail by the runtime (``streams.dead_letter_tail``), so they are what
``python app.py dlq list`` would show last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from api import status_history
from api.status_business import BusinessPanel, RowItems, business_panel
from ledger.chart import ChartOfAccounts
from ledger.rejections import Reason
from settings import DELTA_TABLES, DLQ_TOPIC, LEDGER_TOPIC
from streams.dead_letter_tail import RecentDeadLetter, RecentDeadLetters
from streams.hub import Hub
from tables.store import row_items

log = logging.getLogger(__name__)

BUSINESS_CACHE_S = 4.0
DEAD_LETTERS_CACHE_S = 4.0


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
    for key, value in row_items(table):
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
