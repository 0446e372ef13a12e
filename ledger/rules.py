"""Posting rules: one pure function per event type, chosen from a table.

A rule reads only the event, its source position and the chart: time comes from the event
(its business date), never from a clock, so posting the same event twice yields the same entry
and the same deltas, byte for byte. That is what lets the posting agent re-emit after a crash.

There is no module constant for the rule version: it lives in the chart, and reading the chart
at import time would do I/O on import. Use ``rule_version(chart)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger import contract, deltas, events
from ledger.chart import ChartOfAccounts
from ledger.deltas import Delta, NotReversibleError, is_negatable, negate
from ledger.entries import (
    JournalEntry,
    JournalLine,
    SourceRef,
    credit_line,
    debit_line,
    dimensions,
    entry_id_for,
)
from ledger.entries import from_json_dict as entry_from_json
from ledger.entries import to_json_dict as entry_to_json
from ledger.master import quarter_end_of, quarter_of_month
from ledger.money import ZERO, money
from ledger.periods import month_of, quarter_of

__all__ = [
    "RULES",
    "NotReversibleError",
    "Posting",
    "booked_in",
    "is_reversible",
    "period_postings",
    "post",
    "posting_from_json_dict",
    "posting_to_json_dict",
    "reverse",
    "rule_version",
]


def rule_version(chart: ChartOfAccounts) -> str:
    return chart.rule_version


@dataclass(frozen=True, init=False)
class Posting:
    """What one event produces: a journal entry (None for set commands) and state deltas.

    Deltas are in a fixed order; a delta's index in ``deltas`` is the third part of its position.
    """

    entry: JournalEntry | None
    deltas: tuple[Delta, ...]

    def __init__(self, entry: JournalEntry | None, deltas: tuple[Delta, ...]) -> None:
        # Written out (one per event): see "Constructors" in ledger/entries.py.
        fields = self.__dict__
        fields["entry"] = entry
        fields["deltas"] = deltas


# --- helpers -------------------------------------------------------------------------------


def _entry(
    event: events.Event,
    source: SourceRef,
    chart: ChartOfAccounts,
    lines: tuple[JournalLine, ...],
) -> JournalEntry:
    business_date = event.business_date
    return JournalEntry(
        entry_id=entry_id_for(event.event_id, chart.rule_version),
        source=source,
        rule_version=chart.rule_version,
        business_date=business_date,
        period=month_of(business_date),
        quarter=quarter_of(business_date),
        currency=event.currency_code or chart.default_currency,
        lines=lines,
    )


def period_postings(entry: JournalEntry) -> tuple[deltas.PeriodPosting, deltas.PeriodPosting]:
    """The entry's lines for its month row and its quarter row."""
    lines = tuple((line.account, line.debit, line.credit) for line in entry.lines)
    return (
        deltas.PeriodPosting(period=entry.period, lines=lines),
        deltas.PeriodPosting(period=entry.quarter, lines=lines),
    )


def _simple(
    event: events.Event,
    source: SourceRef,
    chart: ChartOfAccounts,
    *,
    amount: Decimal,
    dims: Mapping[str, str],
    state: tuple[Delta, ...],
) -> Posting:
    """A two-line entry on the posting map's accounts, both lines carrying ``dims``."""
    accounts = chart.rule_for(event.event_type)
    tags = dimensions(dims)
    entry = _entry(
        event,
        source,
        chart,
        (debit_line(accounts.debit, amount, tags), credit_line(accounts.credit, amount, tags)),
    )
    return Posting(entry=entry, deltas=(*state, *period_postings(entry)))


# --- one rule per event type ---------------------------------------------------------------


def _payroll_shares(
    event: events.PayrollProcessed, chart: ChartOfAccounts
) -> tuple[tuple[str, str, Decimal], ...]:
    """(department, category, amount) per charged department, merged and in first-seen order.

    Lines win over ``department_id`` (the schema says so); with neither, the whole run goes to
    the chart's default department, so every payroll lands in some budget row.
    """
    if not event.department_lines:
        department = event.department_id or chart.payroll_default_department
        return ((department, chart.payroll_default_category, money(event.total_gross_pay)),)
    merged: dict[tuple[str, str], Decimal] = {}
    for line in event.department_lines:
        share_key = (line.department_id, line.category)
        merged[share_key] = merged.get(share_key, ZERO) + money(line.amount)
    return tuple(
        (department, category, amount) for (department, category), amount in merged.items()
    )


