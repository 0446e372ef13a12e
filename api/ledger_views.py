"""The ledger: trial balance and account balances per period, journal entries by id,
compensations (reversals), and the integrity report."""

from __future__ import annotations

import aiohttp
from faust.web import Request, Response, View

from api import commands, params
from api.context import Api
from api.http import (
    BadParameterError,
    bad_parameter,
    json_response,
    problem,
    refuse_access,
    to_jsonable,
)
from api.integrity import build_report, gather_parts, local_partial, with_chains
from api.openapi import INTEGRITY_PARTIAL_PATH, PREFIX
from ledger import reducers
from ledger.contract import (
    COMPENSATION_REQUESTED,
    ENTRIES_TABLE,
    LEDGER_TOPIC,
    PERIODS_TABLE,
)
from ledger.rejections import Rejection
from tables.entries_index import IndexBehindError


async def get_trial_balance(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        period = params.period(api.query(request, "period"))
    except BadParameterError as exc:
        return bad_parameter(view, exc)

    async def local() -> Response:
        row = api.row_of(PERIODS_TABLE, period)
        if row is None:
            return problem(view, 404, "not found", f"no postings in period {period}")
        assert isinstance(row, reducers.PeriodRow)
        return json_response(
            view,
            {
                "period": period,
                **to_jsonable(reducers.trial_balance(row)),
                # Period close (issue 16): the row's own flag (set when the close
                # reached it) and the entries dated here booked in a later period.
                "closed": row.closed,
                "late_entries_to_later_periods": row.late_entries_out,
                "freshness": api.freshness(PERIODS_TABLE, period),
            },
        )

    return await api.routed(view, request, PERIODS_TABLE, period, local)


async def get_account(api: Api, view: View, request: Request, account: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        if account not in api.chart.accounts:
            raise BadParameterError("account", f"{account!r} is not in the chart")
        period = params.period(api.query(request, "period"))
    except BadParameterError as exc:
        return bad_parameter(view, exc)

    async def local() -> Response:
        row = api.row_of(PERIODS_TABLE, period)
        balance = reducers.account_balance(row, account) if row is not None else None
        if balance is None:
            return problem(
                view,
                404,
                "not found",
                f"no postings to account {account} in period {period}",
            )
        return json_response(
            view,
            {
                "account": account,
                "period": period,
                **to_jsonable(balance),
                "freshness": api.freshness(PERIODS_TABLE, period),
            },
        )

    return await api.routed(view, request, PERIODS_TABLE, period, local)


async def get_entry(api: Api, view: View, request: Request, entry_id: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        params.uuid_text(entry_id, "entry_id", nil_allowed=True)
    except BadParameterError as exc:
        return bad_parameter(view, exc)

    hub = api.hub
    index = hub.entries_index

    async def local() -> Response:
        if index is not None:
            try:
                raw = await index.find(entry_id)
            except IndexBehindError as exc:
                return problem(view, 503, "catching up", f"entry {entry_id}: {exc}")
        else:
            raw = hub.tables[ENTRIES_TABLE].get(entry_id.encode())
        if not isinstance(raw, bytes):
            return problem(view, 404, "not found", f"no journal entry {entry_id}")
        await hub.prefetch_schema(raw)
        decoded = hub.decoder.decode(LEDGER_TOPIC, raw)
        if isinstance(decoded, Rejection):
            # Our own topic holds only what we encoded: this is a bug, not a request.
            raise RuntimeError(f"stored entry {entry_id} does not decode: {decoded}")
        return json_response(view, decoded.record)

    if index is not None:
        return await local()  # every worker has the whole ledger: no routing
    return await api.routed(view, request, ENTRIES_TABLE, entry_id, local)


async def post_compensation(api: Api, view: View, request: Request) -> Response:
    build_data = commands.compensation_data
    return await api.intake.accept(view, request, COMPENSATION_REQUESTED, build_data)


async def get_integrity_partial(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    return json_response(view, await local_partial(api.hub))


async def get_integrity(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        parts = await gather_parts(api.hub, api.forward_headers)
    except (aiohttp.ClientError, RuntimeError) as exc:
        return problem(view, 503, "service unavailable", f"a worker's part is missing: {exc}")
    report = (await build_report(parts, api.chart)).to_json()
    return json_response(view, with_chains(report, await api.chain_watch.status()))


def register(api: Api) -> None:
    api.add_page(PREFIX + "/compensations", "CompensationsView", post=post_compensation)
    api.add_page(PREFIX + "/ledger/trial-balance", "TrialBalanceView", get=get_trial_balance)
    api.add_page(PREFIX + "/ledger/accounts/{account}", "AccountView", get=get_account)
    api.add_page(PREFIX + "/ledger/entries/{entry_id}", "EntryView", get=get_entry)
    api.add_page(INTEGRITY_PARTIAL_PATH, "IntegrityPartialView", get=get_integrity_partial)
    api.add_page(PREFIX + "/ledger/integrity", "IntegrityView", get=get_integrity)
