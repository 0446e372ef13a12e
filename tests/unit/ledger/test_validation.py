from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ledger.events import Event
from ledger.rejections import Reason, Rejection
from ledger.validation import validate

from . import fixtures

RECEIVED_AT = fixtures.RECEIVED_AT


def run(record, topic=None):
    topic = topic or {
        "hr.payroll.processed": "hr.events",
        "scm.goods.received": "scm.events",
        "crm.sales_order.completed": "crm.events",
        "mfg.production_order.completed": "mfg.events",
        "pm.time.logged": "pm.events",
    }.get(record["event_type"], "fin.commands")
    return validate(record, topic=topic, received_at=RECEIVED_AT, chart=fixtures.chart())


def with_envelope(record, **envelope):
    return {**record, **envelope}


@pytest.mark.parametrize(
    "record",
    [
        *fixtures.every_record(),
        fixtures.budget_record(amount=Decimal("0.00")),
        fixtures.credit_limit_record(credit_limit=Decimal("0.00")),
        fixtures.payroll_record(department_id="ENG-001"),
        fixtures.payroll_record(
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("100000.00")},
                {"department_id": "OPS-001", "category": "TRAINING", "amount": Decimal("25000.00")},
            ]
        ),
    ],
    ids=lambda record: record["event_type"],
)
def test_the_specification_samples_are_valid(record):
    assert isinstance(run(record), Event)


CASES = [
    # (case id, record, topic or None, expected reason, words the detail must contain)
    (
        "data_missing",
        with_envelope(fixtures.sales_record(), data={}),
        None,
        Reason.PAYLOAD_UNDECODABLE,
        "data.sales_order_id is missing",
    ),
    (
        "unknown_type",
        with_envelope(fixtures.sales_record(), event_type="crm.lead.created"),
        None,
        Reason.EVENT_TYPE_UNKNOWN,
        "crm.lead.created",
    ),
    (
        "type_on_wrong_topic",
        fixtures.sales_record(),
        "hr.events",
        Reason.EVENT_TYPE_UNKNOWN,
        "does not belong on topic 'hr.events'",
    ),
    (
        "event_id_not_uuid",
        with_envelope(fixtures.sales_record(), event_id="SO-1"),
        None,
        Reason.EVENT_ID_INVALID,
        "event_id 'SO-1' is not a UUID",
    ),
    (
        "event_id_upper_case",
        with_envelope(fixtures.sales_record(), event_id=fixtures.SALES_ID.upper()),
        None,
        Reason.EVENT_ID_INVALID,
        "canonical",
    ),
    (
        "identifier_too_long",
        fixtures.sales_record(customer_id="CUS-" + "1" * 125),
        None,
        Reason.FIELD_TOO_LONG,
        "data.customer_id has 129 characters; identifiers have at most 128",
    ),
    (
        "source_too_long",
        with_envelope(fixtures.sales_record(), source="crm " + "x" * 997),
        None,
        Reason.FIELD_TOO_LONG,
        "source has 1001 characters; at most 1000",
    ),
    (
        "event_id_nil",
        with_envelope(fixtures.sales_record(), event_id="00000000-0000-0000-0000-000000000000"),
        None,
        Reason.EVENT_ID_INVALID,
        "nil UUID",
    ),
    (
        "target_event_id_not_uuid",
        fixtures.compensation_record(target_event_id="SO-2024-1"),
        None,
        Reason.EVENT_ID_INVALID,
        "data.target_event_id",
    ),
    (
        "zero_amount",
        fixtures.sales_record(total_amount=Decimal("0.00")),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.total_amount must be > 0, got 0.00",
    ),
    (
        "negative_amount",
        fixtures.goods_record(total_amount=Decimal("-15750.00")),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.total_amount",
    ),
    (
        "negative_budget",
        fixtures.budget_record(amount=Decimal("-1.00")),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.amount must be >= 0",
    ),
    (
        "zero_hours",
        fixtures.time_record(hours=Decimal("0.00")),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.hours",
    ),
    (
        "zero_quantity",
        fixtures.production_record(quantity_produced=0),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.quantity_produced",
    ),
    (
        "negative_line",
        fixtures.payroll_record(
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("-1.00")}
            ]
        ),
        None,
        Reason.AMOUNT_MUST_BE_POSITIVE,
        "data.department_lines[0].amount",
    ),
    (
        "third_decimal_place",
        fixtures.sales_record(total_amount=Decimal("25000.005")),
        None,
        Reason.AMOUNT_EXCEEDS_PRECISION,
        "data.total_amount 25000.005",
    ),
    (
        "seventeen_integer_digits",
        fixtures.sales_record(total_amount=Decimal("12345678901234567.00")),
        None,
        Reason.AMOUNT_EXCEEDS_PRECISION,
        "decimal(18, 2)",
    ),
    (
        "timestamp_before_2000",
        with_envelope(fixtures.sales_record(), timestamp=datetime(1999, 12, 31, tzinfo=UTC)),
        None,
        Reason.TIMESTAMP_OUT_OF_RANGE,
        "timestamp 1999-12-31",
    ),
    (
        "timestamp_in_the_future",
        with_envelope(fixtures.sales_record(), timestamp=datetime(2024, 3, 26, 9, 1, tzinfo=UTC)),
        None,
        Reason.TIMESTAMP_OUT_OF_RANGE,
        "timestamp 2024-03-26",
    ),
    (
        "business_date_years_ahead",
        fixtures.sales_record(business_date=date(2204, 3, 15)),
        None,
        Reason.TIMESTAMP_OUT_OF_RANGE,
        "data.business_date 2204-03-15",
    ),
    (
        "budget_period_bad",
        fixtures.budget_record(period="2024-Q5"),
        None,
        Reason.PERIOD_INVALID,
        "data.period",
    ),
    (
        "pay_period_reversed",
        fixtures.payroll_record(pay_period_start=date(2024, 3, 20)),
        None,
        Reason.PERIOD_INVALID,
        "data.pay_period_start 2024-03-20 is after",
    ),
    (
        "negative_payment_terms",
        fixtures.goods_record(payment_terms_days=-1),
        None,
        Reason.PERIOD_INVALID,
        "data.payment_terms_days",
    ),
    (
        "unknown_department",
        fixtures.payroll_record(department_id="ENG-999"),
        None,
        Reason.REFERENCE_UNKNOWN,
        "data.department_id 'ENG-999' is not a known department",
    ),
    (
        "unknown_category",
        fixtures.budget_record(category="BONUS"),
        None,
        Reason.REFERENCE_UNKNOWN,
        "data.category 'BONUS'",
    ),
    (
        "unknown_line_department",
        fixtures.payroll_record(
            department_lines=[
                {"department_id": "ENG-999", "category": "SALARY", "amount": Decimal("125000.00")}
            ]
        ),
        None,
        Reason.REFERENCE_UNKNOWN,
        "data.department_lines[0].department_id",
    ),
    (
        "foreign_currency",
        fixtures.sales_record(currency="EUR"),
        None,
        Reason.REFERENCE_UNKNOWN,
        "data.currency 'EUR' is not a known currency",
    ),
    (
        "empty_customer",
        fixtures.sales_record(customer_id=""),
        None,
        Reason.REFERENCE_UNKNOWN,
        "data.customer_id",
    ),
    (
        "lines_do_not_add_up",
        fixtures.payroll_record(
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("100000.00")}
            ]
        ),
        None,
        Reason.AMOUNT_LINES_MISMATCH,
        "sum to 100000.00, but data.total_gross_pay is 125000.00",
    ),
]


