"""Every query of the provisioned Grafana dashboard answers with data from a real Prometheus.

The Prometheus is ``ops/prometheus.sh`` (Debian's package, the same script ``make up`` uses)
scraping the busy worker of tests/e2e/conftest.py every second, with ops/prometheus/rules.yml
loaded. Grafana's ``$__rate_interval`` is replaced by a window of several scrapes, as Grafana
itself would for a 1 s scrape interval. A panel whose query returns no series fails the test:
it would show "No data" to the operator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BusyHub

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).resolve().parents[2] / "ops" / "compose" / "grafana" / "dashboards"
RATE_INTERVAL = "15s"
# fin_table_keys is first set by the table gauges' timer, 30 s after a worker starts.
DATA_TIMEOUT_S = 60.0
ALERTS_IN_RULES = 7


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard file / panel title / ref id, PromQL) of every target of every dashboard."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if expr:
                    name = f"{path.name} / {panel.get('title')} / {target.get('refId', '?')}"
                    queries.append((name, expr.replace("$__rate_interval", RATE_INTERVAL)))
    return queries


def test_every_dashboard_query_returns_data_from_prometheus_scraping_a_busy_worker(
    busy_hub: BusyHub,
) -> None:
    prometheus = busy_hub.prometheus
    queries = dashboard_queries()
    assert len(queries) >= 20, "the dashboard lost its panels"
    # The rules are loaded and the worker is a healthy target before any query counts.
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    assert sum(len(group["rules"]) for group in groups) == ALERTS_IN_RULES
    empty: dict[str, str] = {}
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        up = prometheus.query('up{job="fin-workers"}')
        empty = (
            {name: expr for name, expr in queries if not prometheus.query(expr)}
            if up and up[0]["value"][1] == "1"
            else {"up": "the worker is not scraped yet"}
        )
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    assert not empty, "panels without data:\n" + "\n".join(
        f"  {name}: {expr}" for name, expr in empty.items()
    )
    # Under normal traffic no alert fires (pending or firing): the rules are quiet when all is well.
    alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
    assert alerts == [], alerts
    assert busy_hub.worker.process is not None and busy_hub.worker.process.poll() is None
