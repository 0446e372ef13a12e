"""Operations: the status page and its JSON, the OpenAPI document, /health, /ready, /metrics,
and the worker's two periodic checks behind them (the registry probe, the integrity check).

The status numbers (lag, throughput) are the runtime's (``streams.lag``), read here only.
"""

from __future__ import annotations

import logging
import time

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import Api
from api.http import ApiKeys, given_key, json_response, refuse_access
from api.integrity import PeriodicIntegrity
from api.openapi import OPENAPI_PATH, PREFIX
from api.status import REGISTRY_PROBE_INTERVAL_S, render_status_page, status_snapshot

log = logging.getLogger(__name__)

INTEGRITY_INTERVAL_S = 60.0


async def get_status(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    board = await api.board.view()
    snapshot = status_snapshot(api.hub, api.lag.lags, api.lag.throughput)
    return json_response(view, {**snapshot, **board.to_json()})


async def get_status_page(api: Api, view: View, request: Request) -> Response:
    # The page alone takes ?key= (a browser cannot send a header); the read key only,
    # so a write key never ends up in a URL. See api.status.
    keys = api.keys
    from_url = request.rel_url.query.get("key")
    header_key = given_key(request)
    status = (
        keys.refusal(header_key, write=False)
        if header_key is not None or from_url is None
        else ApiKeys(keys.read_key, None).refusal(from_url, write=False)
    )
    if status is not None:
        return refuse_access(view, status)
    snapshot = status_snapshot(api.hub, api.lag.lags, api.lag.throughput)
    page = render_status_page(snapshot, await api.board.view())
    return view.html(page, headers={"Referrer-Policy": "no-referrer"})


async def get_openapi(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    return view.bytes(api.openapi_document, content_type="application/json")


async def get_health(api: Api, view: View, request: Request) -> Response:
    uptime_s = round(time.time() - api.hub.started_at, 1)
    return json_response(view, {"status": "alive", "uptime_s": uptime_s})


async def get_ready(api: Api, view: View, request: Request) -> Response:
    recovered = bool(api.app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
    api.hub.metrics.recovery_complete.set(1 if recovered else 0)
    reachable = api.registry_probe.ok
    ready = recovered and reachable
    body = {"tables_recovered": recovered, "registry_reachable": reachable}
    return json_response(view, {"ready": ready, **body}, 200 if ready else 503)


async def get_metrics(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    return view.bytes(
        generate_latest(api.hub.metrics.registry),
        content_type=CONTENT_TYPE_LATEST.split(";")[0],
    )


async def check_integrity(api: Api, periodic: PeriodicIntegrity) -> None:
    """The leader's periodic integrity check, once the tables are recovered."""
    if not api.app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return
    try:
        await periodic.run()
    except Exception:
        # A check that cannot run (a worker unreachable mid-rebalance) is retried next time;
        # it must not take the worker down. Counted, so an alert can see it keeps failing.
        api.hub.metrics.timer_failures.labels("integrity_check").inc()
        log.exception("periodic integrity check could not run")


def register(api: Api, periodic: PeriodicIntegrity) -> None:
    api.add_page(PREFIX + "/status", "StatusView", get=get_status)
    api.add_page("/", "StatusPage", get=get_status_page)
    api.add_page(OPENAPI_PATH, "OpenApiView", get=get_openapi)
    api.add_page("/health", "HealthView", get=get_health)
    api.add_page("/ready", "ReadyView", get=get_ready)
    api.add_page("/metrics", "MetricsView", get=get_metrics)

    @api.app.timer(interval=INTEGRITY_INTERVAL_S, on_leader=True)  # type: ignore[untyped-decorator]
    async def integrity_check() -> None:
        await check_integrity(api, periodic)

    @api.app.timer(interval=REGISTRY_PROBE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def probe_registry() -> None:
        await api.registry_probe.probe()
