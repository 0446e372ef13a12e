"""What every REST view needs, made once per worker by ``api.routes.register_routes``.

Views are named module-level functions ``handler(api, view, request, **path parameters)`` in
one module per resource (``api.budgets``, ``api.payables``, ``api.receivables``,
``api.master_data``, ``api.ledger_views``, ``api.intake``, ``api.operations``); ``Api.add_page``
registers them as a faust view answering exactly the methods given.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import faust
import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable

from api import params
from api.http import ApiKeys, FinView, given_key, problem
from api.intake import CommandIntake
from api.integrity import ChainWatch
from api.status import RegistryProbe
from api.status_board import StatusBoard
from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.contract import DELTA_TABLES, LEDGER_TOPIC, delta_topic
from streams.hub import Hub
from streams.lag import LagWatch
from tables.store import row_value

log = logging.getLogger(__name__)

# A view's handler: (api, view, request, **path parameters) -> response.
Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Api:
    hub: Hub
    chart: ChartOfAccounts
    keys: ApiKeys
    lag: LagWatch
    intake: CommandIntake
    chain_watch: ChainWatch
    # Sent with a request to another worker (its integrity part): the read key, if any.
    forward_headers: Mapping[str, str]
    board: StatusBoard
    registry_probe: RegistryProbe
    openapi_document: bytes

    @property
    def app(self) -> faust.App:
        return self.hub.app

    def add_page(self, path: str, name: str, **handlers: Handler) -> type[View]:
        """Register at ``path`` a view named ``name`` whose methods (``get=``, ``put=``, ...)
        are the given handlers; any other method is a 405."""

        def method(handler: Handler) -> Callable[..., Awaitable[Response]]:
            async def answer(view: View, request: Request, **path_parameters: str) -> Response:
                return await handler(self, view, request, **path_parameters)

            answer.__name__ = answer.__qualname__ = handler.__name__
            return answer

        members = {verb: method(handler) for verb, handler in handlers.items()}
        view_class = type(name, (FinView,), members)
        return self.app.page(path)(view_class)  # type: ignore[no-any-return]

    def refusal(self, request: Request, *, write: bool = False) -> int | None:
        return self.keys.refusal(given_key(request), write=write)

    def query(self, request: Request, name: str) -> str | None:
        return params.single_query_value(request.rel_url.query, name)

    def query_or_default(self, request: Request, name: str, default: str) -> str:
        # Only an absent parameter takes the default: `?category=` is a (bad) value.
        value = self.query(request, name)
        return default if value is None else value

    def row_of(self, table: str, key: str) -> Any | None:
        raw = row_value(self.hub.tables[table], key.encode())
        if raw is None:
            return None
        return reducers.row_from_json_dict(table, orjson.loads(raw))

    def freshness(self, table: str, key: str) -> dict[str, Any]:
        """Which partition answered, and how far its table is behind its input right now."""
        contract = delta_topic(table) if table in DELTA_TABLES else None
        position = self.lag.position(contract or LEDGER_TOPIC, key.encode())
        body: dict[str, Any] = {
            "table": table,
            "partition": position.partition,
            "worker": self.hub.settings.web_url,
            "as_of": datetime.now(UTC).isoformat(),
        }
        if contract is not None:
            body["applied_offset"] = position.committed_offset
            body["lag"] = position.lag
        return body

    async def routed(
        self,
        view: View,
        request: Request,
        table: str,
        key: str,
        local: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Answer from this worker if it owns ``key``, else forward to the owner."""
        try:
            return await self.app.router.route_req(table, key.encode(), view.web, request)
        except SameNode:
            return await local()
        except ServiceUnavailable:
            return problem(
                view,
                503,
                "service unavailable",
                f"no worker owns the partition of {key!r} in {table} right now (rebalancing?)",
            )
        except aiohttp.ClientError as exc:
            log.warning("forwarding %s to the owner of %s failed: %s", request.rel_url, key, exc)
            return problem(
                view,
                503,
                "service unavailable",
                f"the worker owning {key!r} in {table} did not answer",
            )
