"""Immutable records of the events and commands of the contract (docs/design.md).

``parse_event`` turns a decoded Avro record into one of these. It accepts what fastavro yields
(``Decimal`` money, ``date`` dates, an aware ``datetime`` timestamp, ``uuid.UUID`` ids) and also
the JSON form of the same record (``ledger.event_json.to_json_record``: money and dates as
text). The internal topic ``fin.internal.by-event-id`` carries the source record's original
Avro bytes, which the posting stage decodes again with the same schemas, not this JSON form.
Parsing checks the *shape* only; business rules (positive amounts, known departments, ...) are
``ledger.validation``'s job, so an event here may still be invalid. The records themselves are
in ``ledger.event_types``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ledger.contract import (
    BUDGET_SET,
    COMPENSATION_REQUESTED,
    CREDIT_LIMIT_SET,
    CUSTOMER_PAYMENT_RECEIVED,
    DEPARTMENT_CHANGED,
    GOODS_RECEIVED,
    PAYROLL_PROCESSED,
    PERIOD_CHANGED,
    PRODUCTION_ORDER_COMPLETED,
    SALES_ORDER_COMPLETED,
    TIME_LOGGED,
    VENDOR_PAYMENT_MADE,
)
from ledger.event_json import to_json_record, to_record
from ledger.event_types import (
    DEFAULT_CATEGORY,
    DEFAULT_CURRENCY,
    DEFAULT_PAYMENT_TERMS_DAYS,
    DEPARTMENT_ACTIONS,
    PERIOD_ACTIONS,
    AmountField,
    BudgetSet,
    CompensationRequested,
    CreditLimitSet,
    CustomerPaymentReceived,
    DepartmentChanged,
    DepartmentLine,
    Event,
    GoodsReceived,
    MalformedEventError,
    PayrollProcessed,
    PeriodChanged,
    ProductionOrderCompleted,
    Reference,
    ReferenceKind,
    SalesOrderCompleted,
    TimeLogged,
    UnknownEventTypeError,
    VendorPaymentMade,
)

# The event records are defined in ledger/event_types.py and the JSON forms in
# ledger/event_json.py; both are re-exported here, where everything has taken them from.
__all__ = [
    "DEFAULT_CATEGORY",
    "DEFAULT_CURRENCY",
    "DEFAULT_PAYMENT_TERMS_DAYS",
    "DEPARTMENT_ACTIONS",
    "EVENT_CLASSES",
    "PERIOD_ACTIONS",
    "POSTING_EVENT_TYPES",
    "AmountField",
    "BudgetSet",
    "CompensationRequested",
    "CreditLimitSet",
    "CustomerPaymentReceived",
    "DepartmentChanged",
    "DepartmentLine",
    "Event",
    "GoodsReceived",
    "MalformedEventError",
    "PayrollProcessed",
    "PeriodChanged",
    "ProductionOrderCompleted",
    "Reference",
    "ReferenceKind",
    "SalesOrderCompleted",
    "TimeLogged",
    "UnknownEventTypeError",
    "VendorPaymentMade",
    "event_types_on",
    "parse_event",
    "to_json_record",
    "to_record",
    "topic_of",
]

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
