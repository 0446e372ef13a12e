"""Business validation of a decoded record: the checks are data, run in precedence order.

``CHECKS`` lists ``(reason, check)`` pairs in the order of ``Reason``; the first check that finds
a fault decides the rejection, so a record with several faults always gets the earliest reason
(a test asserts the list follows the enum). Each check is a plain function returning a detail
that names the field and value, or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.chart import ChartOfAccounts
from ledger.events import (
    BudgetSet,
    CompensationRequested,
    Event,
    GoodsReceived,
    MalformedEventError,
    PayrollProcessed,
    PeriodChanged,
    ProductionOrderCompleted,
    UnknownEventTypeError,
    event_types_on,
    parse_event,
)
from ledger.money import fits_precision
from ledger.periods import parse_period
from ledger.rejections import Reason, Rejection

EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_BUSINESS_DATE = date(2000, 1, 1)
# Producers' clocks drift and time zones put "today" up to a day ahead of UTC.
TIMESTAMP_FUTURE_TOLERANCE = timedelta(days=1)
# A stated business date may lie ahead (a pay period ending next week), but not by years:
# that is a typo that would open a far-future period.
BUSINESS_DATE_FUTURE_TOLERANCE = timedelta(days=366)
PAYMENT_TERMS_DAYS_MAX = 3650
# The contract's limits on text (README, "For upstream teams"): ids are keys of tables, topics
# and journal lines; free text (the envelope's source, a compensation's reason) is kept as is.
IDENTIFIER_LENGTH_MAX = 128
FREE_TEXT_LENGTH_MAX = 1000


@dataclass(frozen=True, init=False)
class Context:
    """What a check may consult besides the event itself."""

    topic: str
    received_at: datetime
    chart: ChartOfAccounts
    # False when the record was validated before (the posting stage validates the by-id copy
    # again to rebuild the event): a department retired in between must not turn an accepted
    # record into an error. Master data is checked once, at ingest.
    master_data: bool = True

    def __init__(
        self, topic: str, received_at: datetime, chart: ChartOfAccounts, master_data: bool = True
    ) -> None:
        # Written out (one per event): see "Constructors" in ledger/entries.py.
        fields = self.__dict__
        fields["topic"] = topic
        fields["received_at"] = received_at
        fields["chart"] = chart
        fields["master_data"] = master_data


Check = Callable[[Event, Context], str | None]


def check_event_type_on_topic(event: Event, context: Context) -> str | None:
    allowed = event_types_on(context.topic)
    if event.event_type not in allowed:
        return (
            f"event_type {event.event_type!r} does not belong on topic {context.topic!r} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    return None


# Canonical text of a UUID other than the nil one: what every valid id looks like.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def _uuid_fault(field: str, value: str) -> str | None:
    if type(value) is str and _CANONICAL_UUID.fullmatch(value) and value != _NIL_UUID:
        # UUID() would parse it, print it back unchanged and find it non-nil: no fault, and
        # no UUID object built for the one answer every valid event gets.
        return None
    try:
        parsed = UUID(value)
    except ValueError:
        return f"{field} {value!r} is not a UUID"
    # Canonical text only, so one event cannot hide under two spellings of its idempotency key.
    if str(parsed) != value:
        return f"{field} {value!r} is not in canonical lower-case UUID form"
    if parsed.int == 0:
        return f"{field} is the nil UUID, which a producer sends by mistake, never as an id"
    return None


def check_event_id(event: Event, context: Context) -> str | None:
    fault = _uuid_fault("event_id", event.event_id)
    if fault is None and isinstance(event, CompensationRequested):
        fault = _uuid_fault("data.target_event_id", event.target_event_id)
    return fault


def check_field_lengths(event: Event, context: Context) -> str | None:
    if len(event.source) > FREE_TEXT_LENGTH_MAX:
        return f"source has {len(event.source)} characters; at most {FREE_TEXT_LENGTH_MAX}"
    for path, text in event.free_texts():
        if len(text) > FREE_TEXT_LENGTH_MAX:
            return f"{path} has {len(text)} characters; at most {FREE_TEXT_LENGTH_MAX}"
    for reference in event.references():
        if len(reference.value) > IDENTIFIER_LENGTH_MAX:
            return (
                f"{reference.field} has {len(reference.value)} characters; identifiers have at "
                f"most {IDENTIFIER_LENGTH_MAX}"
            )
    return None


def check_amounts_positive(event: Event, context: Context) -> str | None:
    for amount in event.amounts():
        if amount.value.is_nan():
            return f"{amount.field} is not a number"
        if amount.value < 0 or (amount.value == 0 and not amount.zero_allowed):
            bound = ">= 0" if amount.zero_allowed else "> 0"
            return f"{amount.field} must be {bound}, got {amount.value}"
    if isinstance(event, ProductionOrderCompleted) and event.quantity_produced <= 0:
        return f"data.quantity_produced must be > 0, got {event.quantity_produced}"
    return None


def check_amounts_precision(event: Event, context: Context) -> str | None:
    for amount in event.amounts():
        if not fits_precision(amount.value):
            return f"{amount.field} {amount.value} does not fit decimal(18, 2)"
    return None


def check_timestamp(event: Event, context: Context) -> str | None:
    received_at = context.received_at
    latest = received_at + TIMESTAMP_FUTURE_TOLERANCE
    if not EARLIEST_TIMESTAMP <= event.timestamp <= latest:
        return (
            f"timestamp {event.timestamp.isoformat()} is outside "
            f"{EARLIEST_TIMESTAMP.isoformat()} .. {latest.isoformat()}"
        )
    latest_business_date = (received_at + BUSINESS_DATE_FUTURE_TOLERANCE).astimezone(UTC).date()
    for field, stated in event.stated_dates():
        if not EARLIEST_BUSINESS_DATE <= stated <= latest_business_date:
            return (
                f"{field} {stated.isoformat()} is outside "
                f"{EARLIEST_BUSINESS_DATE.isoformat()} .. {latest_business_date.isoformat()}"
            )
    return None


def check_period(event: Event, context: Context) -> str | None:
    if isinstance(event, PeriodChanged):
        # Months are closed; a quarter closes with its last month.
        try:
            kind = parse_period(event.period).kind
        except ValueError as exc:
            return f"data.period: {exc}"
        if kind != "month":
            return f"data.period {event.period!r}: close a quarter by closing its last month"
    if isinstance(event, BudgetSet):
        try:
            parse_period(event.period)
        except ValueError as exc:
            return f"data.period: {exc}"
    if isinstance(event, PayrollProcessed) and event.pay_period_start > event.pay_period_end:
        return (
            f"data.pay_period_start {event.pay_period_start.isoformat()} is after "
            f"data.pay_period_end {event.pay_period_end.isoformat()}"
        )
    if isinstance(event, GoodsReceived) and not (
        0 <= event.payment_terms_days <= PAYMENT_TERMS_DAYS_MAX
    ):
        # Negative terms would make the invoice due before it was received.
        return (
            f"data.payment_terms_days must be within 0 .. {PAYMENT_TERMS_DAYS_MAX}, "
            f"got {event.payment_terms_days}"
        )
    return None


def _is_known(chart: ChartOfAccounts, kind: str, value: str, *, master_data: bool = True) -> bool:
    # A chain of comparisons rather than a table of bound methods and a lambda built anew for
    # every event.
    if kind == "entity":
        # Other services own their entity ids; FIN only refuses an empty one, which would
        # collapse unrelated records onto one table key.
        return bool(value.strip())
    if kind == "currency":
        return chart.is_currency(value)
    if kind == "department":
        return chart.is_department(value) or not master_data
    if kind == "category":
        return chart.is_category(value)
    raise KeyError(kind)


def check_references(event: Event, context: Context) -> str | None:
    chart = context.chart
    for reference in event.references():
        if not _is_known(chart, reference.kind, reference.value, master_data=context.master_data):
            return f"{reference.field} {reference.value!r} is not a known {reference.kind}"
    return None


def check_department_lines_sum(event: Event, context: Context) -> str | None:
    if not isinstance(event, PayrollProcessed) or not event.department_lines:
        return None
    lines_total = sum((line.amount for line in event.department_lines), Decimal(0))
    if lines_total != event.total_gross_pay:
        return (
            f"data.department_lines sum to {lines_total}, "
            f"but data.total_gross_pay is {event.total_gross_pay}"
        )
    return None


CHECKS: tuple[tuple[Reason, Check], ...] = (
    (Reason.EVENT_TYPE_UNKNOWN, check_event_type_on_topic),
    (Reason.EVENT_ID_INVALID, check_event_id),
    (Reason.FIELD_TOO_LONG, check_field_lengths),
    (Reason.AMOUNT_MUST_BE_POSITIVE, check_amounts_positive),
    (Reason.AMOUNT_EXCEEDS_PRECISION, check_amounts_precision),
    (Reason.TIMESTAMP_OUT_OF_RANGE, check_timestamp),
    (Reason.PERIOD_INVALID, check_period),
    (Reason.REFERENCE_UNKNOWN, check_references),
    (Reason.AMOUNT_LINES_MISMATCH, check_department_lines_sum),
)


def validate(
    record: Mapping[str, Any],
    *,
    topic: str,
    received_at: datetime,
    chart: ChartOfAccounts,
    master_data: bool = True,
) -> Event | Rejection:
    """The event, or the rejection of highest precedence.

    ``topic`` is the contract topic name (``hr.events``), without any test prefix;
    ``received_at`` must be time-zone aware (the worker's clock, UTC).
    """
    assert received_at.tzinfo is not None, "received_at must be time-zone aware"
    try:
        event = parse_event(record)
    except UnknownEventTypeError as exc:
        return Rejection(Reason.EVENT_TYPE_UNKNOWN, str(exc))
    except MalformedEventError as exc:
        return Rejection(Reason.PAYLOAD_UNDECODABLE, str(exc))
    context = Context(topic=topic, received_at=received_at, chart=chart, master_data=master_data)
    for reason, check in CHECKS:
        detail = check(event, context)
        if detail is not None:
            return Rejection(reason, detail)
    return event
