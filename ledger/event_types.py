"""The immutable records of the contract's events and commands (docs/design.md, "Event
contract"): one frozen dataclass per event type, with its envelope, its data fields, the amounts
and references validation checks, and the union ``Event``. ``ledger.events`` parses decoded
records into them; ``ledger.event_json`` turns them back into records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import ClassVar, Literal

from errors import FinError
from ledger.contract import (
    BUDGET_SET,
    COMMANDS_TOPIC,
    COMPENSATION_REQUESTED,
    CREDIT_LIMIT_SET,
    CRM_TOPIC,
    CUSTOMER_PAYMENT_RECEIVED,
    DEPARTMENT_CHANGED,
    GOODS_RECEIVED,
    HR_TOPIC,
    MFG_TOPIC,
    PAYROLL_PROCESSED,
    PERIOD_CHANGED,
    PM_TOPIC,
    PRODUCTION_ORDER_COMPLETED,
    SALES_ORDER_COMPLETED,
    SCM_TOPIC,
    TIME_LOGGED,
    VENDOR_PAYMENT_MADE,
)

DEPARTMENT_ACTIONS = ("REGISTER", "RENAME", "RETIRE")
PERIOD_ACTIONS = ("CLOSE", "REOPEN")

DEFAULT_CURRENCY = "USD"
DEFAULT_CATEGORY = "SALARY"
DEFAULT_PAYMENT_TERMS_DAYS = 30


class UnknownEventTypeError(FinError):
    """The record's ``event_type`` is not in the contract; validation reports
    ``event_type_unknown``."""


class MalformedEventError(FinError):
    """A field is missing or has the wrong type for the contract; validation reports
    ``payload_undecodable`` (strict Avro decoding should have made this impossible)."""


ReferenceKind = Literal["department", "category", "currency", "entity"]


@dataclass(frozen=True)
class AmountField:
    """One amount of an event, named by its field path, for the amount checks."""

    field: str
    value: Decimal
    zero_allowed: bool = False


@dataclass(frozen=True)
class Reference:
    """One identifier an event refers to, named by its field path, for the reference check."""

    field: str
    kind: ReferenceKind
    value: str


@dataclass(frozen=True, kw_only=True)
class _Envelope:
    """Fields every event and command shares."""

    event_type: ClassVar[str]
    topic: ClassVar[str]

    event_id: str
    timestamp: datetime
    source: str = ""

    @property
    def business_date(self) -> date:
        """The date the fact belongs to; subclasses with a stated date override this."""
        return self.timestamp.astimezone(UTC).date()

    @property
    def currency_code(self) -> str | None:
        """Currency of the amounts, or None when the record has no currency field."""
        return None

    def amounts(self) -> tuple[AmountField, ...]:
        return ()

    def references(self) -> tuple[Reference, ...]:
        return ()

    def stated_dates(self) -> tuple[tuple[str, date], ...]:
        """Business dates the producer stated, by field path (checked against a time window)."""
        return ()


@dataclass(frozen=True, kw_only=True)
class _Dated(_Envelope):
    """An event whose producer may state the business date; null means the timestamp's date."""

    currency: str = DEFAULT_CURRENCY
    stated_business_date: date | None = None

    @property
    def business_date(self) -> date:
        if self.stated_business_date is not None:
            return self.stated_business_date
        return self.timestamp.astimezone(UTC).date()

    @property
    def currency_code(self) -> str | None:
        return self.currency

    def stated_dates(self) -> tuple[tuple[str, date], ...]:
        if self.stated_business_date is None:
            return ()
        return (("data.business_date", self.stated_business_date),)


@dataclass(frozen=True)
class DepartmentLine:
    """The part of a payroll run charged to one department and budget category."""

    department_id: str
    category: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PayrollProcessed(_Envelope):
    event_type: ClassVar[str] = PAYROLL_PROCESSED
    topic: ClassVar[str] = HR_TOPIC

    payroll_id: str
    pay_period_start: date
    pay_period_end: date
    total_gross_pay: Decimal
    currency: str = DEFAULT_CURRENCY
    department_id: str | None = None
    department_lines: tuple[DepartmentLine, ...] = ()

    @property
    def business_date(self) -> date:
        # Payroll belongs to the period it pays for, not to the day HR ran it.
        return self.pay_period_end

    @property
    def currency_code(self) -> str | None:
        return self.currency

    def amounts(self) -> tuple[AmountField, ...]:
        lines = tuple(
            AmountField(f"data.department_lines[{index}].amount", line.amount)
            for index, line in enumerate(self.department_lines)
        )
        return (AmountField("data.total_gross_pay", self.total_gross_pay), *lines)

    def references(self) -> tuple[Reference, ...]:
        found = [
            Reference("data.payroll_id", "entity", self.payroll_id),
            Reference("data.currency", "currency", self.currency),
        ]
        if self.department_id is not None:
            found.append(Reference("data.department_id", "department", self.department_id))
        for index, line in enumerate(self.department_lines):
            prefix = f"data.department_lines[{index}]"
            found.append(Reference(f"{prefix}.department_id", "department", line.department_id))
            found.append(Reference(f"{prefix}.category", "category", line.category))
        return tuple(found)

    def stated_dates(self) -> tuple[tuple[str, date], ...]:
        return (
            ("data.pay_period_start", self.pay_period_start),
            ("data.pay_period_end", self.pay_period_end),
        )


