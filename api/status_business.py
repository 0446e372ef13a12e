"""What an accountant asks the operator: which budgets are at warn or stop, which customers are
over their credit limit, which vendors have overdue payables.

Computed from the table rows this worker holds (its active partitions; the page says how many
rows it looked at), with the same views as the REST API (``ledger.reducers``), so a number here
is the number ``GET /budgets/...``, ``/credit-status`` or ``/payment-status`` would answer.
Pure: the rows come in as (key, decoded JSON) pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.contract import KEY_SEPARATOR

TOP_DEFAULT = 10
RowItems = Iterable[tuple[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class BudgetLine:
    department: str
    category: str
    period: str
    budget: Decimal
    actual: Decimal
    utilisation: Decimal | None
    status: str  # near (at warn) or exceeded (over stop)


@dataclass(frozen=True)
class CustomerLine:
    customer: str
    limit: Decimal
    exposure: Decimal
    over_by: Decimal


@dataclass(frozen=True)
class VendorLine:
    vendor: str
    overdue: Decimal
    open: Decimal
    open_items: int


@dataclass(frozen=True)
class BusinessPanel:
    budgets_near: int
    budgets_exceeded: int
    budgets: tuple[BudgetLine, ...]  # the top N: exceeded first, then by utilisation
    customers_over: int
    customers: tuple[CustomerLine, ...]  # the top N by amount over the limit
    vendors_overdue: int
    overdue_total: Decimal
    vendors: tuple[VendorLine, ...]  # the top N by overdue amount
    rows_read: int
    rows_unreadable: int
    as_of: date
    top: int


def business_panel(
    *,
    budgets: RowItems,
    customers: RowItems,
    vendors: RowItems,
    chart: ChartOfAccounts,
    as_of: date,
    top: int = TOP_DEFAULT,
) -> BusinessPanel:
    assert top > 0, "top must be positive"
    rows_read = unreadable = 0
    budget_lines: list[BudgetLine] = []
    for key, encoded in budgets:
        rows_read += 1
        parts = key.split(KEY_SEPARATOR)
        try:
            row = reducers.row_from_json_dict("budgets", encoded)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            unreadable += 1
            continue
        if len(parts) != 3 or not chart.is_category(parts[1]):
            continue  # a key of another shape, or a category no longer in the chart
        department, category, period = parts
        assert isinstance(row, reducers.BudgetRow)
        status = reducers.budget_status(row, None, category=chart.category(category))
        if status.status in ("near", "exceeded") and status.budget is not None:
            budget_lines.append(
                BudgetLine(
                    department=department,
                    category=category,
                    period=period,
                    budget=status.budget,
                    actual=status.actual,
                    utilisation=status.utilisation,
                    status=status.status,
                )
            )
    customer_lines: list[CustomerLine] = []
    for key, encoded in customers:
        rows_read += 1
        try:
            customer = reducers.row_from_json_dict("customers", encoded)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            unreadable += 1
            continue
        assert isinstance(customer, reducers.CustomerRow)
        credit = reducers.credit_status(customer, near_ratio=chart.credit_near_ratio)
        if credit.status == "over" and credit.limit is not None:
            customer_lines.append(
                CustomerLine(key, credit.limit, credit.exposure, credit.exposure - credit.limit)
            )
    vendor_lines: list[VendorLine] = []
    for key, encoded in vendors:
        rows_read += 1
        try:
            vendor = reducers.row_from_json_dict("vendors", encoded)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            unreadable += 1
            continue
        assert isinstance(vendor, reducers.VendorRow)
        payables = reducers.vendor_status(vendor, as_of)
        if payables.overdue > 0:
            vendor_lines.append(
                VendorLine(key, payables.overdue, payables.open, payables.open_items)
            )
    budget_lines.sort(
        key=lambda line: (
            line.status != "exceeded",
            -(line.utilisation if line.utilisation is not None else Decimal(0)),
            line.department,
            line.period,
        )
    )
    customer_lines.sort(key=lambda line: (-line.over_by, line.customer))
    vendor_lines.sort(key=lambda line: (-line.overdue, line.vendor))
    return BusinessPanel(
        budgets_near=sum(1 for line in budget_lines if line.status == "near"),
        budgets_exceeded=sum(1 for line in budget_lines if line.status == "exceeded"),
        budgets=tuple(budget_lines[:top]),
        customers_over=len(customer_lines),
        customers=tuple(customer_lines[:top]),
        vendors_overdue=len(vendor_lines),
        overdue_total=sum((line.overdue for line in vendor_lines), Decimal("0.00")),
        vendors=tuple(vendor_lines[:top]),
        rows_read=rows_read,
        rows_unreadable=unreadable,
        as_of=as_of,
        top=top,
    )
