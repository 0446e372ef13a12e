"""Demo traffic: samples, the synthetic stream and the bad records, through decode and validate."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from demo.bad_records import bad_records
from demo.generator import DEPARTMENTS, specification_samples, synthetic_events
from ledger.chart import default_chart_path, load_chart
from ledger.rejections import Reason, Rejection
from ledger.validation import validate
from schemas.codec import Decoded
from tests.unit.schemas.fixtures import catalog, catalog_ids, decoder, encoder

RECEIVED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SYNTHETIC_COUNT = 3000


@pytest.fixture(scope="module")
def chart():
    return load_chart(default_chart_path())


@pytest.fixture(scope="module")
def synthetic():
    return list(synthetic_events(seed=11, count=SYNTHETIC_COUNT))


def outcome_of(topic, value, chart):
    decoded = decoder().decode(topic, value)
    if isinstance(decoded, Rejection):
        return decoded
    return validate(decoded.record, topic=topic, received_at=RECEIVED_AT, chart=chart)


def test_the_specification_samples_are_valid_events_with_their_commands(chart):
    samples = specification_samples()

    assert [r["event_type"] for r in samples[:2]] == ["fin.budget.set", "fin.credit_limit.set"]
    assert len({r["event_id"] for r in samples}) == len(samples) == 7
    for record in samples:
        topic = catalog().by_event_type[record["event_type"]].topic
        assert not isinstance(outcome_of(topic, encoder().encode(record), chart), Rejection)


def test_the_payroll_sample_is_charged_to_eng_001_against_a_q1_budget():
    by_type = {r["event_type"]: r for r in specification_samples()}

    assert by_type["hr.payroll.processed"]["data"]["department_id"] == "ENG-001"
    assert by_type["fin.budget.set"]["data"] == {
        "department_id": "ENG-001",
        "category": "SALARY",
        "period": "2024-Q1",
        "amount": Decimal("500000.00"),
    }
    assert by_type["fin.credit_limit.set"]["data"]["credit_limit"] == Decimal("100000.00")


def test_the_synthetic_stream_is_deterministic_for_a_seed(synthetic):
    again = list(synthetic_events(seed=11, count=SYNTHETIC_COUNT))
    other = list(itertools.islice(synthetic_events(seed=12), 50))

    assert again == synthetic
    assert other != synthetic[:50]


def test_every_synthetic_record_encodes_decodes_and_validates(synthetic, chart):
    rejected = []
    for record in synthetic:
        topic = catalog().by_event_type[record["event_type"]].topic
        value = encoder().encode(record)
        decoded = decoder().decode(topic, value)
        assert isinstance(decoded, Decoded)
        assert decoded.record == record
        outcome = validate(decoded.record, topic=topic, received_at=RECEIVED_AT, chart=chart)
        if isinstance(outcome, Rejection):
            rejected.append(outcome)

    assert rejected == []


def test_the_synthetic_mix_follows_the_weights(synthetic):
    counts = Counter(record["event_type"] for record in synthetic)
    source_total = sum(counts[t] for t in counts if not t.startswith("fin."))

    assert 0.20 < counts["crm.sales_order.completed"] / source_total < 0.40
    assert 0.20 < counts["pm.time.logged"] / source_total < 0.40
    assert 0.005 < counts["hr.payroll.processed"] / source_total < 0.04
    for command in (
        "fin.budget.set",
        "fin.credit_limit.set",
        "fin.customer_payment.received",
        "fin.vendor_payment.made",
    ):
        assert counts[command] > 0, command


def test_synthetic_keys_are_skewed_toward_a_few_customers(synthetic):
    customers = Counter(
        r["data"]["customer_id"]
        for r in synthetic
        if r["event_type"] == "crm.sales_order.completed"
    )
    top_ten = sum(count for _, count in customers.most_common(10))

    assert top_ten / sum(customers.values()) > 0.3
    assert len(customers) > 50


def test_synthetic_timestamps_increase_from_2024(synthetic):
    timestamps = [r["timestamp"] for r in synthetic]

    assert timestamps[0] >= dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert timestamps == sorted(timestamps)


def test_synthetic_money_is_two_place_decimal_under_a_billion(synthetic):
    amounts = [
        value for r in synthetic for name, value in r["data"].items() if isinstance(value, Decimal)
    ]

    assert all(value.as_tuple().exponent == -2 for value in amounts)
    assert all(Decimal(0) < value < Decimal(10) ** 9 for value in amounts)


def test_payments_never_exceed_what_earlier_events_left_open(synthetic):
    receivable: defaultdict[str, Decimal] = defaultdict(Decimal)
    payable: defaultdict[str, Decimal] = defaultdict(Decimal)
    for r in synthetic:
        data = r["data"]
        if r["event_type"] == "crm.sales_order.completed":
            receivable[data["customer_id"]] += data["total_amount"]
        elif r["event_type"] == "scm.goods.received":
            payable[data["vendor_id"]] += data["total_amount"]
        elif r["event_type"] == "fin.customer_payment.received":
            receivable[data["customer_id"]] -= data["amount"]
            assert receivable[data["customer_id"]] >= 0
        elif r["event_type"] == "fin.vendor_payment.made":
            payable[data["vendor_id"]] -= data["amount"]
            assert payable[data["vendor_id"]] >= 0


def test_budgets_cover_each_department_before_its_payroll(synthetic):
    budgeted = set()
    for r in synthetic:
        if r["event_type"] == "fin.budget.set":
            budgeted.add((r["data"]["department_id"], r["data"]["period"]))
        if r["event_type"] == "hr.payroll.processed":
            end = r["data"]["pay_period_end"]
            quarter = f"{end.year}-Q{(end.month - 1) // 3 + 1}"
            departments = [r["data"]["department_id"]] + [
                line["department_id"] for line in r["data"]["department_lines"]
            ]
            for department in filter(None, departments):
                assert department in DEPARTMENTS
                assert (department, quarter) in budgeted


def test_every_customer_has_a_credit_limit_before_its_first_order(synthetic):
    limited = set()
    for r in synthetic:
        if r["event_type"] == "fin.credit_limit.set":
            limited.add(r["data"]["customer_id"])
        if r["event_type"] == "crm.sales_order.completed":
            assert r["data"]["customer_id"] in limited


def test_compensations_target_earlier_events_once(synthetic):
    seen = set()
    targets = []
    for r in synthetic:
        if r["event_type"] == "fin.compensation.requested":
            assert r["data"]["target_event_id"] in seen
            targets.append(r["data"]["target_event_id"])
        seen.add(r["event_id"])

    assert len(targets) == len(set(targets))


DECODE_AND_VALIDATION_REASONS = {
    Reason.WIRE_FORMAT_INVALID,
    Reason.SCHEMA_UNKNOWN,
    Reason.SCHEMA_SUBJECT_MISMATCH,
    Reason.PAYLOAD_UNDECODABLE,
    Reason.EVENT_TYPE_UNKNOWN,
    Reason.EVENT_ID_INVALID,
    Reason.FIELD_TOO_LONG,
    Reason.AMOUNT_MUST_BE_POSITIVE,
    Reason.AMOUNT_EXCEEDS_PRECISION,
    Reason.TIMESTAMP_OUT_OF_RANGE,
    Reason.PERIOD_INVALID,
    Reason.REFERENCE_UNKNOWN,
    Reason.AMOUNT_LINES_MISMATCH,
}


def test_bad_records_cover_every_decoding_and_validation_reason():
    reasons = {Reason(bad.expected_reason) for bad in bad_records(3, catalog_ids().__getitem__)}

    assert reasons >= DECODE_AND_VALIDATION_REASONS


def test_each_bad_record_is_refused_for_exactly_the_reason_it_names(chart):
    for bad in bad_records(3, catalog_ids().__getitem__, catalog()):
        outcome = outcome_of(bad.topic, bad.value, chart)
        if bad.expected_reason == Reason.COMPENSATION_TARGET_UNKNOWN:
            # Only the posting agent knows which events exist; validation lets it through.
            assert not isinstance(outcome, Rejection)
            continue
        assert isinstance(outcome, Rejection), bad
        assert outcome.reason == bad.expected_reason, (bad, outcome)
