"""The rows of FIN's state tables, the alerts a change raises, and the budget and credit levels.

Rows are immutable; ``ledger.reducers.apply`` is the only way one changes, the read views over
them are ``ledger.row_views`` and their JSON form ``ledger.row_json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self
from uuid import UUID

from ledger import deltas
from ledger.chart import BudgetCategory
from ledger.ids import uuid5_text
from ledger.money import ZERO, money

# (by-id partition, by-id offset, index of the delta within the event's posting)
Position = tuple[int, int, int]
# by-id partition -> (offset, index) of the last delta applied from that partition
Watermarks = Mapping[int, tuple[int, int]]

# Fixed forever, like the entry namespace: alert ids must stay stable across replays so the
# consumers of fin.alerts can drop the copies a replay re-emits.
ALERT_NAMESPACE = UUID("214d6fd5-4c25-4c4a-a077-d2197dba772f")

BudgetLevel = Literal["no_budget", "ok", "near", "exceeded"]
CreditLevel = Literal["no_limit", "ok", "near", "over"]


def frozen_mapping(mapping: Mapping[Any, Any] | None = None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping or {}))


def _no_watermarks() -> Watermarks:
    return frozen_mapping()


# --- rows ----------------------------------------------------------------------------------


class _JsonRow:
    """``to_json_dict`` / ``from_json_dict`` on every row class (see ``row_to_json_dict``)."""

    table: ClassVar[str]

    def to_json_dict(self) -> dict[str, Any]:
        from ledger.row_json import (
            row_to_json_dict,  # row_json reads these rows: a call-time import
        )

        assert isinstance(self, ROW_TYPES)
        return row_to_json_dict(self)

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> Self:
        from ledger.row_json import row_from_json_dict

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
    """A vendor's payables: the items still open or recent, and what left the row.

    An item that payments cover in full and that fell due more than ``SETTLED_AFTER_DAYS``
    before the latest business date the row has seen leaves ``items``; its amount joins
    ``settled_total`` (``ledger.reducers``), so the row stays bounded by recent activity
    rather than growing with the vendor's history. ``settled_due`` is the latest due date of
    a settled item: a reversal that takes back more than the open items can absorb re-opens
    settled amounts, which the views age at that date (``ledger.row_views.vendor_status``).
    """

    table: ClassVar[str] = deltas.VENDORS

    items: Mapping[str, OpenItem] = field(default_factory=frozen_mapping)
    paid_total: Decimal = ZERO
    last_payment: Payment | None = None
    watermarks: Watermarks = field(default_factory=_no_watermarks)
    settled_total: Decimal = ZERO
    settled_due: date | None = None
    latest_date: date | None = None

    @property
    def invoiced(self) -> Decimal:
        """Every receipt's amount net of reversals, settled ones included."""
        return self.settled_total + sum((item.amount for item in self.items.values()), ZERO)


@dataclass(frozen=True)
class PeriodRow(_JsonRow):
    """Gross debit and credit turnover per account in one month or quarter."""

    table: ClassVar[str] = deltas.PERIODS

    accounts: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=frozen_mapping)
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
