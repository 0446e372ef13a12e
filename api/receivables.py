"""Accounts receivable: a customer's credit status, its credit limit, and payments received."""

from __future__ import annotations

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
from ledger.contract import CREDIT_LIMIT_SET, CUSTOMER_PAYMENT_RECEIVED, CUSTOMERS_TABLE


async def get_credit_status(api: Api, view: View, request: Request, customer: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        params.entity_id(customer, "customer")
    except BadParameterError as exc:
        return bad_parameter(view, exc)

    async def local() -> Response:
        row = api.row_of(CUSTOMERS_TABLE, customer)
        if row is None:
            return problem(view, 404, "not found", f"no credit data for customer {customer}")
        status = reducers.credit_status(row, near_ratio=api.chart.credit_near_ratio)
        return json_response(
            view,
            {
                "customer_id": customer,
                **to_jsonable(status),
                "freshness": api.freshness(CUSTOMERS_TABLE, customer),
            },
        )

    return await api.routed(view, request, CUSTOMERS_TABLE, customer, local)


async def put_credit_limit(api: Api, view: View, request: Request, customer: str) -> Response:
    return await api.intake.accept(
        view,
        request,
        CREDIT_LIMIT_SET,
        lambda body: commands.credit_limit_set_data(params.entity_id(customer, "customer"), body),
    )


async def post_payment(api: Api, view: View, request: Request, customer: str) -> Response:
    return await api.intake.accept(
        view,
        request,
        CUSTOMER_PAYMENT_RECEIVED,
        lambda body: commands.customer_payment_data(params.entity_id(customer, "customer"), body),
    )


def register(api: Api) -> None:
    customers = PREFIX + "/ar/customers/{customer}"
    api.add_page(customers + "/credit-status", "CustomerView", get=get_credit_status)
    api.add_page(customers + "/credit-limit", "CreditLimitView", put=put_credit_limit)
    api.add_page(customers + "/payments", "CustomerPaymentsView", post=post_payment)
