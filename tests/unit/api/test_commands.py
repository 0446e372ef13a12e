"""Commands built from requests: validated like the ingest agent would, encoded, keyed."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from api.commands import (
    COMMAND_SOURCE,
    CommandRejectedError,
    IdempotencyKeyReusedError,
    IdempotencyMemory,
    PreparedCommand,
    budget_set_data,
    compensation_data,
    customer_payment_data,
    json_depth,
    natural_command_id,
    parse_json_object,
    prepare,
    request_digest,
    vendor_payment_data,
)
from api.http import BadParameterError
from ledger.contract import (
    BUDGET_SET,
    COMPENSATION_REQUESTED,
    CUSTOMER_PAYMENT_RECEIVED,
    VENDOR_PAYMENT_MADE,
)
from ledger.rejections import Reason
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder
from schemas.wire import unframe
from tests.unit.api.fixtures import SCHEMA_ID, chart, encoder

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
EVENT_ID = "5a3c1e6e-0b1f-4c55-9d7a-000000000099"


def prepared(event_type: str, data: dict[str, object]) -> PreparedCommand:
    return prepare(event_type, data, event_id=EVENT_ID, now=NOW, chart=chart(), encoder=encoder())


def decode(value: bytes) -> dict[str, object]:
    catalog = SchemaCatalog.load()
    entry = catalog.by_fullname["fin.commands.VendorPaymentMade"]
    decoder = Decoder(catalog, lambda schema_id: entry.schema_str)
    decoded = decoder.decode("fin.commands", value)
    assert isinstance(decoded, Decoded), decoded
    return decoded.record


def test_a_vendor_payment_becomes_a_wire_format_record_keyed_by_the_vendor() -> None:
    data = vendor_payment_data(
        "VEN-001", {"payment_id": "PAY-7", "amount": "5000.5", "business_date": "2026-05-30"}
    )

    command = prepared(VENDOR_PAYMENT_MADE, data)

    assert command.key == b"VEN-001"
    assert command.command_id == EVENT_ID
    assert unframe(command.value)[0] == SCHEMA_ID
    record = decode(command.value)
    assert record["event_id"] == EVENT_ID
    assert record["source"] == COMMAND_SOURCE
    assert record["timestamp"] == datetime(2026, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert record["data"] == {
        "vendor_id": "VEN-001",
        "payment_id": "PAY-7",
        "amount": Decimal("5000.50"),
        "currency": "USD",
        "business_date": date(2026, 5, 30),
    }


@pytest.mark.parametrize(
    ("event_type", "data", "reason"),
    [
        (
            VENDOR_PAYMENT_MADE,
            vendor_payment_data("VEN-001", {"payment_id": "P", "amount": "0"}),
            Reason.AMOUNT_MUST_BE_POSITIVE,
        ),
        (
            VENDOR_PAYMENT_MADE,
            vendor_payment_data("VEN-001", {"payment_id": "P", "amount": "-1.00"}),
            Reason.AMOUNT_MUST_BE_POSITIVE,
        ),
        (
            VENDOR_PAYMENT_MADE,
            vendor_payment_data("VEN-001", {"payment_id": "P", "amount": "1.001"}),
            Reason.AMOUNT_EXCEEDS_PRECISION,
        ),
        (
            VENDOR_PAYMENT_MADE,
            vendor_payment_data(
                "VEN-001", {"payment_id": "P", "amount": "1", "business_date": "1999-12-31"}
            ),
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            BUDGET_SET,
            budget_set_data("NO-SUCH-DEPT", "SALARY", "2026-Q2", {"amount": "1"}),
            Reason.REFERENCE_UNKNOWN,
        ),
        (
            BUDGET_SET,
            budget_set_data("ENG-001", "CATERING", "2026-Q2", {"amount": "1"}),
            Reason.REFERENCE_UNKNOWN,
        ),
        (
            COMPENSATION_REQUESTED,
            compensation_data({"target_event_id": "not-a-uuid", "reason": "typo"}),
            Reason.EVENT_ID_INVALID,
        ),
    ],
)
def test_an_invalid_command_is_rejected_with_the_ledgers_named_reason(
    event_type: str, data: dict[str, object], reason: Reason
) -> None:
    with pytest.raises(CommandRejectedError) as rejected:
        prepared(event_type, data)

    assert rejected.value.rejection.reason is reason


def test_a_zero_budget_is_a_valid_command() -> None:
    command = prepared(BUDGET_SET, budget_set_data("ENG-001", "SALARY", "2026-Q2", {"amount": "0"}))

    assert command.key == b"ENG-001"


def test_a_compensation_is_keyed_by_its_target_event() -> None:
    target = "5a3c1e6e-0b1f-4c55-9d7a-000000000003"

    command = prepared(
        COMPENSATION_REQUESTED, compensation_data({"target_event_id": target, "reason": "typo"})
    )

    assert command.key == target.encode()


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"payment_id": "P"}, "amount"),
        ({"amount": "1"}, "payment_id"),
        ({"payment_id": "P", "amount": "1", "ammount": "1"}, "ammount"),
        ({"payment_id": "P", "amount": 1}, "amount"),
        ({"payment_id": "P", "amount": "1", "business_date": 20240101}, "business_date"),
        ({"payment_id": " P", "amount": "1"}, "payment_id"),
    ],
)
def test_a_malformed_payment_body_is_refused_naming_the_field(
    body: dict[str, object], parameter: str
) -> None:
    with pytest.raises(BadParameterError) as refused:
        vendor_payment_data("VEN-001", body)

    assert refused.value.name == parameter


def test_json_numbers_with_a_fraction_are_read_as_decimals_never_floats() -> None:
    assert parse_json_object(b'{"amount": 0.1}') == {"amount": Decimal("0.1")}


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"[]", b'"text"', b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff"]
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(BadParameterError) as refused:
        parse_json_object(body)

    assert refused.value.name == "body"


def command(digest: str) -> PreparedCommand:
    return PreparedCommand(EVENT_ID, VENDOR_PAYMENT_MADE, digest, b"VEN-001", b"value")


def test_a_retry_with_the_same_key_and_request_gets_the_same_command_back() -> None:
    memory = IdempotencyMemory()
    first = command("digest-a")
    memory.remember(EVENT_ID, first)

    assert memory.recall(EVENT_ID, "digest-a") is first


def test_a_key_reused_for_another_request_is_refused() -> None:
    memory = IdempotencyMemory()
    memory.remember(EVENT_ID, command("digest-a"))

    with pytest.raises(IdempotencyKeyReusedError):
        memory.recall(EVENT_ID, "digest-b")


def test_remembered_commands_expire_after_their_time_to_live() -> None:
    now = [1000.0]
    memory = IdempotencyMemory(ttl_s=60.0, clock=lambda: now[0])
    memory.remember(EVENT_ID, command("digest-a"))

    now[0] += 61.0

    assert memory.recall(EVENT_ID, "digest-b") is None


def test_the_memory_keeps_only_the_newest_keys() -> None:
    memory = IdempotencyMemory(keys_max=2)
    for index in range(3):
        memory.remember(f"key-{index}", command(f"digest-{index}"))

    assert memory.recall("key-0", "digest-0") is None
    assert memory.recall("key-2", "digest-2") is not None


def test_the_request_digest_ignores_how_the_json_was_spelled() -> None:
    spelled_one_way = vendor_payment_data("VEN-001", {"payment_id": "P", "amount": "1.5"})
    spelled_another = vendor_payment_data("VEN-001", {"amount": "1.5", "payment_id": "P"})
    different = vendor_payment_data("VEN-001", {"amount": "1.6", "payment_id": "P"})

    assert request_digest(VENDOR_PAYMENT_MADE, spelled_one_way) == request_digest(
        VENDOR_PAYMENT_MADE, spelled_another
    )
    assert request_digest(VENDOR_PAYMENT_MADE, spelled_one_way) != request_digest(
        VENDOR_PAYMENT_MADE, different
    )


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": "]]]"}]}', 3),
        (b'{"k\\"[": 1}', 1),
        (b'["\\\\", ["x"]]', 2),
        (b"[" * 5000, 5000),
    ],
)
def test_json_depth_counts_arrays_and_objects_but_not_brackets_in_strings(
    body: bytes, depth: int
) -> None:
    assert json_depth(body) == depth


def test_json_depth_of_any_64_kib_body_takes_milliseconds() -> None:
    started = time.perf_counter()
    for hostile in (b'"' + b'\\"[' * 21_000, b"[]" * 32_000, b'"' * 64_000, b"[" * 64_000):
        json_depth(hostile)

    assert time.perf_counter() - started < 0.5


def test_a_body_nested_deeper_than_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(BadParameterError, match="deeper than 400") as refused:
        parse_json_object(b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}")

    assert refused.value.name == "body"
    assert parse_json_object(b'{"a":' + b"[" * 399 + b"]" * 399 + b"}")["a"] is not None


def test_a_payment_without_a_key_gets_the_event_id_of_its_natural_key() -> None:
    def vendor(party: str, payment_id: str, amount: str = "5.00") -> str | None:
        data = vendor_payment_data(party, {"payment_id": payment_id, "amount": amount})
        return natural_command_id(VENDOR_PAYMENT_MADE, data)

    # Pinned: the README tells upstream teams how to compute it; it must never change.
    assert vendor("VEN-001", "PAY-7") == "9bdbc703-3261-51c9-b8c2-8fd8af44e7bc"
    assert vendor("VEN-001", "PAY-7", amount="9.00") == vendor("VEN-001", "PAY-7")
    ids = {
        vendor("VEN-001", "PAY-7"),
        vendor("VEN-002", "PAY-7"),
        vendor("VEN-001", "PAY-8"),
        vendor("VEN-001:PAY", "7"),
        vendor("VEN-001", "PAY:7"),
        natural_command_id(
            CUSTOMER_PAYMENT_RECEIVED,
            customer_payment_data("VEN-001", {"payment_id": "PAY-7", "amount": "5.00"}),
        ),
    }
    assert len(ids) == 6
    assert natural_command_id(BUDGET_SET, {"department_id": "ENG-001"}) is None
    assert natural_command_id(COMPENSATION_REQUESTED, {"target_event_id": EVENT_ID}) is None
