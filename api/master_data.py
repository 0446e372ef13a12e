"""Master data (issue 16): departments (register, rename, retire) and periods (close, re-open).

Reads answer from this worker's registers (every worker reads the master-data topic); changes
are commands like any other.
"""

from __future__ import annotations

import functools

from faust.web import Request, Response, View

from api import commands
from api.context import Api
from api.http import BadParameterError, bad_parameter, json_response, problem, refuse_access
from api.openapi import PREFIX
from ledger.contract import DEPARTMENT_CHANGED, PERIOD_CHANGED


async def get_departments(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    register = api.chart.department_register
    return json_response(view, {"departments": [d.to_json_dict() for d in register.all()]})


async def get_department(api: Api, view: View, request: Request, dept: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    found = api.chart.department_register.get(dept)
    if found is None:
        return problem(view, 404, "not found", f"no department {dept!r}")
    return json_response(view, found.to_json_dict())


async def change_department(
    action: str, api: Api, view: View, request: Request, dept: str
) -> Response:
    return await api.intake.accept(
        view,
        request,
        DEPARTMENT_CHANGED,
        functools.partial(commands.department_changed_data, dept, action),
    )


async def put_department(api: Api, view: View, request: Request, dept: str) -> Response:
    return await change_department("REGISTER", api, view, request, dept)


async def patch_department(api: Api, view: View, request: Request, dept: str) -> Response:
    return await change_department("RENAME", api, view, request, dept)


async def delete_department(api: Api, view: View, request: Request, dept: str) -> Response:
    return await change_department("RETIRE", api, view, request, dept)


async def get_periods(api: Api, view: View, request: Request) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    return json_response(
        view,
        {
            "closed_period_policy": api.chart.closed_period_policy,
            "periods": api.chart.period_register.all(),
        },
    )


async def get_period(api: Api, view: View, request: Request, period: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        month = commands.month_text(period)
    except BadParameterError as exc:
        return bad_parameter(view, exc)
    return json_response(view, api.chart.period_register.state(month))


async def change_period(
    action: str, api: Api, view: View, request: Request, period: str
) -> Response:
    return await api.intake.accept(
        view,
        request,
        PERIOD_CHANGED,
        functools.partial(commands.period_changed_data, period, action),
    )


async def close_period(api: Api, view: View, request: Request, period: str) -> Response:
    return await change_period("CLOSE", api, view, request, period)


async def reopen_period(api: Api, view: View, request: Request, period: str) -> Response:
    return await change_period("REOPEN", api, view, request, period)


def register(api: Api) -> None:
    api.add_page(PREFIX + "/departments", "DepartmentsView", get=get_departments)
    api.add_page(
        PREFIX + "/departments/{dept}",
        "DepartmentView",
        get=get_department,
        put=put_department,
        patch=patch_department,
        delete=delete_department,
    )
    api.add_page(PREFIX + "/periods", "PeriodsView", get=get_periods)
    api.add_page(PREFIX + "/periods/{period}", "PeriodView", get=get_period)
    api.add_page(PREFIX + "/periods/{period}/close", "PeriodCloseView", post=close_period)
    api.add_page(PREFIX + "/periods/{period}/reopen", "PeriodReopenView", post=reopen_period)
