"""What an SRE sees at a glance: consumer lag (computed by us), counters, a self-refreshing page.

Lag is sampled every few seconds per worker for the partitions it owns: the broker's end offset
minus the group's committed offset. The status page is rendered on the server from the same
numbers as /metrics, so it needs no JavaScript framework and no CDN.

The page shows counts only (records per topic, reasons, lag), no business data, but it stays
behind the read key like every endpoint but /health and /ready. A browser cannot send an
X-API-Key header from the address bar, so this page alone also takes the key as ``?key=``
(``api.routes``). The cost is a key in a URL: it may land in browser history, so the page sets
``Referrer-Policy: no-referrer``, links nowhere, and the worker keeps no access log. Use a
read-only key there, never the write key (the query parameter is checked against the read key
only).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from errors import RegistryRequestError, RegistryUnavailableError
from schemas.registry import RegistryClient
from streams.hub import Hub

log = logging.getLogger(__name__)

LAG_SAMPLE_INTERVAL_S = 5.0
CONSUMED_METRIC = "fin_events_consumed_total"


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


def consumed_total(registry: CollectorRegistry) -> float:
    return sum(_totals(registry, CONSUMED_METRIC, "topic").values())


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


def _totals(registry: CollectorRegistry, metric: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric:
                out[sample.labels.get(label, "")] += sample.value
    return dict(out)


def status_snapshot(
    hub: Hub, lags: dict[tuple[str, int], int], throughput: Throughput | None = None
) -> dict[str, Any]:
    registry = hub.metrics.registry
    recovered = bool(hub.app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
    return {
        "worker": hub.settings.web_url,
        "uptime_s": round(time.time() - hub.started_at, 1),
        "ready": recovered,
        "consumed_per_second": round(throughput.per_second, 1) if throughput else 0.0,
        "consumed_by_topic": _totals(registry, CONSUMED_METRIC, "topic"),
        "posted_by_type": _totals(registry, "fin_events_posted_total", "event_type"),
        "duplicates_by_type": _totals(registry, "fin_events_duplicate_total", "event_type"),
        "rejected_by_reason": _totals(registry, "fin_events_rejected_total", "reason"),
        "dead_letters_by_reason": _totals(registry, "fin_dead_letters_total", "reason"),
        "retries_by_dependency": _totals(registry, "fin_retries_total", "dependency"),
        "integrity_failures": _totals(registry, "fin_integrity_failures_total", "check"),
        "lag": [
            {"topic": topic, "partition": partition, "lag": lag}
            for (topic, partition), lag in sorted(lags.items())
        ],
    }


def _table(rows: dict[str, float], head: str, table_id: str) -> str:
    if not rows:
        return f"<h2>{html.escape(head)}</h2><p class=none id={table_id}>none</p>"
    body = "".join(
        f"<tr><td>{html.escape(name or '-')}</td><td class=n>{int(value):,}</td></tr>"
        for name, value in sorted(rows.items())
    )
    return f"<h2>{html.escape(head)}</h2><table id={table_id}>{body}</table>"


def render_status_page(snapshot: dict[str, Any], refresh_s: int = 5) -> str:
    """The page; element ids (consumed-total, lag, ...) are stable for tests and scrapers."""
    lag_rows = (
        "".join(
            f"<tr><td>{html.escape(item['topic'])}</td><td class=n>{item['partition']}</td>"
            f"<td class=n>{item['lag']:,}</td></tr>"
            for item in snapshot["lag"]
        )
        or "<tr><td colspan=3 class=none>no partitions assigned</td></tr>"
    )
    total_lag = sum(item["lag"] for item in snapshot["lag"])
    consumed = int(sum(snapshot["consumed_by_topic"].values()))
    integrity = snapshot["integrity_failures"]
    integrity_text = (
        "no failures"
        if not integrity
        else ", ".join(f"{name}: {int(count)}" for name, count in integrity.items())
    )
    sections = "".join(
        (
            _table(snapshot["consumed_by_topic"], "Consumed by topic", "consumed-by-topic"),
            _table(snapshot["posted_by_type"], "Posted by event type", "posted-by-type"),
            _table(
                snapshot["duplicates_by_type"], "Duplicates by event type", "duplicates-by-type"
            ),
            _table(snapshot["rejected_by_reason"], "Rejections by reason", "rejected-by-reason"),
            _table(snapshot["dead_letters_by_reason"], "Dead letters by reason", "dead-letters"),
            _table(snapshot["retries_by_dependency"], "Retries by dependency", "retries"),
        )
    )
    state = "ready" if snapshot["ready"] else "recovering tables"
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content="{refresh_s}">
<meta name=referrer content=no-referrer>
<title>FIN hub status</title>
<style>
body{{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}}
h1{{font-size:1.3rem}} h2{{font-size:1rem;margin:1.2rem 0 .3rem}}
table{{border-collapse:collapse;min-width:22rem}}
td{{border-bottom:1px solid #ddd;padding:.15rem .6rem}}
.n{{text-align:right;font-variant-numeric:tabular-nums}} .none{{color:#888}}
.ok{{color:#070}} .warn{{color:#a60}} .grid{{display:flex;flex-wrap:wrap;gap:2rem}}
</style></head><body>
<h1>FIN hub — {html.escape(snapshot["worker"])}</h1>
<p>State: <b id=state class={"ok" if snapshot["ready"] else "warn"}>{state}</b> ·
uptime {snapshot["uptime_s"]:,.0f} s · consumed <b id=consumed-total>{consumed:,}</b> records ·
throughput <b id=throughput>{snapshot["consumed_per_second"]:,.1f}</b> records/s ·
total lag <b id=total-lag>{total_lag:,}</b> ·
integrity: <b id=integrity>{html.escape(integrity_text)}</b> · refreshes every {refresh_s} s</p>
<div class=grid><div><h2>Consumer lag by partition</h2>
<table id=lag><tr><th>topic</th><th>partition</th><th>lag</th></tr>{lag_rows}
</table></div><div>{sections}</div></div>
</body></html>"""


REGISTRY_PROBE_INTERVAL_S = 10.0


class RegistryProbe:
    """Is the schema registry answering? Asked off the event loop every few seconds for /ready.

    A worker keeps decoding with its cached schemas while the registry is down, so this only
    marks it not ready (a load balancer or supervisor should know); it does not stop processing.
    """

    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry
        self.ok = True  # until the first probe says otherwise

    async def probe(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._registry.subjects)
        except (RegistryUnavailableError, RegistryRequestError) as exc:
            if self.ok:
                log.warning("schema registry unreachable: %s", exc)
            self.ok = False
        else:
            if not self.ok:
                log.info("schema registry reachable again")
            self.ok = True
