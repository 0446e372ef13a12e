"""The immutable records of the contract's events and commands (docs/design.md, "Event
contract"): one frozen dataclass per event type, with its envelope, its data fields, the amounts
and references validation checks, and the union ``Event``. ``ledger.events`` parses decoded
records into them; ``ledger.event_json`` turns them back into records.

Each dataclass is the one Python source of its event's data fields: names, types, defaults and,
in each field's metadata (``ledger.event_fields``), its role (amount, reference, stated date,
free text, uuid, allowed values, the record's name for it). A class declares its own fields in
the order of the schema's ``data`` record; a dated event's ``currency`` and ``business_date``
come from ``_Dated``. tests/unit/schemas/test_event_schemas.py holds schema and class together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import ClassVar, NamedTuple

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
from ledger.event_fields import (
    AmountItem,
    Layout,
    ReferenceItem,
    ReferenceKind,
    amount,
    free_text,
    identifier,
    layout_of,
    one_of,
    ref,
    stated_date,
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


class AmountField(NamedTuple):
    """One amount of an event, named by its field path, for the amount checks.

    A named tuple, like ``Reference``: validation builds several per event, and a frozen
    dataclass costs about twice as much to build (one ``object.__setattr__`` call per field).
    """

    field: str
    value: Decimal
    zero_allowed: bool = False


class Reference(NamedTuple):
    """One identifier an event refers to, named by its field path, for the reference check."""

    field: str
    kind: ReferenceKind
    value: str


@dataclass(frozen=True, kw_only=True)
class _Envelope:
    """Fields every event and command shares, and what validation asks of every event.

    ``amounts()``, ``references()``, ``stated_dates()`` and ``free_texts()`` come from the roles
    declared on the data fields (``ledger.event_fields``), in the order of ``layout_of``: a
    class's own fields, then those of ``_Dated`` (so a currency is referred to last).
    """

    event_type: ClassVar[str]
    topic: ClassVar[str]
    layout: ClassVar[Layout]  # set once per class at import, below

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

    # Each built once per event and kept in its __dict__, beside the fields: validation asks
    # for both twice, and an event never changes. (functools.cached_property does the same but,
    # in Python 3.11, takes a lock each first time, which cost about as much as it saved.)
    def amounts(self) -> tuple[AmountField, ...]:
        found: tuple[AmountField, ...] | None = self.__dict__.get("_amounts")
        if found is None:
            items = self.layout.amounts
            found = tuple(_amounts(self, items, "data")) if items else ()
            self.__dict__["_amounts"] = found
        return found

    def references(self) -> tuple[Reference, ...]:
        found: tuple[Reference, ...] | None = self.__dict__.get("_references")
        if found is None:
            items = self.layout.references
            found = tuple(_references(self, items, "data")) if items else ()
            self.__dict__["_references"] = found
        return found

    def stated_dates(self) -> tuple[tuple[str, date], ...]:
        """Business dates the producer stated, by field path (checked against a time window)."""
        items = self.layout.stated_dates
        if not items:
            return ()
        found = []
        for name, wire in items:
            value = getattr(self, name)
            if value is not None:  # an optional date left out: the timestamp's date applies
                found.append(("data" + wire, value))
        return tuple(found)

    def free_texts(self) -> tuple[tuple[str, str], ...]:
        """Free text of the data, by field path (only its length is checked)."""
        items = self.layout.free_texts
        if not items:
            return ()
        return tuple(("data" + wire, getattr(self, name)) for name, wire in items)


def _amounts(record: object, items: tuple[AmountItem, ...], prefix: str) -> list[AmountField]:
    found = []
    for name, wire, zero_allowed, nested in items:
        value = getattr(record, name)
        if nested is None:
            found.append(AmountField(prefix + wire, value, zero_allowed))
        else:
            for index, line in enumerate(value):
                found += _amounts(line, nested.amounts, f"{prefix}{wire}[{index}]")
    return found


def _references(record: object, items: tuple[ReferenceItem, ...], prefix: str) -> list[Reference]:
    found = []
    for name, wire, kind, nested in items:
        value = getattr(record, name)
        if nested is not None:
            for index, line in enumerate(value):
                found += _references(line, nested.references, f"{prefix}{wire}[{index}]")
        elif value is not None:  # an optional reference left out refers to nothing
            assert kind is not None  # only nested records have none
            found.append(Reference(prefix + wire, kind, value))
    return found


@dataclass(frozen=True, kw_only=True)
class _Dated(_Envelope):
    """An event that names its currency and whose producer may state the business date (the
    record's ``business_date``; null means the timestamp's date)."""

    currency: str = field(default=DEFAULT_CURRENCY, metadata=ref("currency"))
    stated_business_date: date | None = field(
        default=None, metadata=stated_date(wire="business_date")
    )

    @property
    def business_date(self) -> date:
        if self.stated_business_date is not None:
            return self.stated_business_date
        return self.timestamp.astimezone(UTC).date()

    @property
    def currency_code(self) -> str | None:
        return self.currency


@dataclass(frozen=True, kw_only=True)
class DepartmentLine:
    """The part of a payroll run charged to one department and budget category."""

    department_id: str = field(metadata=ref("department"))
    category: str = field(default=DEFAULT_CATEGORY, metadata=ref("category"))
    amount: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class PayrollProcessed(_Envelope):
    event_type: ClassVar[str] = PAYROLL_PROCESSED
    topic: ClassVar[str] = HR_TOPIC

    payroll_id: str = field(metadata=ref("entity"))
    pay_period_start: date = field(metadata=stated_date())
    pay_period_end: date = field(metadata=stated_date())
    total_gross_pay: Decimal = field(metadata=amount())
    currency: str = field(default=DEFAULT_CURRENCY, metadata=ref("currency"))
    # Charged with the whole run when department_lines is empty.
    department_id: str | None = field(default=None, metadata=ref("department"))
    department_lines: tuple[DepartmentLine, ...] = ()

    @property
    def business_date(self) -> date:
        # Payroll belongs to the period it pays for, not to the day HR ran it.
        return self.pay_period_end

    @property
    def currency_code(self) -> str | None:
        return self.currency


@dataclass(frozen=True, kw_only=True)
class GoodsReceived(_Dated):
    event_type: ClassVar[str] = GOODS_RECEIVED
    topic: ClassVar[str] = SCM_TOPIC

    purchase_order_id: str = field(metadata=ref("entity"))
    vendor_id: str = field(metadata=ref("entity"))
    total_amount: Decimal = field(metadata=amount())
    payment_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS

    @property
    def due_date(self) -> date:
        return self.business_date + timedelta(days=self.payment_terms_days)


@dataclass(frozen=True, kw_only=True)
class SalesOrderCompleted(_Dated):
    event_type: ClassVar[str] = SALES_ORDER_COMPLETED
    topic: ClassVar[str] = CRM_TOPIC

    sales_order_id: str = field(metadata=ref("entity"))
    customer_id: str = field(metadata=ref("entity"))
    total_amount: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class ProductionOrderCompleted(_Dated):
    event_type: ClassVar[str] = PRODUCTION_ORDER_COMPLETED
    topic: ClassVar[str] = MFG_TOPIC

    production_order_id: str = field(metadata=ref("entity"))
    product_code: str = field(metadata=ref("entity"))
    quantity_produced: int
    total_cost: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class TimeLogged(_Dated):
    event_type: ClassVar[str] = TIME_LOGGED
    topic: ClassVar[str] = PM_TOPIC

    project_id: str = field(metadata=ref("entity"))
    employee_id: str = field(metadata=ref("entity"))
    hours: Decimal = field(metadata=amount())
    billable_amount: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class BudgetSet(_Envelope):
    event_type: ClassVar[str] = BUDGET_SET
    topic: ClassVar[str] = COMMANDS_TOPIC

    department_id: str = field(metadata=ref("department"))
    category: str = field(metadata=ref("category"))
    period: str
    # A zero budget is a real decision ("nothing may be spent"), not a mistake.
    amount: Decimal = field(metadata=amount(zero_allowed=True))


@dataclass(frozen=True, kw_only=True)
class CreditLimitSet(_Envelope):
    event_type: ClassVar[str] = CREDIT_LIMIT_SET
    topic: ClassVar[str] = COMMANDS_TOPIC

    customer_id: str = field(metadata=ref("entity"))
    # A zero limit means "no credit": every open receivable is over the limit.
    credit_limit: Decimal = field(metadata=amount(zero_allowed=True))


@dataclass(frozen=True, kw_only=True)
class VendorPaymentMade(_Dated):
    event_type: ClassVar[str] = VENDOR_PAYMENT_MADE
    topic: ClassVar[str] = COMMANDS_TOPIC

    vendor_id: str = field(metadata=ref("entity"))
    payment_id: str = field(metadata=ref("entity"))
    amount: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class CustomerPaymentReceived(_Dated):
    event_type: ClassVar[str] = CUSTOMER_PAYMENT_RECEIVED
    topic: ClassVar[str] = COMMANDS_TOPIC

    customer_id: str = field(metadata=ref("entity"))
    payment_id: str = field(metadata=ref("entity"))
    amount: Decimal = field(metadata=amount())


@dataclass(frozen=True, kw_only=True)
class CompensationRequested(_Envelope):
    event_type: ClassVar[str] = COMPENSATION_REQUESTED
    topic: ClassVar[str] = COMMANDS_TOPIC

    target_event_id: str = field(metadata=identifier())
    # The schema has no default here; a JSON record without a reason reads as "" (as it always
    # has), which tests/unit/schemas/test_event_schemas.py lists as the one known difference.
    reason: str = field(default="", metadata=free_text())


@dataclass(frozen=True, kw_only=True)
class DepartmentChanged(_Envelope):
    """Register, rename or retire a department (master data, ``ledger.master``)."""

    event_type: ClassVar[str] = DEPARTMENT_CHANGED
    topic: ClassVar[str] = COMMANDS_TOPIC

    department_id: str  # a reference whose kind depends on the action: see references()
    action: str = field(metadata=one_of(DEPARTMENT_ACTIONS))
    name: str = field(default="", metadata=free_text())
    requested_by: str = field(default="", metadata=free_text())
    reason: str = field(default="", metadata=free_text())

    def references(self) -> tuple[Reference, ...]:
        # Registering names a new department; renaming or retiring one needs it to exist.
        kind: ReferenceKind = "entity" if self.action == "REGISTER" else "department"
        return (Reference("data.department_id", kind, self.department_id),)


@dataclass(frozen=True, kw_only=True)
class PeriodChanged(_Envelope):
    """Close or re-open an accounting month (``ledger.master.PeriodRegister``)."""

    event_type: ClassVar[str] = PERIOD_CHANGED
    topic: ClassVar[str] = COMMANDS_TOPIC

    period: str
    action: str = field(metadata=one_of(PERIOD_ACTIONS))
    requested_by: str = field(default="", metadata=free_text())
    reason: str = field(default="", metadata=free_text())


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

EVENT_RECORD_TYPES: tuple[type[Event], ...] = (
    PayrollProcessed,
    GoodsReceived,
    SalesOrderCompleted,
    ProductionOrderCompleted,
    TimeLogged,
    BudgetSet,
    CreditLimitSet,
    VendorPaymentMade,
    CustomerPaymentReceived,
    CompensationRequested,
    DepartmentChanged,
    PeriodChanged,
)

# Read once per class here, not per event: amounts() and references() run for every event.
for _event_class in EVENT_RECORD_TYPES:
    _event_class.layout = layout_of(_event_class)
