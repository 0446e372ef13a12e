"""REST under /api/v1/fin: reads routed to the worker that owns the key, health, metrics.

Handlers only parse parameters, route, read a table row and render a pure ``ledger`` view.
A request for a key owned by another worker is forwarded there (faust's router), so any
worker answers any key; the body says which partition answered and how fresh it is.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.integrity import (
    PARTIAL_PATH,
    PeriodicIntegrity,
    build_report,
    gather_parts,
    local_partial,
)
from api.status import LAG_SAMPLE_INTERVAL_S, render_status_page, sample_lag, status_snapshot
from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.money import fits_precision
from ledger.periods import parse_period
from ledger.rejections import Rejection
from schemas.catalog import SchemaCatalog
from schemas.registry import RegistryClient
from settings import LEDGER_TOPIC
from streams.hub import Hub

log = logging.getLogger(__name__)

PREFIX = "/api/v1/fin"
INTEGRITY_INTERVAL_S = 60.0


class BadParameterError(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value


def json_response(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(
        orjson.dumps(to_jsonable(body)), content_type="application/json", status=status
    )


def problem(view: View, status: int, title: str, detail: str, **extra: Any) -> Response:
    return json_response(
        view, {"status": status, "title": title, "detail": detail, **extra}, status
    )


def parse_amount(raw: str | None, name: str) -> Decimal | None:
    if raw is None or raw == "":
        return None
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:
        raise BadParameterError(name, f"not a decimal number: {raw!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise BadParameterError(name, f"must be a finite non-negative amount: {raw!r}")
    if amount != amount.quantize(Decimal("0.01")) or not fits_precision(amount):
        raise BadParameterError(
            name, f"must have at most 16 integer digits and 2 decimals: {raw!r}"
        )
    return amount


def parse_period_param(raw: str | None, name: str = "period") -> str:
    if not raw:
        raise BadParameterError(name, "is required, e.g. 2024-Q1 or 2024-03")
    try:
        parse_period(raw)
    except ValueError as exc:
        raise BadParameterError(name, str(exc)) from exc
    return raw


def parse_date_param(raw: str | None, name: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadParameterError(name, f"not a date (YYYY-MM-DD): {raw!r}") from exc


def register_routes(
    hub: Hub, *, chart: ChartOfAccounts, catalog: SchemaCatalog, registry: RegistryClient
) -> None:
    app = hub.app
    settings = hub.settings
    read_key = settings.api_read_key
    write_key = settings.api_write_key

    def authorised(request: Request, *, write: bool) -> bool:
        expected = write_key if write else read_key
        if expected is None:
            return True
        given = request.headers.get("X-API-Key", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer ") :]
        # A write key may also read; compare in constant time against each accepted key.
        accepted = [expected] if write or write_key is None else [expected, write_key]
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in accepted)

    def row_of(table: str, key: str) -> Any | None:
        raw = hub.tables[table].get(key.encode())
        if not isinstance(raw, bytes):
            return None
        return reducers.row_from_json_dict(table, orjson.loads(raw))

    def freshness(table: str, key: str) -> dict[str, Any]:
        topic_name = settings.topic(f"fin.internal.deltas.{table}")
        partition = app.producer.key_partition(topic_name, key.encode()).partition
        return {
            "table": table,
            "partition": partition,
            "worker": settings.web_url,
            "as_of": datetime.now(UTC).isoformat(),
        }

    async def routed(
        view: View,
        request: Request,
        table: str,
        key: str,
        local: Callable[[], Awaitable[Response]],
    ) -> Response:
        if not authorised(request, write=False):
            return problem(view, 401, "unauthorised", "a valid X-API-Key header is required")
        try:
            try:
                return await app.router.route_req(table, key.encode(), view.web, request)
            except SameNode:
                return await local()
        except BadParameterError as exc:
            return problem(view, 400, "bad parameter", exc.detail, parameter=exc.name)

    @app.page(PREFIX + "/budgets/department/{dept}")
    class BudgetView(View):
        async def get(self, request: Request, dept: str) -> Response:
            try:
                category = request.query.get("category", "SALARY")
                if not chart.is_category(category):
                    raise BadParameterError("category", f"unknown budget category {category!r}")
                period = parse_period_param(request.query.get("period"))
                amount = parse_amount(request.query.get("amount"), "amount")
            except BadParameterError as exc:
                return problem(self, 400, "bad parameter", exc.detail, parameter=exc.name)
            key = f"{dept}|{category}|{period}"

            async def local() -> Response:
                row = row_of("budgets", key)
                if row is None:
                    return problem(
                        self,
                        404,
                        "not found",
                        f"no budget or actuals for department {dept}, category "
                        f"{category}, period {period}",
                    )
                status = reducers.budget_status(row, amount, category=chart.category(category))
                return json_response(
                    self,
                    {
                        "department": dept,
                        "category": category,
                        "period": period,
                        **to_jsonable(status),
                        "freshness": freshness("budgets", key),
                    },
                )

            return await routed(self, request, "budgets", key, local)

    @app.page(PREFIX + "/ap/vendors/{vendor}/payment-status")
    class VendorView(View):
        async def get(self, request: Request, vendor: str) -> Response:
            try:
                as_of = parse_date_param(
                    request.query.get("as_of"), "as_of", datetime.now(UTC).date()
                )
            except BadParameterError as exc:
                return problem(self, 400, "bad parameter", exc.detail, parameter=exc.name)

            async def local() -> Response:
                row = row_of("vendors", vendor)
                if row is None:
                    return problem(self, 404, "not found", f"no payables for vendor {vendor}")
                status = reducers.vendor_status(row, as_of)
                return json_response(
                    self,
                    {
                        "vendor_id": vendor,
                        "as_of": as_of,
                        **to_jsonable(status),
                        "freshness": freshness("vendors", vendor),
                    },
                )

            return await routed(self, request, "vendors", vendor, local)

    @app.page(PREFIX + "/ar/customers/{customer}/credit-status")
    class CustomerView(View):
        async def get(self, request: Request, customer: str) -> Response:
            async def local() -> Response:
                row = row_of("customers", customer)
                if row is None:
                    return problem(
                        self, 404, "not found", f"no credit data for customer {customer}"
                    )
                status = reducers.credit_status(row, near_ratio=chart.credit_near_ratio)
                return json_response(
                    self,
                    {
                        "customer_id": customer,
                        **to_jsonable(status),
                        "freshness": freshness("customers", customer),
                    },
                )

            return await routed(self, request, "customers", customer, local)

    @app.page(PREFIX + "/ledger/trial-balance")
    class TrialBalanceView(View):
        async def get(self, request: Request) -> Response:
            try:
                period = parse_period_param(request.query.get("period"))
            except BadParameterError as exc:
                return problem(self, 400, "bad parameter", exc.detail, parameter=exc.name)

            async def local() -> Response:
                row = row_of("periods", period)
                if row is None:
                    return problem(self, 404, "not found", f"no postings in period {period}")
                return json_response(
                    self,
                    {
                        "period": period,
                        **to_jsonable(reducers.trial_balance(row)),
                        "freshness": freshness("periods", period),
                    },
                )

            return await routed(self, request, "periods", period, local)

    @app.page(PREFIX + "/ledger/accounts/{account}")
    class AccountView(View):
        async def get(self, request: Request, account: str) -> Response:
            try:
                period = parse_period_param(request.query.get("period"))
            except BadParameterError as exc:
                return problem(self, 400, "bad parameter", exc.detail, parameter=exc.name)

            async def local() -> Response:
                row = row_of("periods", period)
                balance = reducers.account_balance(row, account) if row is not None else None
                if balance is None:
                    return problem(
                        self,
                        404,
                        "not found",
                        f"no postings to account {account} in period {period}",
                    )
                return json_response(
                    self,
                    {
                        "account": account,
                        "period": period,
                        **to_jsonable(balance),
                        "freshness": freshness("periods", period),
                    },
                )

            return await routed(self, request, "periods", period, local)

    @app.page(PREFIX + "/ledger/entries/{entry_id}")
    class EntryView(View):
        async def get(self, request: Request, entry_id: str) -> Response:
            async def local() -> Response:
                raw = hub.tables["entries"].get(entry_id.encode())
                if not isinstance(raw, bytes):
                    return problem(self, 404, "not found", f"no journal entry {entry_id}")
                await hub.prefetch_schema(raw)
                decoded = hub.decoder.decode(LEDGER_TOPIC, raw)
                if isinstance(decoded, Rejection):
                    log.error("stored entry %s does not decode: %s", entry_id, decoded)
                    return problem(self, 500, "entry unreadable", str(decoded.reason))
                return json_response(self, decoded.record)

            return await routed(self, request, "entries", entry_id, local)

    @app.page(PARTIAL_PATH)
    class IntegrityPartialView(View):
        async def get(self, request: Request) -> Response:
            if not authorised(request, write=False):
                return problem(self, 401, "unauthorised", "a valid X-API-Key header is required")
            return json_response(self, local_partial(hub))

    forward_headers = {"X-API-Key": read_key} if read_key else {}
    periodic = PeriodicIntegrity(hub, chart, forward_headers)

    @app.page(PREFIX + "/ledger/integrity")
    class IntegrityView(View):
        async def get(self, request: Request) -> Response:
            if not authorised(request, write=False):
                return problem(self, 401, "unauthorised", "a valid X-API-Key header is required")
            report = build_report(await gather_parts(hub, forward_headers), chart)
            return json_response(self, report.to_json())

    @app.timer(interval=INTEGRITY_INTERVAL_S, on_leader=True)  # type: ignore[untyped-decorator]
    async def integrity_check() -> None:
        if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        try:
            await periodic.run()
        except Exception:
            # A check that cannot run (a worker unreachable mid-rebalance) is retried next time;
            # it must not take the worker down.
            log.exception("periodic integrity check could not run")

    lags: dict[tuple[str, int], int] = {}

    @app.timer(interval=LAG_SAMPLE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def lag_sampler() -> None:
        try:
            lags.clear()
            lags.update(await sample_lag(hub))
        except Exception:
            log.exception("consumer lag could not be sampled")

    @app.page(PREFIX + "/status")
    class StatusView(View):
        async def get(self, request: Request) -> Response:
            if not authorised(request, write=False):
                return problem(self, 401, "unauthorised", "a valid X-API-Key header is required")
            return json_response(self, status_snapshot(hub, lags))

    @app.page("/")
    class StatusPage(View):
        async def get(self, request: Request) -> Response:
            if not authorised(request, write=False):
                return problem(self, 401, "unauthorised", "a valid X-API-Key header is required")
            return self.html(render_status_page(status_snapshot(hub, lags)))

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return json_response(
                self, {"status": "alive", "uptime_s": round(time.time() - hub.started_at, 1)}
            )

    @app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            recovered = bool(app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
            hub.metrics.recovery_complete.set(1 if recovered else 0)
            body = {"tables_recovered": recovered}
            return json_response(self, {"ready": recovered, **body}, 200 if recovered else 503)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            if not authorised(request, write=False):
                return problem(self, 401, "unauthorised", "a valid X-API-Key header is required")
            return self.bytes(
                generate_latest(hub.metrics.registry),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )
