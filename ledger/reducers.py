"""Pure reducers for the state tables, their alerts, and the read views over a row.

``apply(row, delta, position, chart)`` is the only way a row changes. It returns a new row (rows
are immutable), whether the delta was applied, and any alerts the change raised. Budget and
credit controls only *alert*: a posting is a fact that already happened elsewhere in the ERP, so
FIN records it and tells someone, it never refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self
from uuid import UUID

from ledger import deltas
from ledger.chart import BudgetCategory, ChartOfAccounts
from ledger.deltas import Delta
from ledger.ids import uuid5_text
from ledger.money import ZERO, money

# (by-id partition, by-id offset, index of the delta within the event's posting)
Position = tuple[int, int, int]
# by-id partition -> (offset, index) of the last delta applied from that partition
Watermarks = Mapping[int, tuple[int, int]]

# Fixed forever, like the entry namespace: alert ids must stay stable across replays so the
# consumers of fin.alerts can drop the copies a replay re-emits.
ALERT_NAMESPACE = UUID("214d6fd5-4c25-4c4a-a077-d2197dba772f")

UTILISATION_PLACES = Decimal("0.0001")
DEFAULT_CREDIT_NEAR_RATIO = Decimal("0.90")
_RATIO_CONTEXT = Context(prec=40)

BudgetLevel = Literal["no_budget", "ok", "near", "exceeded"]
CreditLevel = Literal["no_limit", "ok", "near", "over"]


def _frozen(mapping: Mapping[Any, Any] | None = None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping or {}))


def _no_watermarks() -> Watermarks:
    return _frozen()


# --- rows ----------------------------------------------------------------------------------


class _JsonRow:
    """``to_json_dict`` / ``from_json_dict`` on every row class (see ``row_to_json_dict``)."""

    table: ClassVar[str]

    def to_json_dict(self) -> dict[str, Any]:
        assert isinstance(self, ROW_TYPES)
        return row_to_json_dict(self)

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> Self:
        row = row_from_json_dict(cls.table, encoded)
        assert isinstance(row, cls)
        return row


@dataclass(frozen=True)
class Payment:
    payment_id: str
    amount: Decimal
    business_date: date | None


@dataclass(frozen=True)
class BudgetRow(_JsonRow):
    table: ClassVar[str] = deltas.BUDGETS

    amount: Decimal | None = None
    actual: Decimal = ZERO
    watermarks: Watermarks = field(default_factory=_no_watermarks)


@dataclass(frozen=True)
class CustomerRow(_JsonRow):
    table: ClassVar[str] = deltas.CUSTOMERS

    credit_limit: Decimal | None = None
    exposure: Decimal = ZERO
    payments_total: Decimal = ZERO
    last_payment: Payment | None = None
    watermarks: Watermarks = field(default_factory=_no_watermarks)


@dataclass(frozen=True)
class OpenItem:
    """A payable as received; payments are allocated to items only when a view asks."""

    amount: Decimal
    business_date: date
    due_date: date
    document_id: str = ""


@dataclass(frozen=True)
class VendorRow(_JsonRow):
    table: ClassVar[str] = deltas.VENDORS

    items: Mapping[str, OpenItem] = field(default_factory=_frozen)
    paid_total: Decimal = ZERO
    last_payment: Payment | None = None
    watermarks: Watermarks = field(default_factory=_no_watermarks)


@dataclass(frozen=True)
class PeriodRow(_JsonRow):
    """Gross debit and credit turnover per account in one month or quarter."""

    table: ClassVar[str] = deltas.PERIODS

    accounts: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=_frozen)
    entry_count: int = 0
    watermarks: Watermarks = field(default_factory=_no_watermarks)
    # Period close (issue 16): closed, the totals it had when it was closed (the integrity
    # check compares them with ``accounts``), and how many entries dated here were booked in a
    # later period because this one was closed.
    closed: bool = False
    closed_totals: Mapping[str, tuple[Decimal, Decimal]] | None = None
    late_entries_out: int = 0


@dataclass(frozen=True)
class ProjectRow(_JsonRow):
    table: ClassVar[str] = deltas.PROJECTS

    hours: Decimal = ZERO
    billable_amount: Decimal = ZERO
    watermarks: Watermarks = field(default_factory=_no_watermarks)


@dataclass(frozen=True)
class ProductRow(_JsonRow):
    table: ClassVar[str] = deltas.PRODUCTS

    quantity: int = 0
    cost: Decimal = ZERO
    watermarks: Watermarks = field(default_factory=_no_watermarks)


Row = BudgetRow | CustomerRow | VendorRow | PeriodRow | ProjectRow | ProductRow

ROW_TYPES = (BudgetRow, CustomerRow, VendorRow, PeriodRow, ProjectRow, ProductRow)

ROW_CLASSES: Mapping[str, type[Row]] = {cls.table: cls for cls in ROW_TYPES}


def empty_row(table: str) -> Row:
    return ROW_CLASSES[table]()


# --- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """The ``fin.alerts.Alert`` record."""

    alert_id: str
    alert_type: str
    severity: str
    subject: str
    period: str | None
    amount: Decimal | None
    limit: Decimal | None
    detail: str
    source_event_id: str | None


def alert_id_for(origin: str, alert_type: str, row_key: str) -> str:
    """Deterministic: the same delta crossing the same threshold always yields the same id.

    The row key is part of it because one event crosses thresholds in several rows (a payroll
    updates the month and the quarter of each department it charges).
    """
    return uuid5_text(ALERT_NAMESPACE, f"{origin}:{alert_type}:{row_key}")


def alert_to_avro_dict(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "subject": alert.subject,
        "period": alert.period,
        "amount": alert.amount,
        "limit": alert.limit,
        "detail": alert.detail,
        "source_event_id": alert.source_event_id,
    }


def alert_to_json_dict(alert: Alert) -> dict[str, Any]:
    record = alert_to_avro_dict(alert)
    for name in ("amount", "limit"):
        if record[name] is not None:
            record[name] = str(record[name])
    return record


def alert_from_json_dict(record: Mapping[str, Any]) -> Alert:
    def optional_money(value: Any) -> Decimal | None:
        return None if value is None else money(value)

    return Alert(
        alert_id=record["alert_id"],
        alert_type=record["alert_type"],
        severity=record["severity"],
        subject=record["subject"],
        period=record.get("period"),
        amount=optional_money(record.get("amount")),
        limit=optional_money(record.get("limit")),
        detail=record["detail"],
        source_event_id=record.get("source_event_id"),
    )


# --- apply ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
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
    )
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
    )
    return changed, ()


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


def budget_level(amount: Decimal | None, actual: Decimal, category: BudgetCategory) -> BudgetLevel:
    """near from ``warn`` x budget, exceeded above ``stop`` x budget.

    With a zero budget any spending exceeds it; with nothing spent the status is ok.
    """
    if amount is None:
        return "no_budget"
    if actual > category.stop * amount:
        return "exceeded"
    if actual > 0 and actual >= category.warn * amount:
        return "near"
    return "ok"


def credit_level(limit: Decimal | None, exposure: Decimal, near_ratio: Decimal) -> CreditLevel:
    if limit is None:
        return "no_limit"
    if exposure > limit:
        return "over"
    if exposure > 0 and exposure >= near_ratio * limit:
        return "near"
    return "ok"


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


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    budget: Decimal | None
    actual: Decimal
    available: Decimal | None
    utilisation: Decimal | None
    status: BudgetLevel
    fits: bool | None


def budget_status(
    row: BudgetRow | None, amount_query: Decimal | None, *, category: BudgetCategory
) -> BudgetStatus:
    """Budget, actual, what is left, and whether ``amount_query`` more would stay within it.

    "Fits" means the status would not become exceeded (actual + query <= stop x budget); it is
    None when no budget is set, because there is nothing to fit into.
    """
    current = row if row is not None else BudgetRow()
    budget = current.amount
    actual = current.actual
    if budget is None:
        return BudgetStatus(None, actual, None, None, "no_budget", None)
    # A zero budget has no meaningful ratio; its status alone says whether anything was spent.
    utilisation = (
        _RATIO_CONTEXT.divide(actual, budget).quantize(UTILISATION_PLACES) if budget > 0 else None
    )
    fits = None
    if amount_query is not None:
        fits = actual + amount_query <= category.stop * budget
    return BudgetStatus(
        budget=budget,
        actual=actual,
        available=budget - actual,
        utilisation=utilisation,
        status=budget_level(budget, actual, category),
        fits=fits,
    )


@dataclass(frozen=True)
class Aging:
    """Open amounts by days past due; ``current`` is not yet due."""

    current: Decimal = ZERO
    days_1_30: Decimal = ZERO
    days_31_60: Decimal = ZERO
    days_61_90: Decimal = ZERO
    days_over_90: Decimal = ZERO


@dataclass(frozen=True)
class VendorStatus:
    open: Decimal
    overdue: Decimal
    paid: Decimal
    aging: Aging
    last_payment: Payment | None
    open_items: int


_AGING_BUCKETS: tuple[tuple[int, str], ...] = (
    (0, "current"),
    (30, "days_1_30"),
    (60, "days_31_60"),
    (90, "days_61_90"),
)


def _bucket(days_past_due: int) -> str:
    for upper, name in _AGING_BUCKETS:
        if days_past_due <= upper:
            return name
    return "days_over_90"


def vendor_status(row: VendorRow | None, as_of: date) -> VendorStatus:
    """Open, overdue and aged payables as of ``as_of``.

    Payments are not tied to items, so ``paid_total`` is allocated first-in first-out: oldest
    due date first, which is how a vendor applies an unreferenced payment. Any overpayment is
    a credit with the vendor: ``open`` goes negative and no bucket holds it.
    """
    current = row if row is not None else VendorRow()
    remaining_payment = current.paid_total
    buckets: dict[str, Decimal] = {}
    overdue = ZERO
    open_items = 0
    ordered = sorted(
        current.items.items(), key=lambda pair: (pair[1].due_date, pair[1].business_date, pair[0])
    )
    for _, item in ordered:
        covered = min(max(remaining_payment, ZERO), max(item.amount, ZERO))
        remaining_payment -= covered
        unpaid = item.amount - covered
        if unpaid == 0:
            continue
        open_items += 1
        days_past_due = (as_of - item.due_date).days
        name = _bucket(days_past_due)
        buckets[name] = buckets.get(name, ZERO) + unpaid
        if days_past_due > 0:
            overdue += unpaid
    invoiced = sum((item.amount for item in current.items.values()), ZERO)
    return VendorStatus(
        open=invoiced - current.paid_total,
        overdue=overdue,
        paid=current.paid_total,
        aging=Aging(**buckets),
        last_payment=current.last_payment,
        open_items=open_items,
    )


@dataclass(frozen=True)
class CreditStatus:
    limit: Decimal | None
    exposure: Decimal
    available: Decimal | None
    status: CreditLevel


def credit_status(
    row: CustomerRow | None, *, near_ratio: Decimal = DEFAULT_CREDIT_NEAR_RATIO
) -> CreditStatus:
    """Limit, exposure and headroom; pass ``chart.credit_near_ratio`` as ``near_ratio``."""
    current = row if row is not None else CustomerRow()
    limit = current.credit_limit
    return CreditStatus(
        limit=limit,
        exposure=current.exposure,
        available=None if limit is None else limit - current.exposure,
        status=credit_level(limit, current.exposure, near_ratio),
    )


@dataclass(frozen=True)
class TrialBalanceLine:
    account: str
    debit: Decimal
    credit: Decimal
    balance: Decimal
    """Debit-normal: positive for a net debit, negative for a net credit."""


@dataclass(frozen=True)
class TrialBalance:
    # Plain fields, no properties, so dataclasses.asdict() gives the whole view.
    lines: tuple[TrialBalanceLine, ...]
    total_debit: Decimal
    total_credit: Decimal
    entry_count: int
    balanced: bool


def trial_balance(row: PeriodRow | None) -> TrialBalance:
    current = row if row is not None else PeriodRow()
    lines = tuple(
        TrialBalanceLine(account, debit, credit, debit - credit)
        for account, (debit, credit) in sorted(current.accounts.items())
    )
    total_debit = sum((line.debit for line in lines), ZERO)
    total_credit = sum((line.credit for line in lines), ZERO)
    return TrialBalance(
        lines=lines,
        total_debit=total_debit,
        total_credit=total_credit,
        entry_count=current.entry_count,
        balanced=total_debit == total_credit,
    )


@dataclass(frozen=True)
class AccountBalance:
    debit: Decimal
    credit: Decimal
    balance: Decimal
    """Debit-normal: positive for a net debit, negative for a net credit."""


def account_balance(row: PeriodRow | None, account: str) -> AccountBalance | None:
    """One account's turnover and balance in a period row; None if it has no postings there."""
    if row is None or account not in row.accounts:
        return None
    debit, credit = row.accounts[account]
    return AccountBalance(debit=debit, credit=credit, balance=debit - credit)