@dataclass(frozen=True, kw_only=True)
class GoodsReceived(_Dated):
    event_type: ClassVar[str] = GOODS_RECEIVED
    topic: ClassVar[str] = SCM_TOPIC

    purchase_order_id: str
    vendor_id: str
    total_amount: Decimal
    payment_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS

    @property
    def due_date(self) -> date:
        return self.business_date + timedelta(days=self.payment_terms_days)

    def amounts(self) -> tuple[AmountField, ...]:
        return (AmountField("data.total_amount", self.total_amount),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.purchase_order_id", "entity", self.purchase_order_id),
            Reference("data.vendor_id", "entity", self.vendor_id),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class SalesOrderCompleted(_Dated):
    event_type: ClassVar[str] = SALES_ORDER_COMPLETED
    topic: ClassVar[str] = CRM_TOPIC

    sales_order_id: str
    customer_id: str
    total_amount: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        return (AmountField("data.total_amount", self.total_amount),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.sales_order_id", "entity", self.sales_order_id),
            Reference("data.customer_id", "entity", self.customer_id),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class ProductionOrderCompleted(_Dated):
    event_type: ClassVar[str] = PRODUCTION_ORDER_COMPLETED
    topic: ClassVar[str] = MFG_TOPIC

    production_order_id: str
    product_code: str
    quantity_produced: int
    total_cost: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        return (AmountField("data.total_cost", self.total_cost),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.production_order_id", "entity", self.production_order_id),
            Reference("data.product_code", "entity", self.product_code),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class TimeLogged(_Dated):
    event_type: ClassVar[str] = TIME_LOGGED
    topic: ClassVar[str] = PM_TOPIC

    project_id: str
    employee_id: str
    hours: Decimal
    billable_amount: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        return (
            AmountField("data.hours", self.hours),
            AmountField("data.billable_amount", self.billable_amount),
        )

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.project_id", "entity", self.project_id),
            Reference("data.employee_id", "entity", self.employee_id),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class BudgetSet(_Envelope):
    event_type: ClassVar[str] = BUDGET_SET
    topic: ClassVar[str] = COMMANDS_TOPIC

    department_id: str
    category: str
    period: str
    amount: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        # A zero budget is a real decision ("nothing may be spent"), not a mistake.
        return (AmountField("data.amount", self.amount, zero_allowed=True),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.department_id", "department", self.department_id),
            Reference("data.category", "category", self.category),
        )


@dataclass(frozen=True, kw_only=True)
class CreditLimitSet(_Envelope):
    event_type: ClassVar[str] = CREDIT_LIMIT_SET
    topic: ClassVar[str] = COMMANDS_TOPIC

    customer_id: str
    credit_limit: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        # A zero limit means "no credit": every open receivable is over the limit.
        return (AmountField("data.credit_limit", self.credit_limit, zero_allowed=True),)

    def references(self) -> tuple[Reference, ...]:
        return (Reference("data.customer_id", "entity", self.customer_id),)


@dataclass(frozen=True, kw_only=True)
class VendorPaymentMade(_Dated):
    event_type: ClassVar[str] = VENDOR_PAYMENT_MADE
    topic: ClassVar[str] = COMMANDS_TOPIC

    vendor_id: str
    payment_id: str
    amount: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        return (AmountField("data.amount", self.amount),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.vendor_id", "entity", self.vendor_id),
            Reference("data.payment_id", "entity", self.payment_id),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class CustomerPaymentReceived(_Dated):
    event_type: ClassVar[str] = CUSTOMER_PAYMENT_RECEIVED
    topic: ClassVar[str] = COMMANDS_TOPIC

    customer_id: str
    payment_id: str
    amount: Decimal

    def amounts(self) -> tuple[AmountField, ...]:
        return (AmountField("data.amount", self.amount),)

    def references(self) -> tuple[Reference, ...]:
        return (
            Reference("data.customer_id", "entity", self.customer_id),
            Reference("data.payment_id", "entity", self.payment_id),
            Reference("data.currency", "currency", self.currency),
        )


@dataclass(frozen=True, kw_only=True)
class CompensationRequested(_Envelope):
    event_type: ClassVar[str] = COMPENSATION_REQUESTED
    topic: ClassVar[str] = COMMANDS_TOPIC

    target_event_id: str
    reason: str = field(default="")


@dataclass(frozen=True, kw_only=True)
class DepartmentChanged(_Envelope):
    """Register, rename or retire a department (master data, ``ledger.master``)."""

    event_type: ClassVar[str] = DEPARTMENT_CHANGED
    topic: ClassVar[str] = COMMANDS_TOPIC

    department_id: str
    action: str
    name: str = ""
    requested_by: str = ""
    reason: str = ""

    def references(self) -> tuple[Reference, ...]:
        # Registering names a new department; renaming or retiring one needs it to exist.
        kind: ReferenceKind = "entity" if self.action == "REGISTER" else "department"
        return (Reference("data.department_id", kind, self.department_id),)

    def free_texts(self) -> tuple[tuple[str, str], ...]:
        return (
            ("data.name", self.name),
            ("data.requested_by", self.requested_by),
            ("data.reason", self.reason),
        )


@dataclass(frozen=True, kw_only=True)
class PeriodChanged(_Envelope):
    """Close or re-open an accounting month (``ledger.master.PeriodRegister``)."""

    event_type: ClassVar[str] = PERIOD_CHANGED
    topic: ClassVar[str] = COMMANDS_TOPIC

    period: str
    action: str
    requested_by: str = ""
    reason: str = ""

    def free_texts(self) -> tuple[tuple[str, str], ...]:
        return (("data.requested_by", self.requested_by), ("data.reason", self.reason))


Event = (
    PayrollProcessed
    | GoodsReceived
    | SalesOrderCompleted
    | ProductionOrderCompleted
    | TimeLogged
    | BudgetSet
    | CreditLimitSet
    | VendorPaymentMade
    | CustomerPaymentReceived
    | CompensationRequested
    | DepartmentChanged
    | PeriodChanged
)