@pytest.mark.parametrize(
    ("record", "topic", "reason", "detail"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_fault_is_rejected_with_its_named_reason(record, topic, reason, detail):
    result = run(record, topic)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert detail in result.detail


def test_every_validation_reason_has_a_case():
    covered = {case[3] for case in CASES}
    validation_reasons = [
        reason
        for reason in Reason
        if Reason.PAYLOAD_UNDECODABLE.order <= reason.order <= Reason.AMOUNT_LINES_MISMATCH.order
    ]
    assert covered == set(validation_reasons)


def test_a_record_with_two_faults_gets_the_earlier_reason():
    record = with_envelope(
        fixtures.sales_record(total_amount=Decimal("-5.00"), customer_id=""), event_id="nope"
    )
    result = run(record)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.EVENT_ID_INVALID


def test_a_negative_amount_with_too_many_places_is_reported_as_not_positive():
    result = run(fixtures.sales_record(total_amount=Decimal("-1.001")))
    assert isinstance(result, Rejection)
    assert result.reason is Reason.AMOUNT_MUST_BE_POSITIVE


def test_an_unknown_reference_outranks_mismatched_lines():
    record = fixtures.payroll_record(
        department_lines=[
            {"department_id": "ENG-999", "category": "SALARY", "amount": Decimal("1.00")}
        ]
    )
    result = run(record)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.REFERENCE_UNKNOWN


def test_a_timestamp_a_day_ahead_of_reception_is_still_accepted():
    record = with_envelope(
        fixtures.sales_record(), timestamp=datetime(2024, 3, 26, 9, 0, tzinfo=UTC)
    )
    assert isinstance(run(record), Event)