# --- JSON ----------------------------------------------------------------------------------


def _money_or_none(value: Any) -> Decimal | None:
    return None if value is None else money(value)


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _watermarks_to_json(watermarks: Watermarks) -> dict[str, list[int]]:
    # JSON object keys are text; the partition number is restored on the way back.
    return {
        str(partition): [offset, index] for partition, (offset, index) in sorted(watermarks.items())
    }


def _watermarks_from_json(encoded: Mapping[str, Any]) -> Watermarks:
    return _frozen(
        {int(partition): (int(pair[0]), int(pair[1])) for partition, pair in encoded.items()}
    )


def _payment_to_json(payment: Payment | None) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {
        "payment_id": payment.payment_id,
        "amount": str(payment.amount),
        "business_date": None
        if payment.business_date is None
        else payment.business_date.isoformat(),
    }


def _payment_from_json(encoded: Mapping[str, Any] | None) -> Payment | None:
    if encoded is None:
        return None
    business_date = encoded.get("business_date")
    return Payment(
        payment_id=encoded["payment_id"],
        amount=money(encoded["amount"]),
        business_date=None if business_date is None else date.fromisoformat(business_date),
    )


def row_to_json_dict(row: Row) -> dict[str, Any]:
    """JSON-safe form of any row, tagged with its table; Decimals and dates as text."""
    body: dict[str, Any]
    match row:
        case BudgetRow():
            body = {"amount": _text_or_none(row.amount), "actual": str(row.actual)}
        case CustomerRow():
            body = {
                "credit_limit": _text_or_none(row.credit_limit),
                "exposure": str(row.exposure),
                "payments_total": str(row.payments_total),
                "last_payment": _payment_to_json(row.last_payment),
            }
        case VendorRow():
            body = {
                "items": {
                    item_id: {
                        "amount": str(item.amount),
                        "business_date": item.business_date.isoformat(),
                        "due_date": item.due_date.isoformat(),
                        "document_id": item.document_id,
                    }
                    for item_id, item in sorted(row.items.items())
                },
                "paid_total": str(row.paid_total),
                "last_payment": _payment_to_json(row.last_payment),
            }
        case PeriodRow():
            body = {
                "accounts": {
                    account: [str(debit), str(credit)]
                    for account, (debit, credit) in sorted(row.accounts.items())
                },
                "entry_count": row.entry_count,
            }
            # Left out while unused, so a row's bytes change only when its content does.
            if row.closed:
                body["closed"] = True
            if row.closed_totals is not None:
                body["closed_totals"] = {
                    account: [str(debit), str(credit)]
                    for account, (debit, credit) in sorted(row.closed_totals.items())
                }
            if row.late_entries_out:
                body["late_entries_out"] = row.late_entries_out
        case ProjectRow():
            body = {"hours": str(row.hours), "billable_amount": str(row.billable_amount)}
        case ProductRow():
            body = {"quantity": row.quantity, "cost": str(row.cost)}
    return {"table": row.table, **body, "watermarks": _watermarks_to_json(row.watermarks)}


