"""What an SRE sees at a glance: consumer lag (computed by us), counters, a self-refreshing page.

Lag is sampled every few seconds per worker for the partitions it owns: the broker's end offset
minus the group's committed offset. The status page is rendered on the server from the same
numbers as /metrics, so it needs no JavaScript framework and no CDN.

The page shows counts only (records per topic, reasons, lag), no business data, but it stays
behind the read key like every endpoint but /health and /ready. A browser cannot send an
X-API-Key header from the address bar, so this page alone also takes the key as ``?key=``
(``api.operations``). The cost is a key in a URL: it may land in browser history, so the page sets
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
from datetime import UTC
from decimal import Decimal
from typing import Any

from api.status_board import BoardView
from api.status_charts import line_chart
from errors import RegistryRequestError, RegistryUnavailableError
from schemas.registry import RegistryClient
from streams.hub import Hub
from streams.lag import CONSUMED_METRIC, Lags, Throughput, metric_totals

log = logging.getLogger(__name__)

DETAIL_SHOWN_MAX = 160


def status_snapshot(hub: Hub, lags: Lags, throughput: Throughput | None = None) -> dict[str, Any]:
    registry = hub.metrics.registry
    recovered = bool(hub.app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
    return {
        "worker": hub.settings.web_url,
        "uptime_s": round(time.time() - hub.started_at, 1),
        "ready": recovered,
        "consumed_per_second": round(throughput.per_second, 1) if throughput else 0.0,
        "consumed_by_topic": metric_totals(registry, CONSUMED_METRIC, "topic"),
        "posted_by_type": metric_totals(registry, "fin_events_posted_total", "event_type"),
        "duplicates_by_type": metric_totals(registry, "fin_events_duplicate_total", "event_type"),
        "rejected_by_reason": metric_totals(registry, "fin_events_rejected_total", "reason"),
        "dead_letters_by_reason": metric_totals(registry, "fin_dead_letters_total", "reason"),
        "retries_by_dependency": metric_totals(registry, "fin_retries_total", "dependency"),
        "integrity_failures": metric_totals(registry, "fin_integrity_failures_total", "check"),
        "lag": [
            {"topic": topic, "partition": partition, "lag": lag}
            for (topic, partition), lag in sorted(lags.items())
        ],
    }


def _table(all_rows: dict[str, float], head: str, table_id: str) -> str:
    # Counters created at 0 (api.status_board.zero_known_series) are no news on a page.
    rows = {name: value for name, value in all_rows.items() if value}
    if not rows:
        return f"<h2>{html.escape(head)}</h2><p class=none id={table_id}>none</p>"
    body = "".join(
        f"<tr><td>{html.escape(name or '-')}</td><td class=n>{int(value):,}</td></tr>"
        for name, value in sorted(rows.items())
    )
    return f"<h2>{html.escape(head)}</h2><table id={table_id}>{body}</table>"


def _lag_section(lag: list[dict[str, Any]]) -> str:
    """Lag per topic (partitions summed); every partition behind a click (``<details>``)."""
    by_topic: dict[str, list[int]] = defaultdict(list)
    for item in lag:
        by_topic[item["topic"]].append(item["lag"])
    topic_rows = "".join(
        f"<tr><td>{html.escape(topic)}</td><td class=n>{len(lags)}</td>"
        f"<td class=n>{sum(lags):,}</td><td class=n>{max(lags):,}</td></tr>"
        for topic, lags in sorted(by_topic.items())
    )
    partition_rows = (
        "".join(
            f"<tr><td>{html.escape(item['topic'])}</td><td class=n>{item['partition']}</td>"
            f"<td class=n>{item['lag']:,}</td></tr>"
            for item in lag
        )
        or "<tr><td colspan=3 class=none>no partitions assigned</td></tr>"
    )
    return (
        "<h2>Consumer lag by topic</h2><table id=lag-by-topic><tr><th>topic</th>"
        f"<th>partitions</th><th>lag</th><th>largest</th></tr>{topic_rows}</table>"
        f"<details id=lag-partitions><summary>every partition ({len(lag)})</summary>"
        f"<table id=lag><tr><th>topic</th><th>partition</th><th>lag</th></tr>{partition_rows}"
        "</table></details>"
    )


def _money(value: Decimal | None) -> str:
    return "&ndash;" if value is None else f"{value:,.2f}"


def _business_section(board: BoardView) -> str:
    panel = board.business
    if panel is None:
        reason = html.escape(board.business_error or "not read yet")
        return f"<section id=business><h2>Business</h2><p class=warn>{reason}</p></section>"
    budgets = "".join(
        f"<tr class={line.status}><td>{html.escape(line.department)}</td>"
        f"<td>{html.escape(line.category)}</td><td>{html.escape(line.period)}</td>"
        f"<td class=n>{_money(line.budget)}</td><td class=n>{_money(line.actual)}</td>"
        f"<td class=n>{'&ndash;' if line.utilisation is None else f'{line.utilisation:.0%}'}</td>"
        f"<td>{'stop' if line.status == 'exceeded' else 'warn'}</td></tr>"
        for line in panel.budgets
    )
    customers = "".join(
        f"<tr><td>{html.escape(line.customer)}</td><td class=n>{_money(line.limit)}</td>"
        f"<td class=n>{_money(line.exposure)}</td><td class=n>{_money(line.over_by)}</td></tr>"
        for line in panel.customers
    )
    vendors = "".join(
        f"<tr><td>{html.escape(line.vendor)}</td><td class=n>{_money(line.overdue)}</td>"
        f"<td class=n>{_money(line.open)}</td><td class=n>{line.open_items}</td></tr>"
        for line in panel.vendors
    )

    def table(table_id: str, head: str, rows: str, columns: int) -> str:
        body = rows or f"<tr><td colspan={columns} class=none>none</td></tr>"
        return f"<table id={table_id}><tr>{head}</tr>{body}</table>"

    return (
        "<section id=business><h2>Business</h2>"
        f"<p class=note>From the {panel.rows_read:,} budget, customer and vendor rows this worker "
        f"holds (its partitions), as of {panel.as_of.isoformat()}; the {panel.top} largest of "
        "each shown.</p><div class=grid><div>"
        f"<h3>Budgets at warn <b id=budgets-warn>{panel.budgets_near}</b> · at stop "
        f"<b id=budgets-stop>{panel.budgets_exceeded}</b></h3>"
        + table(
            "budgets-at-risk",
            "<th>department</th><th>category</th><th>period</th><th>budget</th><th>actual</th>"
            "<th>used</th><th>level</th>",
            budgets,
            7,
        )
        + f"</div><div><h3>Customers over their credit limit <b id=customers-over>"
        f"{panel.customers_over}</b></h3>"
        + table(
            "customers-over-limit",
            "<th>customer</th><th>limit</th><th>exposure</th><th>over by</th>",
            customers,
            4,
        )
        + f"</div><div><h3>Vendors with overdue payables <b id=vendors-overdue>"
        f"{panel.vendors_overdue}</b> · <b id=overdue-total>{_money(panel.overdue_total)}</b>"
        "</h3>"
        + table(
            "vendors-overdue-top",
            "<th>vendor</th><th>overdue</th><th>open</th><th>open items</th>",
            vendors,
            4,
        )
        + "</div></div></section>"
    )


def _dead_letters_section(board: BoardView) -> str:
    rows = "".join(
        f"<tr><td>{letter.rejected_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}</td>"
        f"<td>{html.escape(letter.reason)}</td><td>{html.escape(letter.source)}</td>"
        f'<td class=detail title="{html.escape(letter.detail)}">'
        f"{html.escape(letter.detail[:DETAIL_SHOWN_MAX])}</td>"
        f"<td><code>{html.escape(letter.show_command)}</code></td></tr>"
        for letter in board.dead_letters
    )
    error = (
        f"<p class=warn>fin.dlq could not be read: {html.escape(board.dead_letters_error)}</p>"
        if board.dead_letters_error
        else ""
    )
    body = rows or "<tr><td colspan=5 class=none>no dead letters</td></tr>"
    return (
        f"<section><h2>Last {len(board.dead_letters)} dead letters (fin.dlq, every worker's)</h2>"
        f"{error}<table id=recent-dead-letters><tr><th>rejected at (UTC)</th><th>reason</th>"
        f"<th>source</th><th>detail</th><th>inspect</th></tr>{body}</table></section>"
    )


def _charts_section(board: BoardView) -> str:
    common = {"now_s": board.now_s, "window_s": board.window_s}
    return (
        "<p class=note>Charts, lag and counters are this worker's (its partitions, since it "
        "started); Prometheus has every worker's. Dead letters are every worker's.</p>"
        "<section id=charts class=charts>"
        + line_chart("throughput", "Events", "per second", board.throughput, **common)
        + line_chart("lag", "Consumer lag by topic", "records", board.lag, **common)
        + line_chart("latency", "Published to posted", "s, p50 and p99", board.latency, **common)
        + line_chart(
            "dead-letters",
            "Dead letters by reason",
            "per minute",
            board.dead_letter_rates,
            **common,
        )
        + "</section>"
    )


def render_status_page(
    snapshot: dict[str, Any], board: BoardView | None = None, refresh_s: int = 5
) -> str:
    """The page; element ids (consumed-total, lag, chart-*, ...) are stable for tests."""
    total_lag = sum(item["lag"] for item in snapshot["lag"])
    consumed = int(sum(snapshot["consumed_by_topic"].values()))
    integrity = snapshot["integrity_failures"]
    integrity_ok = not any(integrity.values())
    integrity_text = (
        "no failures"
        if integrity_ok
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
    registry_ok = board.registry_reachable if board is not None else True
    checker = (
        ""
        if board is None
        else " (this worker runs the 60-s check)"
        if board.integrity_leader
        else " (the leader runs the 60-s check: its page, or GET /api/v1/fin/ledger/integrity)"
    )
    if not snapshot["ready"]:
        state = "recovering tables"
    elif not registry_ok:
        state = "schema registry unreachable"
    else:
        state = "ready"
    ready = state == "ready"
    live = (
        _charts_section(board) + _business_section(board) + _dead_letters_section(board)
        if board is not None
        else ""
    )
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content="{refresh_s}">
<meta name=referrer content=no-referrer>
<title>FIN hub status</title>
<style>
body{{font:14px system-ui,sans-serif;margin:1.2rem 1.5rem;color:#222;max-width:1200px}}
h1{{font-size:1.3rem;margin:0 0 .6rem}} h2{{font-size:1.05rem;margin:1.2rem 0 .3rem}}
h3{{font-size:.95rem;margin:.6rem 0 .3rem;font-weight:normal}}
table{{border-collapse:collapse;min-width:16rem}}
td,th{{border-bottom:1px solid #ddd;padding:.15rem .5rem;text-align:left}}
.n{{text-align:right;font-variant-numeric:tabular-nums}} .none{{color:#888}}
.ok{{color:#070}} .warn{{color:#a60}} .grid{{display:flex;flex-wrap:wrap;gap:1.5rem}}
.banner{{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}}
.badge{{padding:.35rem .8rem;border-radius:.4rem;font-weight:bold;color:#fff}}
.badge.ok{{background:#1a7f37}} .badge.warn{{background:#bc4c00}}
.charts{{display:grid;grid-template-columns:repeat(auto-fill,minmax(530px,1fr));gap:.6rem}}
figure{{margin:0}} figcaption{{font-weight:bold}} small,.note{{color:#666}}
.legend{{display:flex;flex-wrap:wrap;gap:.2rem .9rem;font-size:12px}}
.key i{{display:inline-block;width:.8rem;height:.25rem;margin-right:.3rem;vertical-align:middle}}
tr.exceeded td{{color:#b00}} code{{font-size:12px}}
td.detail{{max-width:22rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
#recent-dead-letters td:first-child,code{{white-space:nowrap}}
</style></head><body>
<h1>FIN hub — {html.escape(snapshot["worker"])}</h1>
<div class=banner>
<span>Readiness <b id=state class="badge {"ok" if ready else "warn"}">{state}</b></span>
<span>Integrity <b id=integrity class="badge {"ok" if integrity_ok else "warn"}">\
{html.escape(integrity_text)}</b><small>{html.escape(checker)}</small></span>
<span>uptime {snapshot["uptime_s"]:,.0f} s · consumed <b id=consumed-total>{consumed:,}</b> records
· throughput <b id=throughput>{snapshot["consumed_per_second"]:,.1f}</b> records/s ·
total lag <b id=total-lag>{total_lag:,}</b> · refreshes every {refresh_s} s</span></div>
{live}
<div class=grid><div>{_lag_section(snapshot["lag"])}</div>
<div><h2 class=note>Counters since this worker started</h2>{sections}</div></div>
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
