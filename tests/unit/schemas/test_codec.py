"""Decoding to named rejections, in precedence order, and strict encoding."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errors import RegistryUnavailableError
from ledger.rejections import Reason, Rejection
from schemas.codec import Decoded, Decoder, Encoder, RecordInvalidError, nonconformity
from schemas.wire import frame
from tests.unit.schemas.fixtures import (
    EXTRA_OPTIONAL_FIELD,
    GOODS,
    ID_MISSING,
    ID_NOT_A_RECORD,
    ID_NOT_JSON,
    ID_SALES_AMOUNT_AS_STRING,
    ID_SALES_AMOUNT_PLAIN_BYTES,
    ID_SALES_WIDE_DECIMAL,
    ID_SALES_WITH_DOUBLE,
    ID_SALES_WITH_EXTRA_FIELD,
    ID_UNKNOWN_RECORD,
    PAYROLL,
    SALES,
    FakeRegistry,
    any_record,
    avro_body,
    catalog,
    decoder,
    encoder,
    entry,
    framed,
    id_of,
    sales_order,
    sales_schema_with,
)


def sales_body(**data_changes):
    return avro_body(entry(SALES).schema_json, sales_order(**data_changes))


def sales_value(**data_changes):
    return frame(id_of(SALES), sales_body(**data_changes))


def invalid_utf8_value():
    body = sales_body(customer_id="CUS-MARK")
    return frame(id_of(SALES), body.replace(b"CUS-MARK", b"CUS-\xff\xfe\xfd\xfc"))


def bad_union_branch_value():
    # business_date (null | date) is the last field; its branch index is the last byte.
    body = avro_body(entry(SALES).schema_json, sales_order())
    assert body[-1:] == b"\x00"
    return frame(id_of(SALES), body[:-1] + b"\x04")  # zigzag 4 = branch 2, which does not exist


def with_double(value):
    record = sales_order()
    record["data"]["discount_ratio"] = value
    return framed(
        ID_SALES_WITH_DOUBLE,
        sales_schema_with({"name": "discount_ratio", "type": "double", "doc": "share"}),
        record,
    )


def amount_in(schema_id, amount_type, value):
    record = sales_order()
    record["data"]["total_amount"] = value
    return framed(schema_id, sales_schema_with(amount_type=amount_type), record)


def decode_cases():
    valid = sales_value()
    return [
        ("a tombstone", "crm.events", None, Reason.WIRE_FORMAT_INVALID),
        ("an empty value", "crm.events", b"", Reason.WIRE_FORMAT_INVALID),
        ("a value shorter than the header", "crm.events", valid[:4], Reason.WIRE_FORMAT_INVALID),
        ("a bad magic byte", "crm.events", b"\x01" + valid[1:], Reason.WIRE_FORMAT_INVALID),
        ("plain JSON", "crm.events", b'{"event_type": "x"}', Reason.WIRE_FORMAT_INVALID),
        (
            "an id the registry does not know",
            "crm.events",
            frame(ID_MISSING, sales_body()),
            Reason.SCHEMA_UNKNOWN,
        ),
        (
            "an unknown id even with garbage after it",
            "crm.events",
            frame(ID_MISSING, b"\xff"),
            Reason.SCHEMA_UNKNOWN,
        ),
        ("a sales order on the HR topic", "hr.events", valid, Reason.SCHEMA_SUBJECT_MISMATCH),
        (
            "a record FIN does not know",
            "crm.events",
            frame(ID_UNKNOWN_RECORD, b""),
            Reason.SCHEMA_SUBJECT_MISMATCH,
        ),
        (
            "a writer schema that is not a record",
            "crm.events",
            frame(ID_NOT_A_RECORD, b"\x02a"),
            Reason.SCHEMA_SUBJECT_MISMATCH,
        ),
        (
            "a writer schema that is not Avro",
            "crm.events",
            frame(ID_NOT_JSON, b""),
            Reason.SCHEMA_SUBJECT_MISMATCH,
        ),
        (
            "any record on a topic FIN does not read",
            "elsewhere.events",
            valid,
            Reason.SCHEMA_SUBJECT_MISMATCH,
        ),
        ("an empty payload", "crm.events", frame(id_of(SALES), b""), Reason.PAYLOAD_UNDECODABLE),
        ("a truncated payload", "crm.events", valid[:-3], Reason.PAYLOAD_UNDECODABLE),
        (
            "trailing bytes after the record",
            "crm.events",
            valid + b"\x00",
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "invalid UTF-8 in a string",
            "crm.events",
            invalid_utf8_value(),
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "a union branch that does not exist",
            "crm.events",
            bad_union_branch_value(),
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "a NaN in a float of the writer schema",
            "crm.events",
            with_double(math.nan),
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "an infinity in a float of the writer schema",
            "crm.events",
            with_double(math.inf),
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "money declared as plain bytes by the writer",
            "crm.events",
            amount_in(ID_SALES_AMOUNT_PLAIN_BYTES, "bytes", b"\x01"),
            Reason.PAYLOAD_UNDECODABLE,
        ),
        (
            "a writer schema that does not resolve to ours",
            "crm.events",
            amount_in(ID_SALES_AMOUNT_AS_STRING, "string", "25000.00"),
            Reason.PAYLOAD_UNDECODABLE,
        ),
    ]


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [case[1:] for case in decode_cases()],
    ids=[case[0] for case in decode_cases()],
)
def test_a_bad_value_is_rejected_with_its_named_reason(topic, value, reason):
    outcome = decoder().decode(topic, value)

    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason == reason
    assert outcome.detail


def test_a_valid_value_decodes_into_the_reader_record():
    outcome = decoder().decode("crm.events", sales_value())

    assert isinstance(outcome, Decoded)
    assert outcome.record == sales_order()
    assert outcome.event_type == "crm.sales_order.completed"
    assert outcome.fullname == SALES
    assert outcome.schema_id == id_of(SALES)


def test_the_decoded_record_has_fin_types_and_keeps_uuids_as_text():
    outcome = decoder().decode("crm.events", sales_value())

    assert isinstance(outcome, Decoded)
    assert isinstance(outcome.record["event_id"], str)
    assert isinstance(outcome.record["data"]["total_amount"], Decimal)
    assert outcome.record["timestamp"].utcoffset() == dt.timedelta(0)


def test_a_malformed_event_id_is_left_for_validation_to_name():
    record = sales_order()
    record["event_id"] = "not-a-uuid"
    value = framed(id_of(SALES), entry(SALES).schema_json, record)

    outcome = decoder().decode("crm.events", value)

    assert isinstance(outcome, Decoded)
    assert outcome.record["event_id"] == "not-a-uuid"


def test_a_writer_with_an_added_optional_field_decodes_into_our_reader_schema():
    record = sales_order()
    record["data"]["sales_channel"] = "web"
    value = framed(ID_SALES_WITH_EXTRA_FIELD, sales_schema_with(EXTRA_OPTIONAL_FIELD), record)

    outcome = decoder().decode("crm.events", value)

    assert isinstance(outcome, Decoded)
    assert outcome.record == sales_order()
    assert outcome.schema_id == ID_SALES_WITH_EXTRA_FIELD


def test_a_writer_without_an_optional_field_gets_the_default():
    schema = sales_schema_with()
    data_fields = schema["fields"][4]["type"]["fields"]
    schema["fields"][4]["type"]["fields"] = [
        field for field in data_fields if field["name"] not in ("currency", "business_date")
    ]
    registry = FakeRegistry()
    registry.texts[500] = json.dumps(schema)
    record = sales_order()
    del record["data"]["currency"], record["data"]["business_date"]

    outcome = decoder(registry).decode("crm.events", framed(500, schema, record))

    assert isinstance(outcome, Decoded)
    assert outcome.record["data"]["currency"] == "USD"
    assert outcome.record["data"]["business_date"] is None


def test_digits_beyond_the_precision_are_not_refused_by_the_decoder():
    # fastavro reads them (rounded to the writer's precision); ledger.validation names them.
    record = sales_order(total_amount=Decimal("12345678901234567.89"))
    value = framed(id_of(SALES), sales_schema_with(precision=38), record)

    outcome = decoder().decode("crm.events", value)

    assert isinstance(outcome, Decoded)
    assert abs(outcome.record["data"]["total_amount"]) >= Decimal(10) ** 16


def test_a_writer_with_a_wider_decimal_keeps_every_digit():
    record = sales_order(total_amount=Decimal("12345678901234567.89"))
    value = framed(ID_SALES_WIDE_DECIMAL, sales_schema_with(precision=38), record)

    outcome = decoder().decode("crm.events", value)

    assert isinstance(outcome, Decoded)
    assert outcome.record["data"]["total_amount"] == Decimal("12345678901234567.89")


def test_an_unavailable_registry_propagates_and_is_never_a_rejection():
    registry = FakeRegistry()
    registry.down = True

    with pytest.raises(RegistryUnavailableError):
        decoder(registry).decode("crm.events", sales_value())


def test_the_registry_is_asked_once_per_schema_id():
    registry = FakeRegistry()
    decoding = decoder(registry)

    for _ in range(5):
        decoding.decode("crm.events", sales_value())
        decoding.decode("hr.events", sales_value())

    assert registry.calls == [id_of(SALES)]


def test_a_failed_fetch_is_retried_on_the_next_record():
    registry = FakeRegistry()
    decoding = decoder(registry)
    registry.down = True
    with pytest.raises(RegistryUnavailableError):
        decoding.decode("crm.events", sales_value())
    registry.down = False

    assert isinstance(decoding.decode("crm.events", sales_value()), Decoded)


def test_the_schema_cache_is_bounded_and_evicts_the_least_recently_used():
    registry = FakeRegistry()
    decoding = Decoder(catalog(), registry.fetch_schema, cache_size_max=2)
    sales, goods, payroll = id_of(SALES), id_of(GOODS), id_of(PAYROLL)

    for schema_id in (sales, goods, sales, payroll, sales, goods):
        decoding.decode("crm.events", frame(schema_id, b""))

    assert registry.calls == [sales, goods, payroll, goods]


def test_an_unknown_id_is_remembered_for_a_while_then_asked_again():
    registry = FakeRegistry()
    now = [0.0]
    decoding = Decoder(
        catalog(), registry.fetch_schema, unknown_id_ttl_seconds=30.0, clock=lambda: now[0]
    )
    value = frame(ID_MISSING, b"")

    decoding.decode("crm.events", value)
    now[0] = 29.0
    decoding.decode("crm.events", value)
    now[0] = 31.0
    outcome = decoding.decode("crm.events", value)

    assert registry.calls == [ID_MISSING, ID_MISSING]
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.SCHEMA_UNKNOWN


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_record())
def test_any_valid_record_survives_encode_then_decode_unchanged(entry_and_record):
    item, record = entry_and_record

    outcome = decoder().decode(item.topic, encoder().encode(record))

    assert isinstance(outcome, Decoded), outcome
    assert outcome.record == record
    assert outcome.fullname == item.fullname


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SALES, GOODS, PAYROLL]), st.binary(max_size=200))
def test_arbitrary_bytes_after_a_valid_header_never_raise(fullname, payload):
    outcome = decoder().decode(entry(fullname).topic, frame(id_of(fullname), payload))

    if isinstance(outcome, Rejection):
        assert outcome.reason == Reason.PAYLOAD_UNDECODABLE
    else:
        assert nonconformity(outcome.record, entry(fullname).parsed) is None


def test_the_encoder_writes_the_wire_format_with_the_subject_id():
    value = encoder().encode(sales_order())

    assert value[0] == 0
    assert int.from_bytes(value[1:5], "big") == id_of(SALES)


def test_the_encoder_asks_for_each_subject_id_once():
    asked: list[str] = []

    def schema_id_for(subject: str) -> int:
        asked.append(subject)
        return 7

    encoding = Encoder(catalog(), schema_id_for)
    for _ in range(3):
        encoding.encode(sales_order())

    assert asked == [entry(SALES).subject]


def test_the_encoder_fills_optional_fields_with_their_defaults():
    record = sales_order()
    del record["source"], record["data"]["currency"], record["data"]["business_date"]

    outcome = decoder().decode("crm.events", encoder().encode(record))

    assert isinstance(outcome, Decoded)
    assert outcome.record == sales_order() | {"source": ""}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total_amount": 25000.0}, "not a Decimal"),
        ({"total_amount": Decimal("1.234")}, "Scale"),
        ({"total_amount": Decimal("12345678901234567.89")}, "precision"),
        ({"total_amount": Decimal("NaN")}, "finite"),
        ({"customer_id": None}, "customer_id"),
        ({"business_date": dt.datetime(2024, 3, 15, tzinfo=dt.UTC)}, "business_date"),
        ({"total_ammount": Decimal("1.00")}, "unknown field"),
    ],
    ids=[
        "a float amount",
        "three decimal places",
        "more digits than the precision",
        "a NaN amount",
        "a null required field",
        "a datetime for a date",
        "a misspelt field",
    ],
)
def test_the_encoder_refuses_a_record_that_does_not_fit(change, message):
    record = sales_order(**change)

    with pytest.raises(RecordInvalidError, match=message):
        encoder().encode(record)


def test_the_encoder_refuses_a_malformed_uuid_and_a_naive_timestamp():
    bad_id = sales_order()
    bad_id["event_id"] = "not-a-uuid"
    naive = sales_order()
    naive["timestamp"] = dt.datetime(2024, 3, 15, 11, 0)

    with pytest.raises(RecordInvalidError, match="uuid"):
        encoder().encode(bad_id)
    with pytest.raises(RecordInvalidError, match="timezone"):
        encoder().encode(naive)


def test_the_encoder_refuses_an_unknown_event_type():
    record = sales_order()
    record["event_type"] = "crm.sales_order.lost"

    with pytest.raises(RecordInvalidError, match="event_type"):
        encoder().encode(record)


def test_journal_entries_and_alerts_are_encoded_by_their_identifying_field():
    alert = {
        "alert_id": "0b6f2b1e-4d0a-4c55-9a57-1f0e6b9d2a01",
        "alert_type": "budget_exceeded",
        "severity": "critical",
        "subject": "ENG-001",
        "detail": "SALARY 2024-Q1 is over budget",
    }

    value = encoder().encode(alert)
    outcome = decoder().decode("fin.alerts", value)

    assert isinstance(outcome, Decoded)
    assert outcome.fullname == "fin.alerts.Alert"
    assert outcome.event_type == "fin.alerts.Alert"
    assert outcome.record["limit"] is None
