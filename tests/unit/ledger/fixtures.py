"""Sample records from spec/integration-patterns.md (as fastavro decodes them) and helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from demo.generator import specification_sample
from ledger.chart import ChartOfAccounts, default_chart_path, load_chart
from ledger.entries import SourceRef
from ledger.event_json import envelope
from ledger.events import Event, parse_event, topic_of

RECEIVED_AT = datetime(2024, 3, 25, 9, 0, tzinfo=UTC)

PAYROLL_ID = "0b6f2b1e-4d0a-4c55-9a57-1f0e6b9d2a01"
GOODS_ID = "1c7a3c2f-5e1b-4d66-8b68-2a1f7cae3b02"
SALES_ID = "2d8b4d30-6f2c-4e77-9c79-3b208dbf4c03"
PRODUCTION_ID = "3e9c5e41-7a3d-4f88-8d8a-4c319ec05d04"
TIME_ID = "4fad6f52-8b4e-4a99-9e9b-5d42afd16e05"
BUDGET_ID = "5abe7a63-9c5f-4baa-8fac-6e53b0e27f06"
CREDIT_LIMIT_ID = "6bcf8b74-ad6a-4cbb-90bd-7f64c1f38a07"
VENDOR_PAYMENT_ID = "7cd09c85-be7b-4dcc-a1ce-8a75d2049b08"
CUSTOMER_PAYMENT_ID = "8de1ad96-cf8c-4edd-b2df-9b86e315ac09"
COMPENSATION_ID = "9ef2bea7-d09d-4fee-83e0-ac97f426bd0a"


@cache
def chart() -> ChartOfAccounts:
    return load_chart(default_chart_path())


# The specification's samples (demo.generator) under the ids above; the commands are older
# here and a credit limit smaller, so an order can exceed it.
COMMANDS_AT = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def payroll_record(**data: Any) -> dict[str, Any]:
    # Not charged to one department: each test says where the run goes.
    return specification_sample(
        "hr.payroll.processed", PAYROLL_ID, **{"department_id": None, **data}
    )


def goods_record(**data: Any) -> dict[str, Any]:
    return specification_sample("scm.goods.received", GOODS_ID, **data)


def sales_record(**data: Any) -> dict[str, Any]:
    return specification_sample("crm.sales_order.completed", SALES_ID, **data)


def production_record(**data: Any) -> dict[str, Any]:
    return specification_sample("mfg.production_order.completed", PRODUCTION_ID, **data)


def time_record(**data: Any) -> dict[str, Any]:
    return specification_sample("pm.time.logged", TIME_ID, **data)


def budget_record(**data: Any) -> dict[str, Any]:
    record = specification_sample("fin.budget.set", BUDGET_ID, **data)
    return {**record, "timestamp": COMMANDS_AT, "source": "fin-api"}


def credit_limit_record(**data: Any) -> dict[str, Any]:
    limit = {"credit_limit": Decimal("30000.00"), **data}
    record = specification_sample("fin.credit_limit.set", CREDIT_LIMIT_ID, **limit)
    return {**record, "timestamp": COMMANDS_AT, "source": "fin-api"}


def vendor_payment_record(**data: Any) -> dict[str, Any]:
    return envelope(
        "fin.vendor_payment.made",
        VENDOR_PAYMENT_ID,
        datetime(2024, 3, 20, 9, 0, tzinfo=UTC),
        {
            "vendor_id": "VEN-001",
            "payment_id": "PAY-VEN-001",
            "amount": Decimal("15750.00"),
            "currency": "USD",
            "business_date": None,
            **data,
        },
        source="fin-api",
    )


def customer_payment_record(**data: Any) -> dict[str, Any]:
    return envelope(
        "fin.customer_payment.received",
        CUSTOMER_PAYMENT_ID,
        datetime(2024, 3, 22, 9, 0, tzinfo=UTC),
        {
            "customer_id": "CUS-001",
            "payment_id": "RCPT-001",
            "amount": Decimal("25000.00"),
            "currency": "USD",
            "business_date": None,
            **data,
        },
        source="fin-api",
    )


def compensation_record(target_event_id: str = SALES_ID, **data: Any) -> dict[str, Any]:
    return envelope(
        "fin.compensation.requested",
        COMPENSATION_ID,
        datetime(2024, 3, 16, 8, 0, tzinfo=UTC),
        {"target_event_id": target_event_id, "reason": "order cancelled", **data},
        source="fin-api",
    )


def every_record() -> list[dict[str, Any]]:
    """One record of each event type above, as the functions build it."""
    return [
        payroll_record(),
        goods_record(),
        sales_record(),
        production_record(),
        time_record(),
        budget_record(),
        credit_limit_record(),
        vendor_payment_record(),
        customer_payment_record(),
        compensation_record(),
    ]


def event_of(record: dict[str, Any]) -> Event:
    return parse_event(record)


def source_of(event: Event, partition: int = 0, offset: int = 0) -> SourceRef:
    return SourceRef(
        event_id=event.event_id,
        event_type=event.event_type,
        topic=topic_of(event.event_type),
        partition=partition,
        offset=offset,
    )
