from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from ledger import events
from ledger.events import (
    MalformedEventError,
    UnknownEventTypeError,
    event_types_on,
    parse_event,
    to_json_record,
    to_record,
)

from . import fixtures

ALL_RECORDS = fixtures.every_record()


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda record: record["event_type"])
def test_every_contract_record_parses_into_its_event_and_back(record):
    event = parse_event(record)
    assert event.event_type == record["event_type"]
    assert event.event_id == record["event_id"]
    assert to_record(event) == record


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda record: record["event_type"])
def test_the_json_form_of_a_record_parses_into_the_same_event(record):
    assert parse_event(to_json_record(record)) == parse_event(record)


def test_payroll_belongs_to_the_end_of_its_pay_period():
    event = parse_event(fixtures.payroll_record(pay_period_end=date(2024, 3, 31)))
    assert event.business_date == date(2024, 3, 31)


def test_a_stated_business_date_wins_over_the_timestamp():
    event = parse_event(fixtures.sales_record(business_date=date(2024, 2, 29)))
    assert event.business_date == date(2024, 2, 29)


def test_without_a_business_date_the_utc_date_of_the_timestamp_is_used():
    record = fixtures.sales_record()
    record["timestamp"] = datetime(2024, 3, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    event = parse_event(record)
    assert event.timestamp == datetime(2024, 4, 1, 1, 30, tzinfo=UTC)
    assert event.business_date == date(2024, 4, 1)


def test_a_command_without_a_business_date_field_uses_its_timestamp():
    assert parse_event(fixtures.budget_record()).business_date == date(2024, 1, 2)


def test_a_uuid_object_from_fastavro_becomes_its_canonical_text():
    record = fixtures.sales_record()
    record["event_id"] = UUID(fixtures.SALES_ID)
    assert parse_event(record).event_id == fixtures.SALES_ID


def test_goods_received_are_due_after_the_payment_terms():
    event = parse_event(fixtures.goods_record(payment_terms_days=45))
    assert isinstance(event, events.GoodsReceived)
    assert event.due_date == date(2024, 4, 29)


def test_amounts_name_every_amount_field_with_its_path():
    event = parse_event(
        fixtures.payroll_record(
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("125000.00")}
            ]
        )
    )
    assert [(amount.field, amount.value) for amount in event.amounts()] == [
        ("data.total_gross_pay", Decimal("125000.00")),
        ("data.department_lines[0].amount", Decimal("125000.00")),
    ]
    budget = parse_event(fixtures.budget_record())
    assert budget.amounts()[0].zero_allowed


def test_an_unknown_event_type_raises_its_own_error():
    record = fixtures.sales_record()
    record["event_type"] = "crm.sales_order.cancelled"
    with pytest.raises(UnknownEventTypeError, match=r"crm\.sales_order\.cancelled"):
        parse_event(record)


def test_a_float_amount_is_malformed_and_never_read():
    with pytest.raises(MalformedEventError, match=r"data\.total_amount must be a decimal"):
        parse_event(fixtures.sales_record(total_amount=25000.00))


def test_a_naive_timestamp_is_malformed():
    record = fixtures.sales_record()
    record["timestamp"] = datetime(2024, 3, 15, 11, 0)
    with pytest.raises(MalformedEventError, match="time zone"):
        parse_event(record)


def test_a_missing_field_is_named():
    record = fixtures.sales_record()
    del record["data"]["customer_id"]
    with pytest.raises(MalformedEventError, match=r"data\.customer_id is missing"):
        parse_event(record)


def test_defaults_of_the_schema_apply_when_a_field_is_absent():
    record = fixtures.goods_record()
    for name in ("currency", "payment_terms_days", "business_date"):
        del record["data"][name]
    event = parse_event(record)
    assert isinstance(event, events.GoodsReceived)
    assert (event.currency, event.payment_terms_days, event.stated_business_date) == (
        "USD",
        30,
        None,
    )


def test_each_topic_carries_its_own_event_types():
    assert event_types_on("hr.events") == ("hr.payroll.processed",)
    assert "fin.compensation.requested" in event_types_on("fin.commands")
    assert event_types_on("nowhere") == ()


def test_to_json_record_refuses_floats():
    with pytest.raises(TypeError):
        to_json_record({"amount": 1.5})
