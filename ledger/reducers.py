"""Pure reducers for the state tables, their alerts, and the read views over a row.

``apply(row, delta, position, chart)`` is the only way a row changes. It returns a new row (rows
are immutable), whether the delta was applied, and any alerts the change raised. Budget and
credit controls only *alert*: a posting is a fact that already happened elsewhere in the ERP, so
FIN records it and tells someone, it never refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

from ledger import deltas
from ledger.chart import ChartOfAccounts
from ledger.deltas import Delta
from ledger.money import ZERO
from ledger.row_json import row_from_json_dict, row_to_json_dict
from ledger.row_views import (
    DEFAULT_CREDIT_NEAR_RATIO,
    SETTLED_AFTER_DAYS,
    UTILISATION_PLACES,
    AccountBalance,
    Aging,
    BudgetStatus,
    CreditStatus,
    TrialBalance,
    TrialBalanceLine,
    VendorStatus,
    account_balance,
    budget_status,
    credit_status,
    trial_balance,
    vendor_status,
)
from ledger.rows import (
    ALERT_NAMESPACE,
    ROW_CLASSES,
    ROW_TYPES,
    Alert,
    BudgetLevel,
    BudgetRow,
    CreditLevel,
    CustomerRow,
    OpenItem,
    Payment,
    PeriodRow,
    Position,
    ProductRow,
    ProjectRow,
    Row,
    VendorRow,
    Watermarks,
    alert_from_json_dict,
    alert_id_for,
    alert_to_avro_dict,
    alert_to_json_dict,
    budget_level,
    credit_level,
    empty_row,
)

# The rows, views and JSON live beside (ledger/rows.py, row_views.py, row_json.py); they are
# re-exported here, where the stages and the views have always taken them from.
__all__ = [
    "ALERT_NAMESPACE",
    "DEFAULT_CREDIT_NEAR_RATIO",
    "ROW_CLASSES",
    "ROW_TYPES",
    "UTILISATION_PLACES",
    "AccountBalance",
    "Aging",
    "Alert",
    "BudgetLevel",
    "BudgetRow",
    "BudgetStatus",
    "CreditLevel",
    "CreditStatus",
    "CustomerRow",
    "OpenItem",
    "Outcome",
    "Payment",
    "PeriodRow",
    "Position",
    "ProductRow",
    "ProjectRow",
    "Row",
    "TrialBalance",
    "TrialBalanceLine",
    "VendorRow",
    "VendorStatus",
    "Watermarks",
    "account_balance",
    "alert_from_json_dict",
    "alert_id_for",
    "alert_to_avro_dict",
    "alert_to_json_dict",
    "already_applied",
    "apply",
    "budget_level",
    "budget_status",
    "credit_level",
    "credit_status",
    "empty_row",
    "row_from_json_dict",
    "row_to_json_dict",
    "trial_balance",
    "vendor_status",
]

# --- apply ---------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """What ``apply`` did: the row (changed or not), whether the delta applied, its alerts.

    A named tuple: one per delta, where a frozen dataclass cost twice as much to build.
    """

    row: Row
    applied: bool
    alerts: tuple[Alert, ...] = ()


def already_applied(watermarks: Watermarks, position: Position) -> bool:
    """True when the row already contains the delta at ``position``.

    Why this makes a replay harmless: every delta has a unique position, and deltas from one
    by-id partition reach a row in position order (one producer per partition, one delta topic
    partition per row key). So if the row has seen (offset, index) from a partition, it has seen
    everything before it from there too; a delta at or below the watermark is a copy re-emitted
    after a crash or a replay from an old offset, and applying it again would count it twice.
    Partitions are tracked separately because their positions are unrelated to each other;
    that also bounds the watermark map by the partition count.
    """
    partition, offset, index = position
    seen = watermarks.get(partition)
    return seen is not None and seen >= (offset, index)


def _copied(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A fresh dict of `mapping`'s items: a row's mapping proxy copies its dict at C speed,
    where dict(proxy) goes through the mapping protocol item by item (several times slower)."""
    if type(mapping) is MappingProxyType:
        copied = mapping.copy()
        if type(copied) is dict:
            return copied
    return dict(mapping)


def _advanced(watermarks: Watermarks, position: Position) -> Watermarks:
    partition, offset, index = position
    advanced = _copied(watermarks)
    advanced[partition] = (offset, index)
    # A fresh dict, so wrapping it without the copy _frozen makes is just as immutable.
    return MappingProxyType(advanced)