def _budget_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return BudgetRow(
        amount=_money_or_none(encoded.get("amount")),
        actual=money(encoded["actual"]),
        watermarks=watermarks,
    )


def _customer_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return CustomerRow(
        credit_limit=_money_or_none(encoded.get("credit_limit")),
        exposure=money(encoded["exposure"]),
        payments_total=money(encoded["payments_total"]),
        last_payment=_payment_from_json(encoded.get("last_payment")),
        watermarks=watermarks,
    )


def _vendor_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    items = {
        item_id: OpenItem(
            amount=money(item["amount"]),
            business_date=date.fromisoformat(item["business_date"]),
            due_date=date.fromisoformat(item["due_date"]),
            document_id=item.get("document_id", ""),
        )
        for item_id, item in encoded["items"].items()
    }
    return VendorRow(
        items=_frozen(items),
        paid_total=money(encoded["paid_total"]),
        last_payment=_payment_from_json(encoded.get("last_payment")),
        watermarks=watermarks,
    )


def _period_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    accounts = {
        account: (money(pair[0]), money(pair[1])) for account, pair in encoded["accounts"].items()
    }
    totals = encoded.get("closed_totals")
    return PeriodRow(
        accounts=_frozen(accounts),
        entry_count=int(encoded["entry_count"]),
        watermarks=watermarks,
        closed=bool(encoded.get("closed", False)),
        closed_totals=None
        if totals is None
        else _frozen(
            {account: (money(pair[0]), money(pair[1])) for account, pair in totals.items()}
        ),
        late_entries_out=int(encoded.get("late_entries_out", 0)),
    )


def _project_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return ProjectRow(
        hours=money(encoded["hours"]),
        billable_amount=money(encoded["billable_amount"]),
        watermarks=watermarks,
    )


def _product_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return ProductRow(
        quantity=int(encoded["quantity"]), cost=money(encoded["cost"]), watermarks=watermarks
    )


_ROW_READERS: Mapping[str, Callable[[Mapping[str, Any], Watermarks], Row]] = {
    deltas.BUDGETS: _budget_from,
    deltas.CUSTOMERS: _customer_from,
    deltas.VENDORS: _vendor_from,
    deltas.PERIODS: _period_from,
    deltas.PROJECTS: _project_from,
    deltas.PRODUCTS: _product_from,
}


def row_from_json_dict(table: str, encoded: Mapping[str, Any]) -> Row:
    """Read a row of ``table`` from its JSON form (the form's own tag must agree if present)."""
    reader = _ROW_READERS.get(table)
    if reader is None:
        raise ValueError(f"unknown table {table!r}")
    tag = encoded.get("table", table)
    if tag != table:
        raise ValueError(f"a {tag!r} row cannot be read as a {table!r} row")
    return reader(encoded, _watermarks_from_json(encoded.get("watermarks", {})))
