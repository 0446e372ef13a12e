import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.entries import SourceRef
from ledger.events import to_json_record
from ledger.idempotency import (
    CompensationDecision,
    CompensationMark,
    Decision,
    ProcessedRecord,
    decide,
    decide_compensation,
    fingerprint,
)
from ledger.rules import post

from . import fixtures

SOURCE = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 100)
COMPENSATION_SOURCE = SourceRef(
    fixtures.COMPENSATION_ID, "fin.compensation.requested", "fin.commands", 0, 7
)


def processed(record=None, by_id_offset=50, compensation=None):
    record = record or fixtures.sales_record()
    event = fixtures.event_of(record)
    source = fixtures.source_of(event, SOURCE.partition, SOURCE.offset)
    return ProcessedRecord(
        fingerprint=fingerprint(record),
        source=source,
        by_id_offset=by_id_offset,
        posting=post(event, source, fixtures.chart()),
        compensation=compensation,
    )


def test_a_new_event_is_posted():
    assert decide(None, fingerprint="f", source=SOURCE, by_id_offset=1) is Decision.POST


def test_the_same_by_id_record_after_a_crash_is_re_emitted():
    existing = processed()
    assert decide(existing, fingerprint=existing.fingerprint, source=SOURCE,
                  by_id_offset=50) is Decision.REEMIT


def test_an_upstream_replay_of_the_same_source_record_does_nothing():
    existing = processed()
    assert decide(existing, fingerprint=existing.fingerprint, source=SOURCE,
                  by_id_offset=51) is Decision.REPLAY_COPY


def test_a_producer_retry_with_the_same_content_is_a_duplicate():
    existing = processed()
    retry = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 230)
    assert decide(existing, fingerprint=existing.fingerprint, source=retry,
                  by_id_offset=51) is Decision.DUPLICATE


def test_the_same_event_id_with_other_content_is_a_conflict():
    existing = processed()
    other = fingerprint(fixtures.sales_record(total_amount=Decimal("1.00")))
    retry = SourceRef(fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 1, 230)
    assert decide(existing, fingerprint=other, source=retry, by_id_offset=51) is (
        Decision.CONFLICT
    )


def test_the_fingerprint_survives_the_json_round_trip_and_sees_any_change():
    record = fixtures.sales_record()
    assert fingerprint(record) == fingerprint(json.loads(json.dumps(to_json_record(record))))
    changed = fixtures.sales_record()
    changed["timestamp"] = datetime(2024, 3, 15, 11, 0, 0, 1000, tzinfo=UTC)
    assert fingerprint(changed) != fingerprint(record)
    assert len(fingerprint(record)) == 64


def test_a_processed_record_round_trips_through_json():
    mark = CompensationMark(fixtures.COMPENSATION_ID, "abc", COMPENSATION_SOURCE, 60)
    for existing in (processed(), processed(compensation=mark)):
        encoded = json.loads(json.dumps(existing.to_json_dict()))
        assert ProcessedRecord.from_json_dict(encoded) == existing
    assert processed(compensation=mark).compensated_by == fixtures.COMPENSATION_ID
    assert processed().compensated_by is None


def decide_comp(target, *, event_id=fixtures.COMPENSATION_ID, fingerprint_="fp",
                source=COMPENSATION_SOURCE, by_id_offset=60):
    return decide_compensation(target, compensation_event_id=event_id, fingerprint=fingerprint_,
                               source=source, by_id_offset=by_id_offset)


def test_a_compensation_of_an_unknown_event_is_reported():
    assert decide_comp(None) is CompensationDecision.TARGET_UNKNOWN


def test_a_compensation_of_a_posted_event_reverses_it():
    assert decide_comp(processed()) is CompensationDecision.REVERSE


def test_a_compensation_of_a_set_command_is_not_reversible():
    assert decide_comp(processed(fixtures.budget_record())) is (
        CompensationDecision.NOT_REVERSIBLE
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"by_id_offset": 60}, CompensationDecision.REEMIT),
        ({"by_id_offset": 61}, CompensationDecision.REPLAY_COPY),
        ({"by_id_offset": 61, "source": SourceRef(fixtures.COMPENSATION_ID,
          "fin.compensation.requested", "fin.commands", 0, 8)}, CompensationDecision.DUPLICATE),
        ({"by_id_offset": 61, "fingerprint_": "other", "source": SourceRef(
            fixtures.COMPENSATION_ID, "fin.compensation.requested", "fin.commands", 0, 8)},
         CompensationDecision.CONFLICT),
        ({"by_id_offset": 61, "event_id": "aaaaaaaa-0000-4000-8000-000000000000",
          "source": SourceRef("aaaaaaaa-0000-4000-8000-000000000000",
                              "fin.compensation.requested", "fin.commands", 0, 8)},
         CompensationDecision.NOT_REVERSIBLE),
    ],
)
def test_a_compensated_event_judges_further_compensations_by_its_mark(changes, expected):
    mark = CompensationMark(fixtures.COMPENSATION_ID, "fp", COMPENSATION_SOURCE, 60)
    assert decide_comp(processed(compensation=mark), **changes) is expected
