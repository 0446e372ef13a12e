import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.entries import SourceRef
from ledger.events import to_json_record
from ledger.idempotency import (
    Decision,
    ProcessedRecord,
    check_compensation,
    decide,
    fingerprint,
)
from ledger.rejections import Reason
from ledger.rules import post, posting_to_json_dict

from . import fixtures

SOURCE = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 100)


def processed(record=None, by_id_offset=50):
    record = record or fixtures.sales_record()
    event = fixtures.event_of(record)
    source = fixtures.source_of(event, SOURCE.partition, SOURCE.offset)
    return ProcessedRecord(
        fingerprint=fingerprint(record),
        source=source,
        by_id_offset=by_id_offset,
        posting=posting_to_json_dict(post(event, source, fixtures.chart())),
    )


def test_a_new_event_is_posted():
    assert decide(None, fingerprint="f", source=SOURCE, by_id_offset=1) is Decision.POST


def test_the_same_by_id_record_after_a_crash_is_re_emitted():
    existing = processed()
    assert (
        decide(existing, fingerprint=existing.fingerprint, source=SOURCE, by_id_offset=50)
        is Decision.REEMIT
    )


def test_an_upstream_replay_of_the_same_source_record_does_nothing():
    existing = processed()
    assert (
        decide(existing, fingerprint=existing.fingerprint, source=SOURCE, by_id_offset=51)
        is Decision.REPLAY_COPY
    )


def test_a_producer_retry_with_the_same_content_is_a_duplicate():
    existing = processed()
    retry = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 230)
    assert (
        decide(existing, fingerprint=existing.fingerprint, source=retry, by_id_offset=51)
        is Decision.DUPLICATE
    )


def test_the_same_event_id_with_other_content_is_a_conflict():
    existing = processed()
    other = fingerprint(fixtures.sales_record(total_amount=Decimal("1.00")))
    retry = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 230)
    assert decide(existing, fingerprint=other, source=retry, by_id_offset=51) is (Decision.CONFLICT)


def test_the_fingerprint_survives_the_json_round_trip_and_sees_any_change():
    record = fixtures.sales_record()
    assert fingerprint(record) == fingerprint(json.loads(json.dumps(to_json_record(record))))
    changed = fixtures.sales_record()
    changed["timestamp"] = datetime(2024, 3, 15, 11, 0, 0, 1000, tzinfo=UTC)
    assert fingerprint(changed) != fingerprint(record)
    assert len(fingerprint(record)) == 64


def test_a_processed_record_round_trips_through_json():
    for existing in (processed(), processed().with_compensated_by(fixtures.COMPENSATION_ID)):
        encoded = json.loads(json.dumps(existing.to_json_dict()))
        assert ProcessedRecord.from_json_dict(encoded) == existing
    assert processed().compensated_by is None
    marked = processed().with_compensated_by(fixtures.COMPENSATION_ID)
    assert marked.compensated_by == fixtures.COMPENSATION_ID


def test_the_recorded_posting_is_kept_as_json_and_read_back_whole():
    existing = processed()
    assert existing.posting_value() == post(
        fixtures.event_of(fixtures.sales_record()), existing.source, fixtures.chart()
    )


def test_a_compensation_of_an_unknown_event_is_reported():
    rejection = check_compensation(None, compensation_event_id=fixtures.COMPENSATION_ID)
    assert rejection is not None
    assert rejection.reason is Reason.COMPENSATION_TARGET_UNKNOWN


def test_a_compensation_of_a_posted_event_may_reverse_it():
    assert check_compensation(processed(), compensation_event_id=fixtures.COMPENSATION_ID) is None


def test_a_compensation_of_a_set_command_is_not_reversible():
    rejection = check_compensation(
        processed(fixtures.budget_record()), compensation_event_id=fixtures.COMPENSATION_ID
    )
    assert rejection is not None
    assert rejection.reason is Reason.COMPENSATION_TARGET_NOT_REVERSIBLE
    assert "set command" in rejection.detail


@pytest.mark.parametrize(
    ("reversed_by", "words"),
    [
        ("aaaaaaaa-0000-4000-8000-000000000000", "compensation aaaaaaaa"),
        (fixtures.COMPENSATION_ID, "this same compensation"),
    ],
)
def test_an_event_is_reversed_at_most_once(reversed_by, words):
    target = processed().with_compensated_by(reversed_by)
    rejection = check_compensation(target, compensation_event_id=fixtures.COMPENSATION_ID)
    assert rejection is not None
    assert rejection.reason is Reason.COMPENSATION_TARGET_NOT_REVERSIBLE
    assert words in rejection.detail
