"""REST under /api/v1/fin: reads routed to the worker that owns the key, commands, operations.

Handlers only parse parameters (``api.params``), check the key (``api.http``), then either route
and read a table row rendered by a pure ``ledger`` view, or publish a command
(``api.commands``) — a handler never writes a table. A read for a key owned by another worker
is forwarded there (faust's router), so any worker answers any key; the body says which
partition answered and how fresh it is. The paths registered here are the operations of
``api.openapi`` (a unit test holds the two to the same set).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from faust.exceptions import SameNode
from faust.types import TP
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import commands, params
from api.commands import (
    CommandRejectedError,
    IdempotencyKeyReusedError,
    IdempotencyMemory,
    PreparedCommand,
)
from api.http import (
    ApiKeys,
    BadParameterError,
    FinView,
    RequestRefusedError,
    bad_parameter,
    given_key,
    install_host_guard,
    install_problem_middleware,
    json_bytes,
    json_response,
    problem,
    read_body,
    refuse_access,
    require_json_media_type,
    security_warnings,
    to_jsonable,
)
from api.integrity import (
    ChainWatch,
    PeriodicIntegrity,
    build_report,
    gather_parts,
    local_partial,
    with_chains,
)
from api.openapi import INTEGRITY_PARTIAL_PATH, OPENAPI_PATH, PREFIX, build_document
from api.status import (
    LAG_SAMPLE_INTERVAL_S,
    REGISTRY_PROBE_INTERVAL_S,
    RegistryProbe,
    Throughput,
    consumed_total,
    render_status_page,
    sample_lag,
    status_snapshot,
)
from api.status_board import StatusBoard, zero_known_series
from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.contract import (
    BUDGET_SET,
    COMPENSATION_REQUESTED,
    CREDIT_LIMIT_SET,
    CUSTOMER_PAYMENT_RECEIVED,
    DEPARTMENT_CHANGED,
    PERIOD_CHANGED,
    VENDOR_PAYMENT_MADE,
)
from ledger.rejections import Rejection
from schemas.catalog import SchemaCatalog
from schemas.registry import RegistryClient
from settings import COMMANDS_TOPIC, DELTA_TABLES, LEDGER_TOPIC
from streams.admin import group_committed_offsets
from streams.faust_patches.commit_guard import (
    CommitWatch,
    adopt_broker_offsets,
    holes_at_head,
    reread_holes,
)
from streams.hub import Hub
from tables.entries_index import IndexBehindError

log = logging.getLogger(__name__)

INTEGRITY_INTERVAL_S = 60.0
DEFAULT_CATEGORY = "SALARY"

# Builds a command's data from the path parameters and the JSON body.
DataBuilder = Callable[[Mapping[str, Any]], dict[str, Any]]


def register_routes(
    hub: Hub, *, chart: ChartOfAccounts, catalog: SchemaCatalog, registry: RegistryClient
) -> None:
    app = hub.app
    settings = hub.settings
    keys = ApiKeys(
        settings.api_read_key, settings.api_write_key, insecure_writes=settings.api_insecure_writes
    )
    for warning in security_warnings(keys, settings.host_allow_list):
        log.warning("SECURITY WARNING: %s", warning)
    install_host_guard(app, settings.host_allow_list)
    install_problem_middleware(app)
    document = json_bytes(
        build_document(
            chart,
            read_protected=keys.read_key is not None,
            write_protected=not keys.writes_open,
        )
    )

    def refusal(request: Request, *, write: bool = False) -> int | None:
        return keys.refusal(given_key(request), write=write)

    def query(request: Request, name: str) -> str | None:
        return params.single_query_value(request.rel_url.query, name)

    def query_or_default(request: Request, name: str, default: str) -> str:
        # Only an absent parameter takes the default: `?category=` is a (bad) value.
        value = query(request, name)
        return default if value is None else value

    def row_of(table: str, key: str) -> Any | None:
        raw = hub.tables[table].get(key.encode())
        if not isinstance(raw, bytes):
            return None
        return reducers.row_from_json_dict(table, orjson.loads(raw))

    # Consumer lag per (contract topic, partition), sampled every few seconds (api/status.py).
    lags: dict[tuple[str, int], int] = {}

    def freshness(table: str, key: str) -> dict[str, Any]:
        """Which partition answered, and how far its table is behind its input right now."""
        contract = f"fin.internal.deltas.{table}" if table in DELTA_TABLES else None
        topic_name = settings.topic(contract or LEDGER_TOPIC)
        partition = app.producer.key_partition(topic_name, key.encode()).partition
        body: dict[str, Any] = {
            "table": table,
            "partition": partition,
            "worker": settings.web_url,
            "as_of": datetime.now(UTC).isoformat(),
        }
        if contract is not None:
            committed = app.consumer._committed_offset.get(  # type: ignore[attr-defined]
                TP(topic_name, partition)
            )
            body["applied_offset"] = committed
            body["lag"] = lags.get((contract, partition))
        return body

    async def routed(
        view: View,
        request: Request,
        table: str,
        key: str,
        local: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Answer from this worker if it owns ``key``, else forward to the owner."""
        try:
            return await app.router.route_req(table, key.encode(), view.web, request)
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

    # --- reads -----------------------------------------------------------------------------

    def budget_key_parameters(request: Request, dept: str) -> tuple[str, str]:
        if not chart.is_department(dept):
            raise BadParameterError("dept", f"unknown department {dept!r}")
        category = query_or_default(request, "category", DEFAULT_CATEGORY)
        if not chart.is_category(category):
            raise BadParameterError("category", f"unknown budget category {category!r}")
        return category, params.period(query(request, "period"))

    @app.page(PREFIX + "/budgets/department/{dept}")
    class BudgetView(FinView):
        async def get(self, request: Request, dept: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                category, period = budget_key_parameters(request, dept)
                amount = params.non_negative_money_query(query(request, "amount"), "amount")
            except BadParameterError as exc:
                return bad_parameter(self, exc)
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

        async def put(self, request: Request, dept: str) -> Response:
            def data(body: Mapping[str, Any]) -> dict[str, Any]:
                # The department is checked by validation (reference_unknown), like any command.
                category = query_or_default(request, "category", DEFAULT_CATEGORY)
                return commands.budget_set_data(
                    dept, category, params.period(query(request, "period")), body
                )

            return await accept_command(self, request, BUDGET_SET, data)

    @app.page(PREFIX + "/ap/vendors/{vendor}/payment-status")
    class VendorView(FinView):
        async def get(self, request: Request, vendor: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                params.entity_id(vendor, "vendor")
                as_of_text = query(request, "as_of")
                as_of = (
                    params.iso_date(as_of_text, "as_of")
                    if as_of_text is not None
                    else datetime.now(UTC).date()
                )
            except BadParameterError as exc:
                return bad_parameter(self, exc)

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

    @app.page(PREFIX + "/ap/vendors/{vendor}/payments")
    class VendorPaymentsView(FinView):
        async def post(self, request: Request, vendor: str) -> Response:
            return await accept_command(
                self,
                request,
                VENDOR_PAYMENT_MADE,
                lambda body: commands.vendor_payment_data(params.entity_id(vendor, "vendor"), body),
            )

    @app.page(PREFIX + "/ar/customers/{customer}/credit-status")
    class CustomerView(FinView):
        async def get(self, request: Request, customer: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                params.entity_id(customer, "customer")
            except BadParameterError as exc:
                return bad_parameter(self, exc)

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

    @app.page(PREFIX + "/ar/customers/{customer}/credit-limit")
    class CreditLimitView(FinView):
        async def put(self, request: Request, customer: str) -> Response:
            return await accept_command(
                self,
                request,
                CREDIT_LIMIT_SET,
                lambda body: commands.credit_limit_set_data(
                    params.entity_id(customer, "customer"), body
                ),
            )

    @app.page(PREFIX + "/ar/customers/{customer}/payments")
    class CustomerPaymentsView(FinView):
        async def post(self, request: Request, customer: str) -> Response:
            return await accept_command(
                self,
                request,
                CUSTOMER_PAYMENT_RECEIVED,
                lambda body: commands.customer_payment_data(
                    params.entity_id(customer, "customer"), body
                ),
            )

    # --- departments: master data (issue 16) -------------------------------------------
    register = chart.department_register

    @app.page(PREFIX + "/departments")
    class DepartmentsView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            return json_response(
                self, {"departments": [d.to_json_dict() for d in register.all()]}
            )

    @app.page(PREFIX + "/departments/{dept}")
    class DepartmentView(FinView):
        async def get(self, request: Request, dept: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            found = register.get(dept)
            if found is None:
                return problem(self, 404, "not found", f"no department {dept!r}")
            return json_response(self, found.to_json_dict())

        async def put(self, request: Request, dept: str) -> Response:
            return await accept_command(
                self,
                request,
                DEPARTMENT_CHANGED,
                functools.partial(commands.department_changed_data, dept, "REGISTER"),
            )

        async def patch(self, request: Request, dept: str) -> Response:
            return await accept_command(
                self,
                request,
                DEPARTMENT_CHANGED,
                functools.partial(commands.department_changed_data, dept, "RENAME"),
            )

        async def delete(self, request: Request, dept: str) -> Response:
            return await accept_command(
                self,
                request,
                DEPARTMENT_CHANGED,
                functools.partial(commands.department_changed_data, dept, "RETIRE"),
            )

    # --- periods: close and re-open (issue 16) ------------------------------------------
    periods = chart.period_register

    @app.page(PREFIX + "/periods")
    class PeriodsView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            return json_response(
                self,
                {
                    "closed_period_policy": chart.closed_period_policy,
                    "periods": periods.all(),
                },
            )

    @app.page(PREFIX + "/periods/{period}")
    class PeriodView(FinView):
        async def get(self, request: Request, period: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                month = commands.month_text(period)
            except BadParameterError as exc:
                return bad_parameter(self, exc)
            return json_response(self, periods.state(month))

    @app.page(PREFIX + "/periods/{period}/close")
    class PeriodCloseView(FinView):
        async def post(self, request: Request, period: str) -> Response:
            return await accept_command(
                self,
                request,
                PERIOD_CHANGED,
                functools.partial(commands.period_changed_data, period, "CLOSE"),
            )

    @app.page(PREFIX + "/periods/{period}/reopen")
    class PeriodReopenView(FinView):
        async def post(self, request: Request, period: str) -> Response:
            return await accept_command(
                self,
                request,
                PERIOD_CHANGED,
                functools.partial(commands.period_changed_data, period, "REOPEN"),
            )

    @app.page(PREFIX + "/compensations")
    class CompensationsView(FinView):
        async def post(self, request: Request) -> Response:
            return await accept_command(
                self, request, COMPENSATION_REQUESTED, commands.compensation_data
            )

    @app.page(PREFIX + "/ledger/trial-balance")
    class TrialBalanceView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                period = params.period(query(request, "period"))
            except BadParameterError as exc:
                return bad_parameter(self, exc)

            async def local() -> Response:
                row = row_of("periods", period)
                if row is None:
                    return problem(self, 404, "not found", f"no postings in period {period}")
                assert isinstance(row, reducers.PeriodRow)
                return json_response(
                    self,
                    {
                        "period": period,
                        **to_jsonable(reducers.trial_balance(row)),
                        # Period close (issue 16): the row's own flag (set when the close
                        # reached it) and the entries dated here booked in a later period.
                        "closed": row.closed,
                        "late_entries_to_later_periods": row.late_entries_out,
                        "freshness": freshness("periods", period),
                    },
                )

            return await routed(self, request, "periods", period, local)

    @app.page(PREFIX + "/ledger/accounts/{account}")
    class AccountView(FinView):
        async def get(self, request: Request, account: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                if account not in chart.accounts:
                    raise BadParameterError("account", f"{account!r} is not in the chart")
                period = params.period(query(request, "period"))
            except BadParameterError as exc:
                return bad_parameter(self, exc)

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
    class EntryView(FinView):
        async def get(self, request: Request, entry_id: str) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                params.uuid_text(entry_id, "entry_id", nil_allowed=True)
            except BadParameterError as exc:
                return bad_parameter(self, exc)

            index = hub.entries_index

            async def local() -> Response:
                if index is not None:
                    try:
                        raw = await index.find(entry_id)
                    except IndexBehindError as exc:
                        return problem(self, 503, "catching up", f"entry {entry_id}: {exc}")
                else:
                    raw = hub.tables["entries"].get(entry_id.encode())
                if not isinstance(raw, bytes):
                    return problem(self, 404, "not found", f"no journal entry {entry_id}")
                await hub.prefetch_schema(raw)
                decoded = hub.decoder.decode(LEDGER_TOPIC, raw)
                if isinstance(decoded, Rejection):
                    # Our own topic holds only what we encoded: this is a bug, not a request.
                    raise RuntimeError(f"stored entry {entry_id} does not decode: {decoded}")
                return json_response(self, decoded.record)

            if index is not None:
                return await local()  # every worker has the whole ledger: no routing
            return await routed(self, request, "entries", entry_id, local)

    # --- commands --------------------------------------------------------------------------

    idempotency = IdempotencyMemory()
    commands_topic = hub.topic(COMMANDS_TOPIC)

    async def accept_command(
        view: View, request: Request, event_type: str, build_data: DataBuilder
    ) -> Response:
        """Parse, validate, publish; 202 once Kafka has the command."""
        if (status := refusal(request, write=True)) is not None:
            return refuse_access(view, status, writes_disabled=keys.writes_disabled)
        try:
            require_json_media_type(request)
            body = commands.parse_json_object(await read_body(request))
            header = request.headers.get("Idempotency-Key")
            given = params.uuid_text(header, "Idempotency-Key") if header is not None else None
            data = build_data(body)
            # Without a key, a payment's id is its natural key's (the same payment twice is one).
            natural = commands.natural_command_id(event_type, data) if given is None else None
            event_id = given or natural or commands.new_command_id()
            command = prepared_command(
                event_type, data, event_id, remembered=given is not None or natural is not None
            )
        except RequestRefusedError as exc:
            return problem(view, exc.status, exc.title, exc.detail)
        except BadParameterError as exc:
            return bad_parameter(view, exc)
        except CommandRejectedError as exc:
            return problem(
                view,
                400,
                "command rejected",
                exc.rejection.detail,
                reason=exc.rejection.reason.value,
            )
        except IdempotencyKeyReusedError as exc:
            if header is None:
                return problem(
                    view,
                    409,
                    "conflict",
                    f"payment_id {data['payment_id']} was already used for a different payment "
                    f"(command {exc.key}); a resend must repeat it exactly, another payment "
                    "needs its own payment_id",
                    parameter="payment_id",
                )
            return problem(
                view,
                409,
                "conflict",
                f"Idempotency-Key {exc.key} was already used for a different request",
                parameter="Idempotency-Key",
            )
        try:
            partition, offset = await commands.publish(commands_topic, command)
        except TimeoutError:
            log.warning("command %s not acknowledged by Kafka in time", command.command_id)
            return problem(
                view,
                503,
                "service unavailable",
                "Kafka did not acknowledge the command in time; retry with the same "
                "Idempotency-Key",
            )
        return json_response(
            view,
            {
                "command_id": command.command_id,
                "status": "accepted",
                "event_type": command.event_type,
                "partition": partition,
                "offset": offset,
            },
            202,
        )

    def prepared_command(
        event_type: str, data: dict[str, Any], event_id: str, *, remembered: bool
    ) -> PreparedCommand:
        if remembered:
            again = idempotency.recall(event_id, commands.request_digest(event_type, data))
            if again is not None:
                return again
        command = commands.prepare(
            event_type,
            data,
            event_id=event_id,
            now=datetime.now(UTC),
            chart=chart,
            encoder=hub.encoder,
        )
        if remembered:
            idempotency.remember(event_id, command)
        return command

    # --- integrity, status, operations -----------------------------------------------------

    @app.page(INTEGRITY_PARTIAL_PATH)
    class IntegrityPartialView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            return json_response(self, local_partial(hub))

    forward_headers = {"X-API-Key": keys.read_key} if keys.read_key else {}
    periodic = PeriodicIntegrity(hub, chart, forward_headers)
    chain_watch = ChainWatch(hub)

    @app.page(PREFIX + "/ledger/integrity")
    class IntegrityView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            try:
                parts = await gather_parts(hub, forward_headers)
            except (aiohttp.ClientError, RuntimeError) as exc:
                return problem(
                    self, 503, "service unavailable", f"a worker's part is missing: {exc}"
                )
            report = build_report(parts, chart).to_json()
            return json_response(self, with_chains(report, await chain_watch.status()))

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

    throughput = Throughput()
    commit_watch = CommitWatch()
    # The status page's charts, business panel and last dead letters (api/status_board.py).
    board = StatusBoard(hub, chart, registry_reachable=lambda: registry_reachable.ok)
    zero_known_series(hub)

    @app.timer(interval=LAG_SAMPLE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def lag_sampler() -> None:
        throughput.sample(consumed_total(hub.metrics.registry), time.monotonic())
        behind = {
            TP(hub.settings.topic(topic), partition): lag
            for (topic, partition), lag in lags.items()
        }
        stalled = commit_watch.stalled(app.consumer, time.monotonic(), behind)
        if stalled:
            for _, report in stalled:
                log.warning("offset commit stalled: %s", report)
            try:
                broker = await asyncio.get_running_loop().run_in_executor(
                    None, group_committed_offsets, hub.settings
                )
            except Exception:
                log.exception("committed offsets could not be read from the broker")
            else:
                healed = adopt_broker_offsets(app.consumer, [tp for tp, _ in stalled], broker)
                for change in healed:
                    log.warning("committed offset taken from the broker: %s", change)
            holes = holes_at_head(app.consumer, [tp for tp, _ in stalled])
            try:
                for change in await reread_holes(app.consumer, holes):
                    # Should not happen since keep_queued_records_on_resume; a delta re-read
                    # after later ones were applied is refused by its table's position guard.
                    log.error(
                        "re-reading a partition with records never processed: %s; check "
                        "GET /api/v1/fin/ledger/integrity",
                        change,
                    )
            except Exception:  # e.g. the partition was revoked meanwhile; the watch runs again
                log.exception("re-reading %s failed", sorted(holes))
        try:
            sampled = await sample_lag(hub)
        except Exception:
            log.exception("consumer lag could not be sampled")
            return
        # Replaced in one step after the await: a page rendered meanwhile sees the old sample,
        # never an empty table.
        lags.clear()
        lags.update(sampled)
        board.sample(lags)

    @app.page(PREFIX + "/status")
    class StatusView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            view = await board.view()
            return json_response(self, {**status_snapshot(hub, lags, throughput), **view.to_json()})

    @app.page("/")
    class StatusPage(FinView):
        async def get(self, request: Request) -> Response:
            # The page alone takes ?key= (a browser cannot send a header); the read key only,
            # so a write key never ends up in a URL. See api.status.
            from_url = request.rel_url.query.get("key")
            header_key = given_key(request)
            status = (
                keys.refusal(header_key, write=False)
                if header_key is not None or from_url is None
                else ApiKeys(keys.read_key, None).refusal(from_url, write=False)
            )
            if status is not None:
                return refuse_access(self, status)
            page = render_status_page(status_snapshot(hub, lags, throughput), await board.view())
            return self.html(page, headers={"Referrer-Policy": "no-referrer"})

    @app.page(OPENAPI_PATH)
    class OpenApiView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            return self.bytes(document, content_type="application/json")

    registry_reachable = RegistryProbe(registry)

    @app.timer(interval=REGISTRY_PROBE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def probe_registry() -> None:
        await registry_reachable.probe()

    @app.page("/health")
    class HealthView(FinView):
        async def get(self, request: Request) -> Response:
            return json_response(
                self, {"status": "alive", "uptime_s": round(time.time() - hub.started_at, 1)}
            )

    @app.page("/ready")
    class ReadyView(FinView):
        async def get(self, request: Request) -> Response:
            recovered = bool(app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
            hub.metrics.recovery_complete.set(1 if recovered else 0)
            ready = recovered and registry_reachable.ok
            body = {"tables_recovered": recovered, "registry_reachable": registry_reachable.ok}
            return json_response(self, {"ready": ready, **body}, 200 if ready else 503)

    @app.page("/metrics")
    class MetricsView(FinView):
        async def get(self, request: Request) -> Response:
            if (status := refusal(request)) is not None:
                return refuse_access(self, status)
            return self.bytes(
                generate_latest(hub.metrics.registry),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )
