"""Budgets: ``GET`` a department's budget status (would this amount fit?), ``PUT`` a budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from api.openapi import PREFIX
from ledger import reducers
from ledger.contract import BUDGET_SET, BUDGETS_TABLE, budget_key

DEFAULT_CATEGORY = "SALARY"


def budget_key_parameters(api: Api, request: Request, dept: str) -> tuple[str, str]:
    """The category and period a budget query names; raises BadParameterError."""
    if not api.chart.is_department(dept):
        raise BadParameterError("dept", f"unknown department {dept!r}")
    category = api.query_or_default(request, "category", DEFAULT_CATEGORY)
    if not api.chart.is_category(category):
        raise BadParameterError("category", f"unknown budget category {category!r}")
    return category, params.period(api.query(request, "period"))


async def get_budget(api: Api, view: View, request: Request, dept: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        category, period = budget_key_parameters(api, request, dept)
        amount = params.non_negative_money_query(api.query(request, "amount"), "amount")
    except BadParameterError as exc:
        return bad_parameter(view, exc)
    key = budget_key(dept, category, period)

    async def local() -> Response:
        row = api.row_of(BUDGETS_TABLE, key)
        if row is None:
            return problem(
                view,
                404,
                "not found",
                f"no budget or actuals for department {dept}, category {category}, period {period}",
            )
        status = reducers.budget_status(row, amount, category=api.chart.category(category))
        return json_response(
            view,
            {
                "department": dept,
                "category": category,
                "period": period,
                **to_jsonable(status),
                "freshness": api.freshness(BUDGETS_TABLE, key),
            },
        )

    return await api.routed(view, request, BUDGETS_TABLE, key, local)


async def put_budget(api: Api, view: View, request: Request, dept: str) -> Response:
    def data(body: Mapping[str, Any]) -> dict[str, Any]:
        # The department is checked by validation (reference_unknown), like any command.
        category = api.query_or_default(request, "category", DEFAULT_CATEGORY)
        return commands.budget_set_data(
            dept, category, params.period(api.query(request, "period")), body
        )

    return await api.intake.accept(view, request, BUDGET_SET, data)


def register(api: Api) -> None:
    api.add_page(
        PREFIX + "/budgets/department/{dept}", "BudgetView", get=get_budget, put=put_budget
    )
