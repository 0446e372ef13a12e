"""JSON events as the specification writes them, converted to Avro records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from demo.generator import SAMPLE_EVENT_IDS, specification_samples
from schemas.codec import Decoded
from schemas.json_events import JsonEventError, key_for, parse_json_event, record_from_json
from tests.unit.schemas.fixtures import catalog, decoder, encoder

# The five sample events of spec/integration-patterns.md, verbatim but for the "uuid" placeholder.
SPECIFICATION_JSON = {
    "hr.payroll.processed": """{
  "event_type": "hr.payroll.processed",
  "event_id": "uuid",
  "timestamp": "2024-03-15T10:00:00Z",
  "source": "hr-service",
  "data": {
    "payroll_id": "PAY-2024-003",
    "pay_period_start": "2024-03-01",
    "pay_period_end": "2024-03-15",
    "total_gross_pay": 125000.00
  }
}""",
    "scm.goods.received": """{
  "event_type": "scm.goods.received",
  "event_id": "uuid",
  "timestamp": "2024-03-15T14:30:00Z",
  "data": {
    "purchase_order_id": "PO-2024-001234",
    "vendor_id": "VEN-001",
    "total_amount": 15750.00
  }
}""",
    "crm.sales_order.completed": """{
  "event_type": "crm.sales_order.completed",
  "event_id": "uuid",
  "timestamp": "2024-03-15T11:00:00Z",
  "data": {
    "sales_order_id": "SO-2024-001234",
    "customer_id": "CUS-001",
    "total_amount": 25000.00
  }
}""",
    "mfg.production_order.completed": """{
  "event_type": "mfg.production_order.completed",
  "event_id": "uuid",
  "timestamp": "2024-03-15T18:00:00Z",
  "data": {
    "production_order_id": "PO-MFG-2024-001",
    "product_code": "WIDGET-A",
    "quantity_produced": 1000,
    "total_cost": 45000.00
  }
}""",
    "pm.time.logged": """{
  "event_type": "pm.time.logged",
  "event_id": "uuid",
  "timestamp": "2024-03-15T17:00:00Z",
  "data": {
    "project_id": "PROJ-CLIENT-A-001",
    "employee_id": "EMP-001",
    "hours": 8.0,
    "billable_amount": 1125.00
  }
}""",
}


def spec_event(event_type):
    text = SPECIFICATION_JSON[event_type].replace('"uuid"', f'"{SAMPLE_EVENT_IDS[event_type]}"')
    return parse_json_event(text)


def sample(event_type):
    return next(r for r in specification_samples() if r["event_type"] == event_type)


@pytest.mark.parametrize("event_type", sorted(SPECIFICATION_JSON))
def test_a_specification_sample_converts_to_the_demo_record(event_type):
    record = record_from_json(spec_event(event_type), catalog())

    expected = sample(event_type)
    if event_type == "hr.payroll.processed":
        # The demo charges the run to ENG-001; the specification names no department.
        expected["data"]["department_id"] = None
    assert record == expected


@pytest.mark.parametrize("event_type", sorted(SPECIFICATION_JSON))
def test_a_converted_sample_survives_encode_and_decode(event_type):
    record = record_from_json(spec_event(event_type), catalog())
    topic = catalog().by_event_type[event_type].topic

    outcome = decoder().decode(topic, encoder().encode(record))

    assert isinstance(outcome, Decoded)
    assert outcome.record == record


def test_json_numbers_become_exact_decimals_never_floats():
    event = parse_json_event('{"a": 0.1, "b": 125000.00, "c": 1e2, "d": 7}')

    assert event == {"a": Decimal("0.1"), "b": Decimal("125000.00"), "c": Decimal("1E+2"), "d": 7}
    assert not any(isinstance(value, float) for value in event.values())


def test_hours_written_with_one_place_are_kept_exactly_with_two():
    record = record_from_json(spec_event("pm.time.logged"), catalog())

    assert record["data"]["hours"] == Decimal("8.00")
    assert str(record["data"]["hours"]) == "8.00"


def test_amounts_may_be_written_as_text():
    event = spec_event("crm.sales_order.completed")
    event["data"]["total_amount"] = "25000.5"

    assert record_from_json(event, catalog())["data"]["total_amount"] == Decimal("25000.50")


def test_the_timestamp_is_read_as_utc_with_its_offset_applied():
    event = spec_event("crm.sales_order.completed")
    event["timestamp"] = "2024-03-15T12:00:00.123456+01:00"

    record = record_from_json(event, catalog())

    assert record["timestamp"] == dt.datetime(2024, 3, 15, 11, 0, 0, 123000, tzinfo=dt.UTC)


def test_key_for_names_the_business_entity():
    assert key_for(sample("hr.payroll.processed")) == "PAY-2024-003"
    assert key_for(sample("pm.time.logged")) == "PROJ-CLIENT-A-001"
    assert key_for(sample("fin.credit_limit.set")) == "CUS-001"


def mutated(event_type, change):
    event = spec_event(event_type)
    change(event)
    return event


@pytest.mark.parametrize(
    ("event", "complaint"),
    [
        (mutated("crm.sales_order.completed", lambda e: e.pop("event_id")), "event_id: missing"),
        (
            mutated("crm.sales_order.completed", lambda e: e.update(event_type="crm.lost")),
            "event_type",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e["data"].pop("customer_id")),
            "data.customer_id: missing",
        ),
        (
            mutated(
                "crm.sales_order.completed",
                lambda e: e["data"].update(total_amount=Decimal("1.234")),
            ),
            "more than 2 decimal places",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e["data"].update(total_amount="abc")),
            "not a number",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e["data"].update(total_amount=True)),
            "expected a number",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e["data"].update(total_amount="1E+40")),
            "too many digits",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e.update(timestamp="2024-03-15T11:00")),
            "no time zone",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e.update(timestamp="yesterday")),
            "not an ISO-8601",
        ),
        (
            mutated(
                "hr.payroll.processed", lambda e: e["data"].update(pay_period_end="15/03/2024")
            ),
            "data.pay_period_end",
        ),
        (
            mutated(
                "mfg.production_order.completed",
                lambda e: e["data"].update(quantity_produced=Decimal("10.5")),
            ),
            "whole number",
        ),
        (
            mutated("crm.sales_order.completed", lambda e: e["data"].update(total_ammount=1)),
            "unknown field",
        ),
        ([], "JSON object"),
    ],
    ids=[
        "no event id",
        "an unknown event type",
        "a missing required field",
        "three decimal places",
        "text that is not a number",
        "a boolean amount",
        "more digits than a decimal holds",
        "a timestamp without a zone",
        "a timestamp that is not ISO-8601",
        "a date in another format",
        "a fractional quantity",
        "a misspelt field",
        "not an object",
    ],
)
def test_a_bad_json_event_is_refused_naming_the_field(event, complaint):
    with pytest.raises(JsonEventError, match=complaint):
        record_from_json(event, catalog())


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', "{"])
def test_nan_infinity_and_broken_json_are_refused(text):
    with pytest.raises(JsonEventError):
        parse_json_event(text)
