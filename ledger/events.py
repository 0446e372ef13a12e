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
    CUSTOMER_PAYMENT_RECEIVED,
    GOODS_RECEIVED,
    PAYROLL_PROCESSED,
    PRODUCTION_ORDER_COMPLETED,
    SALES_ORDER_COMPLETED,
    TIME_LOGGED,
    VENDOR_PAYMENT_MADE,
)
from ledger.event_fields import REQUIRED, DataField, Layout, ReferenceKind
from ledger.event_json import to_json_record, to_record
from ledger.event_types import (
    DEFAULT_CATEGORY,
    DEFAULT_CURRENCY,
    DEFAULT_PAYMENT_TERMS_DAYS,
    DEPARTMENT_ACTIONS,
    EVENT_RECORD_TYPES,
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

EVENT_CLASSES: Mapping[str, type[Event]] = {cls.event_type: cls for cls in EVENT_RECORD_TYPES}

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


# --- the data reader: one per class, built from its dataclass at import --------------------

Converter = Callable[[Any, str], Any]

# By the field's type: the converter, and the type a decoded value has when it needs none
# (what every converter returns unchanged; the reader skips the call for it).
_CONVERTERS: Mapping[Any, tuple[Converter, type]] = {
    str: (_text, str),
    str | None: (_optional_text, str),
    Decimal: (_decimal, Decimal),
    int: (_integer, int),
    date: (_date, date),
    date | None: (_optional_date, date),
}


def _one_of(allowed: tuple[str, ...]) -> Converter:
    def convert(value: Any, path: str) -> str:
        text = _text(value, path)
        if text not in allowed:
            raise MalformedEventError(f"{path} must be one of {allowed}, got {text!r}")
        return text

    return convert


def _records_of(reader: _DataReader) -> Converter:
    """The converter of an array of nested records (a payroll's department lines)."""

    def convert(value: Any, path: str) -> tuple[Any, ...]:
        items = []
        for index, raw in enumerate(_sequence(value, path)):
            item_path = f"{path}[{index}]"
            items.append(reader.cls(**reader.read(_mapping(raw, item_path), item_path)))
        return tuple(items)

    return convert


class _DataReader:
    """Reads the data fields of one class from a decoded record, in the schema's order:
    (attribute, record name, type that needs no conversion, converter, default) per field."""

    def __init__(self, layout: Layout) -> None:
        self.cls = layout.cls
        self.fields: tuple[tuple[str, str, type | None, Converter, Any], ...] = tuple(
            (item.name, item.wire, *_converter_of(item), item.default) for item in layout.fields
        )

    def read(self, data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, wire, plain, convert, default in self.fields:
            if wire in data:
                value = data[wire]
                if type(value) is not plain:
                    value = convert(value, f"{prefix}.{wire}")
            elif default is REQUIRED:
                raise MalformedEventError(f"{prefix}.{wire} is missing")
            else:
                value = default
            values[name] = value
        return values


def _converter_of(item: DataField) -> tuple[type | None, Converter]:
    if item.nested is not None:
        return None, _records_of(_DataReader(item.nested))
    if item.role.one_of:
        return None, _one_of(item.role.one_of)
    if item.role.identifier:
        return str, _identifier
    convert, plain = _CONVERTERS[item.hint]
    return plain, convert


_DATA_READERS: Mapping[str, _DataReader] = {
    cls.event_type: _DataReader(cls.layout) for cls in EVENT_CLASSES.values()
}


def parse_event(record: Mapping[str, Any]) -> Event:
    """Build the event record from a decoded envelope.

    Raises ``UnknownEventTypeError`` for an event type outside the contract and
    ``MalformedEventError`` (naming the field) for a missing or mistyped field.
    """
    envelope = _mapping(record, "record")
    cls = _class_of(_required(envelope, "event_type", "record"))
    data = _mapping(_required(envelope, "data", "record"), "data")
    values = _DATA_READERS[cls.event_type].read(data, "data")
    return cls(
        event_id=_identifier(_required(envelope, "event_id", "record"), "event_id"),
        timestamp=_timestamp(_required(envelope, "timestamp", "record"), "timestamp"),
        source=_text(envelope.get("source", ""), "source"),
        **values,
    )