def post_payroll(
    event: events.PayrollProcessed, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    accounts = chart.rule_for(event.event_type)
    shares = _payroll_shares(event, chart)
    expense_lines = tuple(
        debit_line(
            accounts.debit, amount, dimensions({"department": department, "category": category})
        )
        for department, category, amount in shares
    )
    accrual = credit_line(
        accounts.credit, money(event.total_gross_pay), dimensions({"payroll": event.payroll_id})
    )
    entry = _entry(event, source, chart, (*expense_lines, accrual))
    actuals = tuple(
        deltas.BudgetActual(department, category, period, amount)
        for department, category, amount in shares
        for period in (entry.period, entry.quarter)
    )
    return Posting(entry=entry, deltas=(*actuals, *period_postings(entry)))


def post_goods_received(
    event: events.GoodsReceived, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.total_amount)
    invoice = deltas.VendorInvoice(
        vendor_id=event.vendor_id,
        item_id=event.event_id,
        amount=amount,
        business_date=event.business_date,
        due_date=event.due_date,
        document_id=event.purchase_order_id,
    )
    return _simple(
        event, source, chart, amount=amount, dims={"vendor": event.vendor_id}, state=(invoice,)
    )


def post_sales_order(
    event: events.SalesOrderCompleted, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.total_amount)
    exposure = deltas.CustomerExposure(customer_id=event.customer_id, amount=amount)
    return _simple(
        event, source, chart, amount=amount, dims={"customer": event.customer_id}, state=(exposure,)
    )


def post_production(
    event: events.ProductionOrderCompleted, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.total_cost)
    cost = deltas.ProductionCost(
        product_code=event.product_code, quantity=event.quantity_produced, cost=amount
    )
    return _simple(
        event, source, chart, amount=amount, dims={"product": event.product_code}, state=(cost,)
    )


def post_time_logged(
    event: events.TimeLogged, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.billable_amount)
    time = deltas.ProjectTime(
        project_id=event.project_id, hours=money(event.hours), billable_amount=amount
    )
    return _simple(
        event, source, chart, amount=amount, dims={"project": event.project_id}, state=(time,)
    )


def post_vendor_payment(
    event: events.VendorPaymentMade, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.amount)
    payment = deltas.VendorPayment(
        vendor_id=event.vendor_id,
        payment_id=event.payment_id,
        amount=amount,
        business_date=event.business_date,
    )
    return _simple(
        event, source, chart, amount=amount, dims={"vendor": event.vendor_id}, state=(payment,)
    )


def post_customer_payment(
    event: events.CustomerPaymentReceived, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    amount = money(event.amount)
    exposure = deltas.CustomerExposure(
        customer_id=event.customer_id,
        amount=-amount,
        payment_id=event.payment_id,
        business_date=event.business_date,
    )
    return _simple(
        event, source, chart, amount=amount, dims={"customer": event.customer_id}, state=(exposure,)
    )


def post_budget_set(event: events.BudgetSet, source: SourceRef, chart: ChartOfAccounts) -> Posting:
    # Validation has accepted the period text, which is canonical, so it is the key as given.
    budget = deltas.BudgetSet(
        department_id=event.department_id,
        category=event.category,
        period=event.period,
        amount=money(event.amount),
    )
    return Posting(entry=None, deltas=(budget,))


def post_credit_limit_set(
    event: events.CreditLimitSet, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    limit = deltas.CreditLimitSet(
        customer_id=event.customer_id, credit_limit=money(event.credit_limit)
    )
    return Posting(entry=None, deltas=(limit,))


Rule = Callable[[Any, SourceRef, ChartOfAccounts], Posting]


def post_department_changed(
    event: events.DepartmentChanged, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    """Master data, not a transaction: no entry, no delta. The posting stage publishes the
    change itself (``ledger.master.change_of``) on the master-data topic."""
    return Posting(entry=None, deltas=())


def post_period_changed(
    event: events.PeriodChanged, source: SourceRef, chart: ChartOfAccounts
) -> Posting:
    """Close or re-open a month: the month's row, and its quarter's when the month ends the
    quarter (closing a quarter's last month closes the quarter), keep or forget their totals.
    The posting stage also publishes the change to every worker's period register."""
    closed = event.action == "CLOSE"
    changes = [deltas.PeriodClosed(period=event.period, closed=closed)]
    if quarter_end_of(event.period) == event.period:
        changes.append(deltas.PeriodClosed(period=quarter_of_month(event.period), closed=closed))
    return Posting(entry=None, deltas=tuple(changes))


def booked_in(posting: Posting, month: str) -> Posting:
    """``posting`` booked late in ``month`` (a later, open month): its entry keeps its business
    date and period and says ``posting_period``; its trial-balance lines move to ``month`` and
    that month's quarter; the month it left counts one late entry. Budgets are untouched (a
    budget belongs to the business period)."""
    entry = posting.entry
    assert entry is not None, "only an entry is booked"
    left = entry.posting_period or entry.period
    assert month > left, f"{month} is not after {left}"
    moved: list[Delta] = []
    for delta in posting.deltas:
        if isinstance(delta, deltas.PeriodPosting):
            is_quarter = "Q" in delta.period
            period = quarter_of_month(month) if is_quarter else month
            moved.append(deltas.PeriodPosting(period=period, lines=delta.lines))
        else:
            moved.append(delta)
    moved.append(deltas.PeriodLate(period=entry.period))
    late = JournalEntry(
        entry_id=entry.entry_id,
        source=entry.source,
        rule_version=entry.rule_version,
        business_date=entry.business_date,
        period=entry.period,
        quarter=entry.quarter,
        currency=entry.currency,
        lines=entry.lines,
        reverses_entry_id=entry.reverses_entry_id,
        posting_period=month,
    )
    return Posting(entry=late, deltas=tuple(moved))


RULES: Mapping[str, Rule] = {
    contract.PAYROLL_PROCESSED: post_payroll,
    contract.GOODS_RECEIVED: post_goods_received,
    contract.SALES_ORDER_COMPLETED: post_sales_order,
    contract.PRODUCTION_ORDER_COMPLETED: post_production,
    contract.TIME_LOGGED: post_time_logged,
    contract.VENDOR_PAYMENT_MADE: post_vendor_payment,
    contract.CUSTOMER_PAYMENT_RECEIVED: post_customer_payment,
    contract.BUDGET_SET: post_budget_set,
    contract.CREDIT_LIMIT_SET: post_credit_limit_set,
    contract.DEPARTMENT_CHANGED: post_department_changed,
    contract.PERIOD_CHANGED: post_period_changed,
}


def post(event: events.Event, source: SourceRef, chart: ChartOfAccounts) -> Posting:
    """The posting of a validated event. A compensation is not posted but reversed
    (``reverse``); passing one here is a bug and raises ``TypeError``."""
    rule = RULES.get(event.event_type)
    if rule is None:
        raise TypeError(f"{event.event_type} has no posting rule; compensations use reverse()")
    assert source.event_id == event.event_id, "source must describe the event being posted"
    return rule(event, source, chart)


def is_reversible(posting: Posting) -> bool:
    return posting.entry is not None and all(is_negatable(delta) for delta in posting.deltas)


def reverse(original: Posting, compensation_event_id: str, source: SourceRef) -> Posting:
    """The posting that undoes ``original``: lines swapped, deltas negated, linked to it.

    The reversal keeps the original's business date (so it lands in the same periods and budget
    rows it corrects) and rule version (it mirrors the original's accounts, whatever the chart
    says today). Raises ``NotReversibleError`` for a posting without an entry.
    """
    if original.entry is None or not is_reversible(original):
        raise NotReversibleError("only a posting with a journal entry and no set command reverses")
    assert source.event_id == compensation_event_id, "source must describe the compensation"
    entry = original.entry
    reversal = JournalEntry(
        entry_id=entry_id_for(compensation_event_id, entry.rule_version),
        source=source,
        rule_version=entry.rule_version,
        business_date=entry.business_date,
        period=entry.period,
        quarter=entry.quarter,
        currency=entry.currency,
        lines=tuple(line.swapped() for line in entry.lines),
        reverses_entry_id=entry.entry_id,
        # Its deltas are the original's negated, in the period rows the original was booked
        # in; so is the reversal (the posting stage moves it on if that period is closed now).
        posting_period=entry.posting_period,
    )
    return Posting(entry=reversal, deltas=tuple(negate(delta) for delta in original.deltas))


# --- JSON ----------------------------------------------------------------------------------


def posting_to_json_dict(
    posting: Posting, entry_record: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``entry_record``: the entry's Avro record if the caller has it already."""
    return {
        "entry": None if posting.entry is None else entry_to_json(posting.entry, entry_record),
        "deltas": [deltas.to_json_dict(delta) for delta in posting.deltas],
    }


def posting_from_json_dict(encoded: Mapping[str, Any]) -> Posting:
    entry_json = encoded.get("entry")
    return Posting(
        entry=None if entry_json is None else entry_from_json(entry_json),
        deltas=tuple(deltas.from_json_dict(delta) for delta in encoded["deltas"]),
    )