def apply(
    row: Row | None,
    delta: Delta,
    position: Position,
    chart: ChartOfAccounts,
    *,
    source_event_id: str | None = None,
) -> Outcome:
    """Apply ``delta`` at ``position`` to ``row`` (None: the key has no row yet).

    ``source_event_id`` (the event or compensation that produced the delta) goes into alerts;
    without it the alert id is derived from the position, which is equally deterministic.
    """
    current = row if row is not None else empty_row(delta.table)
    if current.table != delta.table:
        raise TypeError(f"{type(delta).__name__} belongs to {delta.table}, not {current.table}")
    if already_applied(current.watermarks, position):
        return Outcome(row=current, applied=False)
    partition, offset, index = position
    origin = source_event_id or f"position:{partition}:{offset}:{index}"
    context = _Context(chart=chart, origin=origin, source_event_id=source_event_id)
    changed, alerts = _reduce(current, delta, context, _advanced(current.watermarks, position))
    return Outcome(row=changed, applied=True, alerts=alerts)


class _Context:
    """What the alert rules need besides the rows (a plain slotted class: one per delta, and a
    frozen dataclass costs three times as much to build)."""

    __slots__ = ("chart", "origin", "source_event_id")

    def __init__(self, chart: ChartOfAccounts, origin: str, source_event_id: str | None) -> None:
        self.chart = chart
        self.origin = origin
        self.source_event_id = source_event_id


# Each reducer builds the changed row once, watermarks included, with the row's constructor:
# dataclasses.replace (twice per delta, as before) introspects the fields on every call and was
# most of the cost of a delta. Rows stay immutable; the alerts compare amounts only.
_Reduced = tuple[Row, tuple[Alert, ...]]
_Reducer = Callable[[Any, Any, _Context, Watermarks], _Reduced]


