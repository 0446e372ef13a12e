"""Immutable records of the events and commands of the contract (docs/design.md).

``parse_event`` turns a decoded Avro record into one of these. It accepts what fastavro yields
(``Decimal`` money, ``date`` dates, an aware ``datetime`` timestamp, ``uuid.UUID`` ids) and also
the JSON form of the same record (``to_json_record``: money and dates as text). The internal
topic ``fin.internal.by-event-id`` carries the source record's original Avro bytes, which the
posting stage decodes again with the same schemas, not this JSON form. Parsing checks the
*shape* only; business rules (positive amounts, known departments, ...) are
``ledger.validation``'s job, so an event here may still be invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal
from uuid import UUID

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

EVENT_CLASSES: Mapping[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
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
}

# Event types that produce a journal entry through the posting map of the chart.
POSTING_EVENT_TYPES: tuple[str, ...] = (
    PAYROLL_PROCESSED,
    GOODS_RECEIVED,
    SALES_ORDER_COMPLETED,
    PRODUCTION_ORDER_COMPLETED,
    TIME_LOGGED,
    VENDOR_PAYMENT_MADE,
    CUSTOMER_PAYMENT_RECEIVED,
)


def topic_of(event_type: str) -> str:
    """The contract topic an event type arrives on; raises ``UnknownEventTypeError``."""
    return _class_of(event_type).topic


def event_types_on(topic: str) -> tuple[str, ...]:
    """Event types the contract allows on ``topic`` (unprefixed contract name)."""
    # Asked for every event; the answer per topic is fixed at import, so it is looked up.
    return _EVENT_TYPES_BY_TOPIC.get(topic, ())


_EVENT_TYPES_BY_TOPIC: Mapping[str, tuple[str, ...]] = {
    topic: tuple(name for name, cls in EVENT_CLASSES.items() if cls.topic == topic)
    for topic in {cls.topic for cls in EVENT_CLASSES.values()}
}


def _class_of(event_type: object) -> type[Event]:
    if not isinstance(event_type, str):
        raise MalformedEventError(f"event_type must be text, got {type(event_type).__name__}")
    cls = EVENT_CLASSES.get(event_type)
    if cls is None:
        raise UnknownEventTypeError(f"event_type {event_type!r} is not in the contract")
    return cls


# --- field readers: each names the field it failed on -------------------------------------


def _required(data: Mapping[str, Any], name: str, path: str) -> Any:
    if name not in data:
        raise MalformedEventError(f"{path}.{name} is missing")
    return data[name]


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise MalformedEventError(f"{path} must be text, got {type(value).__name__}")
    return value


def _optional_text(value: Any, path: str) -> str | None:
    return None if value is None else _text(value, path)


def _identifier(value: Any, path: str) -> str:
    """A uuid field: fastavro yields ``uuid.UUID``; JSON yields text (checked later)."""
    if isinstance(value, UUID):
        return str(value)
    return _text(value, path)


def _decimal(value: Any, path: str) -> Decimal:
    # Floats are refused here as everywhere: they cannot carry cents exactly.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation as exc:
            raise MalformedEventError(f"{path} is not a decimal: {value!r}") from exc
    raise MalformedEventError(f"{path} must be a decimal, got {type(value).__name__}")


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError(f"{path} must be an integer, got {type(value).__name__}")
    return value


def _date(value: Any, path: str) -> date:
    # datetime is a subclass of date; a datetime here means the schema was not the contract's.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise MalformedEventError(f"{path} is not an ISO date: {value!r}") from exc
    raise MalformedEventError(f"{path} must be a date, got {type(value).__name__}")


def _optional_date(value: Any, path: str) -> date | None:
    return None if value is None else _date(value, path)


def _timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise MalformedEventError(f"{path} is not an ISO timestamp: {value!r}") from exc
    if not isinstance(value, datetime):
        raise MalformedEventError(f"{path} must be a timestamp, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous by hours, which can move an entry across a period boundary.
        raise MalformedEventError(f"{path} must carry a time zone: {value.isoformat()}")
    return value.astimezone(UTC)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    # A decoded record is a dict: skip the (slower) check against the Mapping ABC.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise MalformedEventError(f"{path} must be a record, got {type(value).__name__}")
    return value


def _sequence(value: Any, path: str) -> Sequence[Any]:
    if type(value) is list:  # what a decoded array is: no need to ask the Sequence ABC
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise MalformedEventError(f"{path} must be an array, got {type(value).__name__}")
    return value


# --- per-type data readers ---------------------------------------------------------------


def _payroll_data(data: Mapping[str, Any]) -> dict[str, Any]:
    path = "data"
    lines_value = _sequence(data.get("department_lines", []), f"{path}.department_lines")
    lines = []
    for index, raw_line in enumerate(lines_value):
        line_path = f"{path}.department_lines[{index}]"
        line = _mapping(raw_line, line_path)
        lines.append(
            DepartmentLine(
                department_id=_text(
                    _required(line, "department_id", line_path), f"{line_path}.department_id"
                ),
                category=_text(line.get("category", DEFAULT_CATEGORY), f"{line_path}.category"),
                amount=_decimal(_required(line, "amount", line_path), f"{line_path}.amount"),
            )
        )
    return {
        "payroll_id": _text(_required(data, "payroll_id", path), "data.payroll_id"),
        "pay_period_start": _date(
            _required(data, "pay_period_start", path), "data.pay_period_start"
        ),
        "pay_period_end": _date(_required(data, "pay_period_end", path), "data.pay_period_end"),
        "total_gross_pay": _decimal(
            _required(data, "total_gross_pay", path), "data.total_gross_pay"
        ),
        "currency": _text(data.get("currency", DEFAULT_CURRENCY), "data.currency"),
        "department_id": _optional_text(data.get("department_id"), "data.department_id"),
        "department_lines": tuple(lines),
    }


def _dated_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "currency": _text(data.get("currency", DEFAULT_CURRENCY), "data.currency"),
        "stated_business_date": _optional_date(data.get("business_date"), "data.business_date"),
    }


def _texts(data: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: _text(_required(data, name, "data"), f"data.{name}") for name in names}


def _decimals(data: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: _decimal(_required(data, name, "data"), f"data.{name}") for name in names}


def _goods_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "purchase_order_id", "vendor_id"),
        **_decimals(data, "total_amount"),
        "payment_terms_days": _integer(
            data.get("payment_terms_days", DEFAULT_PAYMENT_TERMS_DAYS), "data.payment_terms_days"
        ),
        **_dated_fields(data),
    }


def _sales_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "sales_order_id", "customer_id"),
        **_decimals(data, "total_amount"),
        **_dated_fields(data),
    }


def _production_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "production_order_id", "product_code"),
        "quantity_produced": _integer(
            _required(data, "quantity_produced", "data"), "data.quantity_produced"
        ),
        **_decimals(data, "total_cost"),
        **_dated_fields(data),
    }


def _time_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "project_id", "employee_id"),
        **_decimals(data, "hours", "billable_amount"),
        **_dated_fields(data),
    }


def _budget_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {**_texts(data, "department_id", "category", "period"), **_decimals(data, "amount")}


def _credit_limit_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {**_texts(data, "customer_id"), **_decimals(data, "credit_limit")}


def _vendor_payment_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "vendor_id", "payment_id"),
        **_decimals(data, "amount"),
        **_dated_fields(data),
    }


def _customer_payment_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_texts(data, "customer_id", "payment_id"),
        **_decimals(data, "amount"),
        **_dated_fields(data),
    }


def _compensation_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "target_event_id": _identifier(
            _required(data, "target_event_id", "data"), "data.target_event_id"
        ),
        "reason": _text(data.get("reason", ""), "data.reason"),
    }


def _department_data(data: Mapping[str, Any]) -> dict[str, Any]:
    action = _text(_required(data, "action", "data"), "data.action")
    if action not in DEPARTMENT_ACTIONS:
        raise MalformedEventError(
            f"data.action must be one of {DEPARTMENT_ACTIONS}, got {action!r}"
        )
    return {
        **_texts(data, "department_id"),
        "action": action,
        **{
            name: _text(data.get(name, ""), f"data.{name}")
            for name in ("name", "requested_by", "reason")
        },
    }


def _period_data(data: Mapping[str, Any]) -> dict[str, Any]:
    action = _text(_required(data, "action", "data"), "data.action")
    if action not in PERIOD_ACTIONS:
        raise MalformedEventError(f"data.action must be one of {PERIOD_ACTIONS}, got {action!r}")
    return {
        **_texts(data, "period"),
        "action": action,
        **{name: _text(data.get(name, ""), f"data.{name}") for name in ("requested_by", "reason")},
    }


_DATA_READERS: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    PAYROLL_PROCESSED: _payroll_data,
    GOODS_RECEIVED: _goods_data,
    SALES_ORDER_COMPLETED: _sales_data,
    PRODUCTION_ORDER_COMPLETED: _production_data,
    TIME_LOGGED: _time_data,
    BUDGET_SET: _budget_data,
    CREDIT_LIMIT_SET: _credit_limit_data,
    VENDOR_PAYMENT_MADE: _vendor_payment_data,
    CUSTOMER_PAYMENT_RECEIVED: _customer_payment_data,
    COMPENSATION_REQUESTED: _compensation_data,
    DEPARTMENT_CHANGED: _department_data,
    PERIOD_CHANGED: _period_data,
}


def parse_event(record: Mapping[str, Any]) -> Event:
    """Build the event record from a decoded envelope.

    Raises ``UnknownEventTypeError`` for an event type outside the contract and
    ``MalformedEventError`` (naming the field) for a missing or mistyped field.
    """
    envelope = _mapping(record, "record")
    cls = _class_of(_required(envelope, "event_type", "record"))
    data = _mapping(_required(envelope, "data", "record"), "data")
    values = _DATA_READERS[cls.event_type](data)
    return cls(
        event_id=_identifier(_required(envelope, "event_id", "record"), "event_id"),
        timestamp=_timestamp(_required(envelope, "timestamp", "record"), "timestamp"),
        source=_text(envelope.get("source", ""), "source"),
        **values,
    )


# --- JSON form of a decoded record ---------------------------------------------------------


def to_json_record(record: Any) -> Any:
    """The JSON-safe form of a decoded record: Decimal as its text, dates as ISO text, the
    timestamp as ISO text in UTC, UUIDs as text; ``parse_event`` reads this form back.

    ``ledger.idempotency.fingerprint`` is computed on this form, so the fingerprint is the same
    before and after a JSON round trip (``fin.internal.by-event-id`` carries Avro bytes, not
    this form).
    Floats and bytes are refused: neither belongs in a decoded FIN record.
    """
    # A decoded record holds only these exact types; dispatching on the type is several times
    # faster than the chain of isinstance checks (Mapping is an ABC) of the general rules, which
    # still decide everything else (subclasses, other mappings, what is refused) the same way.
    kind = type(record)
    if kind is dict:
        return _dict_to_json(record)
    if kind is str or kind is int or kind is bool or record is None:
        return record
    if kind is Decimal:
        return str(record)
    if kind is datetime:
        return _timestamp_to_json(record)
    if kind is date:
        return record.isoformat()
    if kind is list or kind is tuple:
        return [to_json_record(item) for item in record]
    return _to_json_record_general(record)


def _dict_to_json(record: dict[Any, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for key, value in record.items():
        if type(key) is not str:
            general: dict[str, Any] = _to_json_record_general(record)  # names the key as before
            return general
        kind = type(value)
        if kind is str or value is None:
            encoded[key] = value
        elif kind is dict:
            encoded[key] = _dict_to_json(value)
        else:
            encoded[key] = to_json_record(value)
    return encoded


def _timestamp_to_json(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise TypeError(f"timestamp without time zone: {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat()


def _to_json_record_general(record: Any) -> Any:
    if isinstance(record, Mapping):
        encoded: dict[str, Any] = {}
        for key, value in record.items():
            if not isinstance(key, str):
                raise TypeError(f"record keys must be text, got {key!r}")
            encoded[key] = to_json_record(value)
        return encoded
    if isinstance(record, list | tuple):
        return [to_json_record(item) for item in record]
    if isinstance(record, Decimal):
        return str(record)
    if isinstance(record, datetime):
        return _timestamp_to_json(record)
    if isinstance(record, date):
        return record.isoformat()
    if isinstance(record, UUID):
        return str(record)
    if record is None or isinstance(record, str | int):
        # bool is an int and passes unchanged, which JSON represents exactly.
        return record
    raise TypeError(f"{type(record).__name__} has no place in a decoded FIN record: {record!r}")


# --- back to a record ----------------------------------------------------------------------

_ENVELOPE_FIELDS = frozenset({"event_id", "timestamp", "source"})
# The dataclass keeps the producer's optional date apart from the resolved ``business_date``.
_RECORD_NAMES = {"stated_business_date": "business_date"}


def to_record(event: Event) -> dict[str, Any]:
    """The decoded-Avro form of ``event`` (the inverse of :func:`parse_event`).

    Used by producers and tests; values keep their Python types (Decimal, date, datetime).
    """
    data: dict[str, Any] = {}
    for item in fields(event):
        if item.name in _ENVELOPE_FIELDS:
            continue
        value = getattr(event, item.name)
        if item.name == "department_lines":
            value = [
                {
                    "department_id": line.department_id,
                    "category": line.category,
                    "amount": line.amount,
                }
                for line in value
            ]
        data[_RECORD_NAMES.get(item.name, item.name)] = value
    return {
        "event_type": event.event_type,
        "event_id": event.event_id,
        "timestamp": event.timestamp,
        "source": event.source,
        "data": data,
    }
