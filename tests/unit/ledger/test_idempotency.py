import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger import idempotency
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
from ledger.rules import post, posting_to_json_dict, reverse

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


@pytest.mark.parametrize("refused", [False, True], ids=["posted", "refused"])
def test_a_compensation_of_a_compensation_is_not_reversible_whatever_became_of_it(refused):
    first_id = "bbbbbbbb-0000-4000-8000-000000000000"
    source = SourceRef(first_id, "fin.compensation.requested", "fin.commands", 0, 7)
    reversal = reverse(processed().posting_value(), first_id, source)
    target = replace(
        processed(),
        source=source,
        posting=posting_to_json_dict(reversal),
        rejected_reason="compensation_target_unknown" if refused else None,
    )
    rejection = check_compensation(target, compensation_event_id=fixtures.COMPENSATION_ID)
    assert rejection is not None
    assert rejection.reason is Reason.COMPENSATION_TARGET_NOT_REVERSIBLE
    assert f"event {first_id} is a compensation" in rejection.detail


# --- replays of copies already answered (found by the fault suite) -----------------------------


def _record(**changes: object) -> idempotency.ProcessedRecord:
    base = idempotency.ProcessedRecord(
        fingerprint="f1",
        source=SourceRef("e1", "pm.time.logged", "pm.events", 0, 10),
        by_id_offset=100,
        posting={},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_duplicate_seen_again_from_the_same_source_is_a_replay_not_a_second_duplicate() -> None:
    duplicate_source = SourceRef("e1", "pm.time.logged", "pm.events", 3, 77)
    first = idempotency.decide(
        _record(), fingerprint="f1", source=duplicate_source, by_id_offset=200
    )
    assert first is idempotency.Decision.DUPLICATE
    seen = _record().with_seen(duplicate_source, 200)
    again = idempotency.decide(seen, fingerprint="f1", source=duplicate_source, by_id_offset=300)
    assert again is idempotency.Decision.REPLAY_COPY


def test_the_very_by_id_record_that_answered_duplicate_is_answered_duplicate_again() -> None:
    # A crash after the processed row was written but before the commit: the stats row may have
    # lost its count with the crash, so the same by-id record must give the same outcome.
    duplicate_source = SourceRef("e1", "pm.time.logged", "pm.events", 3, 77)
    seen = _record().with_seen(duplicate_source, 200)
    again = idempotency.decide(seen, fingerprint="f1", source=duplicate_source, by_id_offset=200)
    assert again is idempotency.Decision.DUPLICATE


def test_a_conflicting_copy_seen_again_from_the_same_source_is_a_replay_copy() -> None:
    conflicting = SourceRef("e1", "pm.time.logged", "pm.events", 1, 5)
    seen = _record().with_seen(conflicting, 350)
    decision = idempotency.decide(seen, fingerprint="f2", source=conflicting, by_id_offset=400)
    assert decision is idempotency.Decision.REPLAY_COPY
    same_record = idempotency.decide(seen, fingerprint="f2", source=conflicting, by_id_offset=350)
    assert same_record is idempotency.Decision.CONFLICT


def test_a_refused_event_is_a_replay_copy_from_its_source_and_looked_at_afresh_from_another() -> (
    None
):
    refused = _record(rejected_reason="compensation_target_unknown")
    same = SourceRef("e1", "pm.time.logged", "pm.events", 0, 10)
    replayed_from_dlq = SourceRef("e1", "pm.time.logged", "pm.events", 2, 900)
    assert idempotency.decide(refused, fingerprint="f1", source=same, by_id_offset=101) is (
        idempotency.Decision.REPLAY_COPY
    )
    assert idempotency.decide(refused, fingerprint="f1", source=same, by_id_offset=100) is (
        idempotency.Decision.POST
    )
    assert (
        idempotency.decide(refused, fingerprint="f1", source=replayed_from_dlq, by_id_offset=102)
        is idempotency.Decision.POST
    )


def test_seen_sources_survive_the_json_round_trip() -> None:
    record = _record(rejected_reason="x").with_seen(SourceRef("e1", "t", "pm.events", 1, 2), 9)
    again = idempotency.ProcessedRecord.from_json_dict(record.to_json_dict())
    assert again == record
    assert again.seen_sources == (("pm.events", 1, 2, 9),)


def test_seen_sources_written_without_the_by_id_offset_stay_replay_copies() -> None:
    encoded = _record().to_json_dict() | {"seen_sources": [["pm.events", 3, 77]]}
    legacy = idempotency.ProcessedRecord.from_json_dict(encoded)
    source = SourceRef("e1", "pm.time.logged", "pm.events", 3, 77)
    decision = idempotency.decide(legacy, fingerprint="f1", source=source, by_id_offset=200)
    assert decision is idempotency.Decision.REPLAY_COPY
