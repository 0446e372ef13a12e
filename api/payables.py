"""Accounts payable: a vendor's payment status (open, overdue, aging), and payments made."""

from __future__ import annotations

from datetime import UTC, datetime

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
from ledger.contract import VENDOR_PAYMENT_MADE, VENDORS_TABLE


async def get_payment_status(api: Api, view: View, request: Request, vendor: str) -> Response:
    if (status := api.refusal(request)) is not None:
        return refuse_access(view, status)
    try:
        params.entity_id(vendor, "vendor")
        as_of_text = api.query(request, "as_of")
        as_of = (
            params.iso_date(as_of_text, "as_of")
            if as_of_text is not None
            else datetime.now(UTC).date()
        )
    except BadParameterError as exc:
        return bad_parameter(view, exc)

    async def local() -> Response:
        row = api.row_of(VENDORS_TABLE, vendor)
        if row is None:
            return problem(view, 404, "not found", f"no payables for vendor {vendor}")
        status = reducers.vendor_status(row, as_of)
        return json_response(
            view,
            {
                "vendor_id": vendor,
                "as_of": as_of,
                **to_jsonable(status),
                "freshness": api.freshness(VENDORS_TABLE, vendor),
            },
        )

    return await api.routed(view, request, VENDORS_TABLE, vendor, local)


async def post_payment(api: Api, view: View, request: Request, vendor: str) -> Response:
    return await api.intake.accept(
        view,
        request,
        VENDOR_PAYMENT_MADE,
        lambda body: commands.vendor_payment_data(params.entity_id(vendor, "vendor"), body),
    )


def register(api: Api) -> None:
    api.add_page(
        PREFIX + "/ap/vendors/{vendor}/payment-status", "VendorView", get=get_payment_status
    )
    api.add_page(PREFIX + "/ap/vendors/{vendor}/payments", "VendorPaymentsView", post=post_payment)
