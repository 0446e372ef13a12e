"""REST under /api/v1/fin: reads routed to the worker that owns the key, commands, operations.

Handlers only parse parameters (``api.params``), check the key (``api.http``), then either route
and read a table row rendered by a pure ``ledger`` view, or publish a command
(``api.intake``) — a handler never writes a table. A read for a key owned by another worker
is forwarded there (faust's router), so any worker answers any key; the body says which
partition answered and how fresh it is (``streams.lag``, read-only). The paths registered here
are the operations of ``api.openapi`` (a unit test holds the two to the same set).

One module per resource, each with a ``register``: ``api.budgets``, ``api.payables``,
``api.receivables``, ``api.master_data`` (departments, periods), ``api.ledger_views`` (trial
balance, accounts, entries, compensations, integrity) and ``api.operations`` (status, OpenAPI,
health, readiness, metrics).
"""

from __future__ import annotations

import logging

from api import budgets, ledger_views, master_data, operations, payables, receivables
from api.context import Api
from api.http import (
    ApiKeys,
    install_host_guard,
    install_problem_middleware,
    json_bytes,
    security_warnings,
)
from api.intake import CommandIntake
from api.integrity import ChainWatch, PeriodicIntegrity
from api.openapi import build_document
from api.status import RegistryProbe
from api.status_board import StatusBoard, zero_known_series
from ledger.chart import ChartOfAccounts
from schemas.catalog import SchemaCatalog
from schemas.registry import RegistryClient
from streams.hub import Hub
from streams.lag import LagWatch

log = logging.getLogger(__name__)


def register_routes(
    hub: Hub,
    *,
    chart: ChartOfAccounts,
    catalog: SchemaCatalog,
    registry: RegistryClient,
    lag: LagWatch,
) -> Api:
    """Every view and the web's periodic checks, on ``hub``'s faust app (once per worker)."""
    settings = hub.settings
    keys = ApiKeys(
        settings.api_read_key, settings.api_write_key, insecure_writes=settings.api_insecure_writes
    )
    for warning in security_warnings(keys, settings.host_allow_list):
        log.warning("SECURITY WARNING: %s", warning)
    install_host_guard(hub.app, settings.host_allow_list)
    install_problem_middleware(hub.app)
    document = json_bytes(
        build_document(
            chart,
            read_protected=keys.read_key is not None,
            write_protected=not keys.writes_open,
        )
    )
    forward_headers = {"X-API-Key": keys.read_key} if keys.read_key else {}
    registry_probe = RegistryProbe(registry)
    # The status page's charts, business panel and last dead letters (api/status_board.py).
    board = StatusBoard(hub, chart, registry_reachable=lambda: registry_probe.ok)
    zero_known_series(hub)
    lag.on_sample(board.sample)
    api = Api(
        hub=hub,
        chart=chart,
        keys=keys,
        lag=lag,
        intake=CommandIntake(hub, chart, keys),
        chain_watch=ChainWatch(hub),
        forward_headers=forward_headers,
        board=board,
        registry_probe=registry_probe,
        openapi_document=document,
    )
    budgets.register(api)
    payables.register(api)
    receivables.register(api)
    master_data.register(api)
    ledger_views.register(api)
    operations.register(api, PeriodicIntegrity(hub, chart, forward_headers))
    return api