def _budget_actual(
    row: BudgetRow, delta: deltas.BudgetActual, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = BudgetRow(amount=row.amount, actual=row.actual + delta.amount, watermarks=watermarks)
    return changed, _budget_alerts(row, changed, delta, context)


def _budget_set(
    row: BudgetRow, delta: deltas.BudgetSet, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = BudgetRow(amount=delta.amount, actual=row.actual, watermarks=watermarks)
    return changed, _budget_alerts(row, changed, delta, context)


def _customer_exposure(
    row: CustomerRow, delta: deltas.CustomerExposure, context: _Context, watermarks: Watermarks
) -> _Reduced:
    payments_total, last_payment = row.payments_total, row.last_payment
    if delta.payment_id is not None:
        # A payment lowers exposure (amount < 0); its reversal raises it again (amount > 0).
        payments_total = row.payments_total - delta.amount
        last_payment = _last_payment(
            row.last_payment, delta.payment_id, -delta.amount, delta.business_date
        )
    exposed = CustomerRow(
        credit_limit=row.credit_limit,
        exposure=row.exposure + delta.amount,
        payments_total=payments_total,
        last_payment=last_payment,
        watermarks=watermarks,
    )
    return exposed, _credit_alerts(row, exposed, delta.customer_id, context)


def _credit_limit_set(
    row: CustomerRow, delta: deltas.CreditLimitSet, context: _Context, watermarks: Watermarks
) -> _Reduced:
    limited = CustomerRow(
        credit_limit=delta.credit_limit,
        exposure=row.exposure,
        payments_total=row.payments_total,
        last_payment=row.last_payment,
        watermarks=watermarks,
    )
    return limited, _credit_alerts(row, limited, delta.customer_id, context)


def _last_payment(
    last: Payment | None, payment_id: str, amount: Decimal, business_date: date | None
) -> Payment | None:
    if amount > 0:
        return Payment(payment_id, amount, business_date)
    # A reversed payment is no longer the last payment; the one before it is not kept (rows
    # are bounded), so the row says "unknown" rather than showing a payment that was undone.
    if last is not None and last.payment_id == payment_id:
        return None
    return last


def _vendor_invoice(
    row: VendorRow, delta: deltas.VendorInvoice, context: _Context, watermarks: Watermarks
) -> _Reduced:
    items = _copied(row.items)
    existing = items.get(delta.item_id)
    amount = delta.amount + (existing.amount if existing is not None else ZERO)
    if amount == 0:
        # The reversal of a receipt closes its item entirely.
        items.pop(delta.item_id, None)
    else:
        items[delta.item_id] = OpenItem(
            amount=amount,
            business_date=delta.business_date,
            due_date=delta.due_date,
            document_id=delta.document_id,
        )
    changed = VendorRow(
        items=MappingProxyType(items),
        paid_total=row.paid_total,
        last_payment=row.last_payment,
        watermarks=watermarks,
        settled_total=row.settled_total,
        settled_due=row.settled_due,
        latest_date=_later(row.latest_date, delta.business_date),
    )
    # Only a later date (the horizon moves) or a credit can let an item leave: a receipt of
    # the same day does not walk the row.
    if changed.latest_date != row.latest_date or delta.amount < 0:
        return _settled(changed), ()
    return changed, ()


def _vendor_payment(
    row: VendorRow, delta: deltas.VendorPayment, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = VendorRow(
        items=row.items,
        paid_total=row.paid_total + delta.amount,
        last_payment=_last_payment(
            row.last_payment, delta.payment_id, delta.amount, delta.business_date
        ),
        watermarks=watermarks,
        settled_total=row.settled_total,
        settled_due=row.settled_due,
        latest_date=_later(row.latest_date, delta.business_date),
    )
    if changed.latest_date != row.latest_date or delta.amount > 0:
        return _settled(changed), ()
    return changed, ()


def _later(known: date | None, seen: date | None) -> date | None:
    if known is None or (seen is not None and seen > known):
        return seen
    return known


def _settled(row: VendorRow) -> VendorRow:
    """``row`` without the items that leave it (``VendorRow``): every old credit, and first-in
    first-out the old receipts that what was paid and credited beyond ``settled_total`` covers
    in full ("old": fell due more than ``SETTLED_AFTER_DAYS`` before ``latest_date``).

    An old credit (the reversal of a receipt that left the row) joins ``settled_total`` as a
    negative amount: what the views allocate does not change by it, and a receipt reversed
    after it settled does not stay in the row as a credit forever. A pure function of the row,
    so a replay of the same deltas in the same order settles the same items; the views'
    figures do not change by it (``vendor_status``).
    """
    if row.latest_date is None:
        return row
    horizon = row.latest_date - timedelta(days=SETTLED_AFTER_DAYS)
    old = [
        (item.due_date, item.business_date, item_id, item.amount)
        for item_id, item in row.items.items()
        if item.due_date < horizon
    ]
    if not old:
        return row
    credits = -sum((item.amount for item in row.items.values() if item.amount < 0), ZERO)
    unapplied = row.paid_total + credits - row.settled_total
    old.sort()
    leaving: list[str] = []
    settled_total, settled_due = row.settled_total, row.settled_due
    paying = True
    for due_date, _, item_id, amount in old:
        if amount > 0:
            # First in, first out: once a receipt is not paid in full, none after it is.
            paying = paying and amount <= unapplied
            if not paying:
                continue
            unapplied -= amount
        leaving.append(item_id)
        settled_total += amount
        settled_due = due_date if settled_due is None else max(settled_due, due_date)
    if not leaving:
        return row
    items = _copied(row.items)
    for item_id in leaving:
        del items[item_id]
    return VendorRow(
        items=MappingProxyType(items),
        paid_total=row.paid_total,
        last_payment=row.last_payment,
        watermarks=row.watermarks,
        settled_total=settled_total,
        settled_due=settled_due,
        latest_date=row.latest_date,
    )


def _period_posting(
    row: PeriodRow, delta: deltas.PeriodPosting, context: _Context, watermarks: Watermarks
) -> _Reduced:
    accounts = _copied(row.accounts)
    for account, debit, credit in delta.lines:
        debit_total, credit_total = accounts.get(account, (ZERO, ZERO))
        accounts[account] = (debit_total + debit, credit_total + credit)
    changed = PeriodRow(
        accounts=MappingProxyType(accounts),
        entry_count=row.entry_count + 1,
        watermarks=watermarks,
        closed=row.closed,
        closed_totals=row.closed_totals,
        late_entries_out=row.late_entries_out,
    )
    return changed, ()


def _period_closed(
    row: PeriodRow, delta: deltas.PeriodClosed, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = PeriodRow(
        accounts=row.accounts,
        entry_count=row.entry_count,
        watermarks=watermarks,
        closed=delta.closed,
        # Closing keeps the totals as they are now; re-opening forgets them.
        closed_totals=row.accounts if delta.closed else None,
        late_entries_out=row.late_entries_out,
    )
    return changed, ()


def _period_late(
    row: PeriodRow, delta: deltas.PeriodLate, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = PeriodRow(
        accounts=row.accounts,
        entry_count=row.entry_count,
        watermarks=watermarks,
        closed=row.closed,
        closed_totals=row.closed_totals,
        late_entries_out=row.late_entries_out + 1,
    )
    return changed, ()


def _project_time(
    row: ProjectRow, delta: deltas.ProjectTime, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = ProjectRow(
        hours=row.hours + delta.hours,
        billable_amount=row.billable_amount + delta.billable_amount,
        watermarks=watermarks,
    )
    return changed, ()


def _production_cost(
    row: ProductRow, delta: deltas.ProductionCost, context: _Context, watermarks: Watermarks
) -> _Reduced:
    changed = ProductRow(
        quantity=row.quantity + delta.quantity, cost=row.cost + delta.cost, watermarks=watermarks
    )
    return changed, ()


_REDUCERS: Mapping[tuple[type, type], _Reducer] = {
    (BudgetRow, deltas.BudgetActual): _budget_actual,
    (BudgetRow, deltas.BudgetSet): _budget_set,
    (CustomerRow, deltas.CustomerExposure): _customer_exposure,
    (CustomerRow, deltas.CreditLimitSet): _credit_limit_set,
    (VendorRow, deltas.VendorInvoice): _vendor_invoice,
    (VendorRow, deltas.VendorPayment): _vendor_payment,
    (PeriodRow, deltas.PeriodPosting): _period_posting,
    (PeriodRow, deltas.PeriodClosed): _period_closed,
    (PeriodRow, deltas.PeriodLate): _period_late,
    (ProjectRow, deltas.ProjectTime): _project_time,
    (ProductRow, deltas.ProductionCost): _production_cost,
}


def _reduce(
    row: Row, delta: Delta, context: _Context, watermarks: Watermarks
) -> tuple[Row, tuple[Alert, ...]]:
    reducer = _REDUCERS.get((type(row), type(delta)))
    if reducer is None:
        # A subclass: matched by isinstance, in table order, as the class patterns did.
        reducer = next(
            (
                candidate
                for (row_type, delta_type), candidate in _REDUCERS.items()
                if isinstance(row, row_type) and isinstance(delta, delta_type)
            ),
            None,
        )
    if reducer is None:
        raise TypeError(f"no reducer for {type(delta).__name__} on {type(row).__name__}")
    return reducer(row, delta, context, watermarks)


# --- budget and credit control -------------------------------------------------------------

_BUDGET_RANK: Mapping[BudgetLevel, int] = {"no_budget": 0, "ok": 0, "near": 1, "exceeded": 2}
_CREDIT_RANK: Mapping[CreditLevel, int] = {"no_limit": 0, "ok": 0, "near": 0, "over": 1}


def _budget_alerts(
    before: BudgetRow,
    after: BudgetRow,
    delta: deltas.BudgetActual | deltas.BudgetSet,
    context: _Context,
) -> tuple[Alert, ...]:
    category = context.chart.budget_categories.get(delta.category)
    if category is None:
        # A category removed from the chart after the fact: nothing to judge against.
        return ()
    level_before = budget_level(before.amount, before.actual, category)
    level_after = budget_level(after.amount, after.actual, category)
    # Alert on the crossing only: staying above a threshold is not news, falling below it is
    # good news, and a later climb back over it is a new crossing.
    if _BUDGET_RANK[level_after] <= _BUDGET_RANK[level_before]:
        return ()
    alert_type = "budget_exceeded" if level_after == "exceeded" else "budget_near"
    ratio = category.stop if level_after == "exceeded" else category.warn
    detail = (
        f"{delta.department_id} {delta.category} {delta.period}: actual {after.actual} "
        f"against budget {after.amount} ({level_after}; threshold {ratio})"
    )
    return (
        Alert(
            alert_id=alert_id_for(context.origin, alert_type, delta.key),
            alert_type=alert_type,
            severity="critical" if level_after == "exceeded" else "warning",
            subject=delta.department_id,
            period=delta.period,
            amount=after.actual,
            limit=after.amount,
            detail=detail,
            source_event_id=context.source_event_id,
        ),
    )


def _credit_alerts(
    before: CustomerRow, after: CustomerRow, customer_id: str, context: _Context
) -> tuple[Alert, ...]:
    near_ratio = context.chart.credit_near_ratio
    level_before = credit_level(before.credit_limit, before.exposure, near_ratio)
    level_after = credit_level(after.credit_limit, after.exposure, near_ratio)
    if _CREDIT_RANK[level_after] <= _CREDIT_RANK[level_before]:
        return ()
    alert_type = "credit_limit_breached"
    return (
        Alert(
            alert_id=alert_id_for(context.origin, alert_type, customer_id),
            alert_type=alert_type,
            severity="critical",
            subject=customer_id,
            period=None,
            amount=after.exposure,
            limit=after.credit_limit,
            detail=f"{customer_id}: exposure {after.exposure} is over the credit limit "
            f"{after.credit_limit}",
            source_event_id=context.source_event_id,
        ),
    )
