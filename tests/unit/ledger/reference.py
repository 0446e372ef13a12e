"""A small reference ledger, written independently of ``ledger.rules`` and ``ledger.reducers``.

It reads the raw decoded records (plain dicts) and books their effect straight into dict
balances, with the default posting table of ARCHITECTURE.md written out again here by hand.
The property tests run the real pipeline (validation, idempotency, rules, reducers) and compare
its tables with this, the way TigerBeetle's auditor checks every reply against its own model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal("0.00")

# event type -> (debit account, credit account, amount field), as in the shipped chart.
POSTING_TABLE: Mapping[str, tuple[str, str, str]] = {
    "hr.payroll.processed": ("6100", "2100", "total_gross_pay"),
    "scm.goods.received": ("1200", "2000", "total_amount"),
    "crm.sales_order.completed": ("1100", "4000", "total_amount"),
    "mfg.production_order.completed": ("1400", "1300", "total_cost"),
    "pm.time.logged": ("1150", "4100", "billable_amount"),
    "fin.vendor_payment.made": ("2000", "1000", "amount"),
    "fin.customer_payment.received": ("1000", "1100", "amount"),
}


def business_date(record: Mapping[str, Any]) -> date:
    data = record["data"]
    stated: date | None = data.get("business_date")
    if record["event_type"] == "hr.payroll.processed":
        stated = data["pay_period_end"]
    if stated is not None:
        return stated
    timestamp: datetime = record["timestamp"]
    return timestamp.astimezone(UTC).date()


def month_text(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def quarter_text(day: date) -> str:
    return f"{day.year:04d}-Q{(day.month + 2) // 3}"


class ReferenceLedger:
    def __init__(self) -> None:
        # (month, account) -> debit minus credit
        self.balances: defaultdict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        self.budget_actuals: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        self.budgets: dict[str, Decimal] = {}
        self.exposures: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        self.credit_limits: dict[str, Decimal] = {}
        self.vendor_open: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        self.vendor_paid: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        # (month or quarter, account) -> gross (debit, credit) turnover; a reversal adds the
        # swapped amounts, so turnover grows while the balance returns to where it was.
        self.turnover: defaultdict[tuple[str, str], tuple[Decimal, Decimal]] = defaultdict(
            lambda: (ZERO, ZERO)
        )
        # month or quarter -> journal entries booked there (a reversal is an entry too)
        self.period_entries: defaultdict[str, int] = defaultdict(int)
        self.entries = 0
        self.project_hours: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        self.project_billable: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)
        self.product_quantity: defaultdict[str, int] = defaultdict(int)
        self.product_cost: defaultdict[str, Decimal] = defaultdict(lambda: ZERO)

    @classmethod
    def of(
        cls, records: Iterable[Mapping[str, Any]], compensated: Iterable[str] = ()
    ) -> ReferenceLedger:
        """The ledger of ``records`` (one per event id), each compensated one booked and undone."""
        ledger = cls()
        undone = set(compensated)
        for record in records:
            ledger.book(record, sign=1)
            if record["event_id"] in undone:
                ledger.book(record, sign=-1)
        return ledger

    def book(self, record: Mapping[str, Any], *, sign: int, booked_in: str | None = None) -> None:
        """Book ``record``; ``booked_in``: the month its trial-balance lines go to when its own
        month was closed (budgets and sub-ledgers keep the business date)."""
        event_type = record["event_type"]
        data = record["data"]
        if event_type == "fin.budget.set":
            self.budgets[f"{data['department_id']}|{data['category']}|{data['period']}"] = data[
                "amount"
            ]
            return
        if event_type == "fin.credit_limit.set":
            self.credit_limits[data["customer_id"]] = data["credit_limit"]
            return
        debit_account, credit_account, amount_field = POSTING_TABLE[event_type]
        amount = sign * data[amount_field]
        day = business_date(record)
        month = booked_in or month_text(day)
        quarter = quarter_of_month_text(month)
        self.balances[(month, debit_account)] += amount
        self.balances[(month, credit_account)] -= amount
        self.entries += 1
        gross = data[amount_field]
        debited, credited = (
            (debit_account, credit_account) if sign > 0 else (credit_account, debit_account)
        )
        for period in (month, quarter):
            self.period_entries[period] += 1
            debit, credit = self.turnover[(period, debited)]
            self.turnover[(period, debited)] = (debit + gross, credit)
            debit, credit = self.turnover[(period, credited)]
            self.turnover[(period, credited)] = (debit, credit + gross)
        if event_type == "hr.payroll.processed":
            shares = [
                (line["department_id"], line.get("category", "SALARY"), line["amount"])
                for line in data.get("department_lines") or []
            ]
            if not shares:
                shares = [
                    (data.get("department_id") or "UNALLOCATED", "SALARY", data["total_gross_pay"])
                ]
            for department, category, share in shares:
                for period in (month_text(day), quarter_text(day)):
                    self.budget_actuals[f"{department}|{category}|{period}"] += sign * share
        elif event_type == "scm.goods.received":
            self.vendor_open[data["vendor_id"]] += amount
        elif event_type == "fin.vendor_payment.made":
            self.vendor_open[data["vendor_id"]] -= amount
            self.vendor_paid[data["vendor_id"]] += amount
        elif event_type == "crm.sales_order.completed":
            self.exposures[data["customer_id"]] += amount
        elif event_type == "fin.customer_payment.received":
            self.exposures[data["customer_id"]] -= amount
        elif event_type == "pm.time.logged":
            self.project_hours[data["project_id"]] += sign * data["hours"]
            self.project_billable[data["project_id"]] += amount
        elif event_type == "mfg.production_order.completed":
            self.product_quantity[data["product_code"]] += sign * data["quantity_produced"]
            self.product_cost[data["product_code"]] += amount

    def account_balances(self) -> dict[tuple[str, str], Decimal]:
        """Non-zero (month, account) balances."""
        return {key: value for key, value in self.balances.items() if value != 0}

    def trial_balance(self, period: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Gross (debit, credit) turnover per account in one month or quarter."""
        return {
            account: amounts
            for (booked, account), amounts in self.turnover.items()
            if booked == period
        }

    def periods(self) -> set[str]:
        """Every month and quarter with at least one journal entry."""
        return set(self.period_entries)


def quarter_of_month_text(month: str) -> str:
    year, number = month.split("-")
    return f"{year}-Q{(int(number) + 2) // 3}"


class ReferencePeriods:
    """Closed months, written again by hand (issue 16): a month is closed by its own close or by
    its quarter's last month's; an entry dated in a closed month books in the next open one."""

    def __init__(self) -> None:
        self.closed: set[str] = set()

    @staticmethod
    def _quarter_end(month: str) -> str:
        year, number = month.split("-")
        return f"{year}-{((int(number) + 2) // 3) * 3:02d}"

    @staticmethod
    def _next(month: str) -> str:
        year, number = (int(part) for part in month.split("-"))
        return f"{year + 1}-01" if number == 12 else f"{year}-{number + 1:02d}"

    def is_closed(self, month: str) -> bool:
        return month in self.closed or self._quarter_end(month) in self.closed

    def booking_month(self, month: str) -> str:
        while self.is_closed(month):
            month = self._next(month)
        return month

    def closed_periods(self) -> set[str]:
        """Closed months (own or by quarter) among those closed, and their closed quarters."""
        found = set(self.closed)
        for month in self.closed:
            if self._quarter_end(month) == month:
                found.add(quarter_of_month_text(month))
        return found


def nonzero(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: value for key, value in mapping.items() if value != 0}
