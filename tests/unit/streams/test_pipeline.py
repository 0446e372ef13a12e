"""The per-record stages of the worker, without Kafka: what each record leads to."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from api.commands import natural_command_id, prepare, vendor_payment_data
from demo.generator import specification_sample
from ledger.chart import default_chart_path, load_chart
from ledger.contract import VENDOR_PAYMENT_MADE
from settings import BY_EVENT_ID_TOPIC, DLQ_TOPIC, LEDGER_TOPIC
from streams.deadletter import SourcePosition, header_map
from streams.effects import Send, StageResult
from streams.pipeline import POSTING_COUNTERS, Ingest, count_ingest, count_posting
from streams.posting import Posting
from streams.stage_records import (
    H_PARK_ATTEMPT,
    H_STEP,
    PARK_ATTEMPTS_MAX,
    STEP_CLAIM,
    STEP_RELEASE,
    ByIdRecord,
)
from streams.validated import ValidatedEvents
from tests.unit.schemas.fixtures import FakeRegistry, decoder, encoder

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
CHART = load_chart(default_chart_path())


def time_logged(event_id: str) -> dict[str, Any]:
    record = specification_sample("pm.time.logged", event_id)
    record["source"] = "pm-service"
    return record


def compensation(event_id: str, target: str) -> dict[str, Any]:
    return {
        "event_type": "fin.compensation.requested",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 16, 9, 0, tzinfo=UTC),
        "source": "fin-api",
        "data": {"target_event_id": target, "reason": "logged twice"},
    }


def vendor_payment(event_id: str, amount: str = "400.00") -> dict[str, Any]:
    return {
        "event_type": "fin.vendor_payment.made",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 16, 10, 0, tzinfo=UTC),
        "source": "fin-api",
        "data": {
            "vendor_id": "VEN-001",
            "payment_id": "BANK-REF-1",
            "amount": Decimal(amount),
            "currency": "USD",
            "business_date": None,
        },
    }


Layout = Callable[[bytes], int]


def one_partition(key: bytes) -> int:
    return 0


def apart() -> Layout:
    """Every distinct by-id key on a partition of its own."""
    assigned: dict[bytes, int] = {}
    return lambda key: assigned.setdefault(key, len(assigned))


def together(keys: set[str]) -> Layout:
    """``keys`` on partition 0, every other key on a partition of its own."""
    others = apart()
    return lambda key: 0 if key.decode() in keys else 1 + others(key)


class Harness:
    """Ingest → by-id → posting with in-memory processed tables and outcome counts per by-id
    partition; ``layout`` says which partition a by-id key lands on. ``hand_over``: the posting
    stage takes what the ingest stage read (streams/validated.py), as in the batched runtime;
    every test here runs both ways (``both_ways``)."""

    hand_over = False

    def __init__(self, layout: Layout = one_partition) -> None:
        registry = FakeRegistry()
        validated = ValidatedEvents() if self.hand_over else None
        self.ingest = Ingest(decoder(registry), CHART, validated=validated)
        self.posting = Posting(decoder(registry), encoder(), CHART, validated=validated)
        self.decoder = decoder(registry)
        self.encoder = encoder()
        self.layout = layout
        self.processed: dict[int, dict[str, bytes]] = defaultdict(dict)
        self.stats: dict[int, bytes | None] = defaultdict(lambda: None)
        self.offsets: dict[int, int] = defaultdict(int)
        self.source_offset = 0
        self.inputs = 0
        self.ledger: list[bytes] = []  # every journal entry sent, copies included

    def by_id(
        self, record: dict[str, Any], topic: str, *, source_offset: int | None = None
    ) -> ByIdRecord:
        return self.by_id_bytes(self.encoder.encode(record), topic, source_offset=source_offset)

    def by_id_bytes(
        self, value: bytes, topic: str, *, source_offset: int | None = None
    ) -> ByIdRecord:
        """Ingest a source record; ``source_offset`` re-ingests one read before (a replay)."""
        if source_offset is None:
            self.source_offset += 1
            self.inputs += 1
            source_offset = self.source_offset
        position = SourcePosition(topic, 0, source_offset, int(NOW.timestamp() * 1000))
        result = self.ingest.process(topic, b"key", value, position, NOW)
        assert result.outcome == "forwarded", result
        (send,) = result.sends
        return self.next_by_id(send)

    def next_by_id(self, send: Send) -> ByIdRecord:
        assert send.topic == BY_EVENT_ID_TOPIC and send.key is not None and send.value is not None
        partition = self.layout(send.key)
        self.offsets[partition] += 1
        return ByIdRecord(
            send.key, send.value, dict(send.headers), partition, self.offsets[partition]
        )

    def post(self, record: ByIdRecord) -> StageResult:
        processed = self.processed[record.partition]
        result = self.posting.process(record, processed.get, NOW)
        for table, key, value in result.table_writes:
            assert table == "processed"
            processed[key] = value
        counted = count_posting(self.stats[record.partition], record.offset, result.outcome)
        if counted is not None:
            self.stats[record.partition] = counted
        self.ledger.extend(send.value for send in result.sends if send.topic == LEDGER_TOPIC)  # type: ignore[misc]
        return result

    def run(self, record: ByIdRecord) -> list[StageResult]:
        """Post ``record`` and every step record it leads to (a compensation's claim, release),
        in order; a parked record is left where it is."""
        results = []
        pending = [record]
        while pending:
            result = self.post(pending.pop(0))
            results.append(result)
            pending.extend(
                self.next_by_id(send)
                for send in result.sends
                if send.topic == BY_EVENT_ID_TOPIC and H_STEP in dict(send.headers)
            )
        return results

    def entries(self) -> dict[str, dict[str, Any]]:
        """The journal entries sent, by entry id; copies of one entry must be identical."""
        found: dict[str, dict[str, Any]] = {}
        for value in self.ledger:
            decoded = self.decoder.decode(LEDGER_TOPIC, value)
            entry = decoded.record  # type: ignore[union-attr]
            first = found.setdefault(entry["entry_id"], entry)
            assert first == entry, f"two different entries share the id {entry['entry_id']}"
        return found

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for row in self.stats.values():
            for name, value in orjson.loads(row or b"{}").items():
                if name in POSTING_COUNTERS.values():
                    totals[name] += value
        return dict(totals)

    def every_input_has_one_outcome(self) -> bool:
        return sum(self.counts().values()) == self.inputs

    def row(self, event_id: str) -> dict[str, Any]:
        """processed[event_id] wherever it lives (one partition holds it)."""
        rows = [rows[event_id] for rows in self.processed.values() if event_id in rows]
        assert len(rows) == 1, rows
        found: dict[str, Any] = orjson.loads(rows[0])
        return found


@pytest.fixture(autouse=True, params=["decoded-again", "handed-over"])
def both_ways(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Harness, "hand_over", request.param == "handed-over")


def outcomes(results: list[StageResult]) -> list[str]:
    return [r.outcome if r.reason is None else f"{r.outcome}:{r.reason}" for r in results]


def test_a_valid_event_is_posted_once_and_its_exact_replay_re_emits_the_same_records() -> None:
    harness = Harness()
    record = harness.by_id(time_logged(str(uuid.uuid4())), "pm.events")
    first = harness.post(record)
    again = harness.post(record)  # the same by-id offset: a crash before the commit
    assert first.outcome == "posted" and again.outcome == "reemit"
    assert first.sends[0].topic == LEDGER_TOPIC
    assert first.sends == again.sends


def test_the_same_event_sent_twice_is_a_duplicate_and_sends_nothing() -> None:
    harness = Harness()
    event = time_logged(str(uuid.uuid4()))
    harness.post(harness.by_id(event, "pm.events"))
    duplicate = harness.post(harness.by_id(event, "pm.events"))
    assert duplicate.outcome == "duplicate"
    assert duplicate.sends == ()


def test_the_same_event_id_with_another_payload_is_dead_lettered_as_a_conflict() -> None:
    harness = Harness()
    event = time_logged(str(uuid.uuid4()))
    harness.post(harness.by_id(event, "pm.events"))
    changed = {**event, "data": {**event["data"], "hours": Decimal("9.00")}}
    result = harness.post(harness.by_id(changed, "pm.events"))
    assert result.outcome == "rejected" and result.reason == "event_id_conflict"
    (send,) = result.sends
    assert send.topic == DLQ_TOPIC
    assert header_map(list(send.headers))["fin.reason"] == "event_id_conflict"


def test_a_compensation_ahead_of_its_target_is_parked_then_reverses_it_once_it_is_posted() -> None:
    harness = Harness()
    target_id = str(uuid.uuid4())
    early = harness.post(harness.by_id(compensation(str(uuid.uuid4()), target_id), "fin.commands"))
    assert early.outcome == "parked"
    (parked,) = early.sends
    assert dict(parked.headers)[H_PARK_ATTEMPT] == b"1"

    harness.run(harness.by_id(time_logged(target_id), "pm.events"))
    reversal = harness.run(harness.next_by_id(parked))

    assert outcomes(reversal) == ["forwarded", "posted"]
    (original, reversing) = harness.entries().values()
    assert reversing["reverses_entry_id"] == original["entry_id"]
    assert [(line["debit"], line["credit"]) for line in reversing["lines"]] == [
        (line["credit"], line["debit"]) for line in original["lines"]
    ]
    assert harness.every_input_has_one_outcome()


def test_a_compensation_whose_target_never_comes_is_rejected_after_the_parking_limit() -> None:
    harness = Harness()
    record = harness.by_id(compensation(str(uuid.uuid4()), str(uuid.uuid4())), "fin.commands")
    for _ in range(PARK_ATTEMPTS_MAX):
        result = harness.post(record)
        assert result.outcome == "parked"
        record = harness.next_by_id(result.sends[0])
    final = harness.post(record)
    assert final.outcome == "rejected" and final.reason == "compensation_target_unknown"


# --- one event id, one owner, whatever the command (issue 14, items 2 and 3) -----------------


@pytest.mark.parametrize("layout_name", ["one partition", "each id apart"])
@pytest.mark.parametrize(
    "payment_first", [True, False], ids=["payment first", "compensation first"]
)
def test_a_compensation_and_a_payment_sharing_an_event_id_post_once_the_other_is_a_conflict(
    layout_name: str, payment_first: bool
) -> None:
    harness = Harness(one_partition if layout_name == "one partition" else apart())
    target_id, shared_id = str(uuid.uuid4()), str(uuid.uuid4())
    harness.run(harness.by_id(time_logged(target_id), "pm.events"))

    def pay() -> list[StageResult]:
        return harness.run(harness.by_id(vendor_payment(shared_id), "fin.commands"))

    def compensate() -> list[StageResult]:
        return harness.run(harness.by_id(compensation(shared_id, target_id), "fin.commands"))

    if payment_first:
        payment, reversal = pay(), compensate()
        assert outcomes(payment) == ["posted"]
        # Reserved in the target's partition, refused where the id lives, the target released.
        assert outcomes(reversal) == ["forwarded", "rejected:event_id_conflict", "released"]
        loser = reversal[1]
    else:
        reversal, payment = compensate(), pay()
        assert outcomes(reversal) == ["forwarded", "posted"]
        assert outcomes(payment) == ["rejected:event_id_conflict"]
        loser = payment[0]
    (letter,) = loser.sends[:1]
    headers = header_map(list(letter.headers))
    assert letter.topic == DLQ_TOPIC and headers["fin.event_id"] == shared_id
    entries = harness.entries()  # fails on two different entries under one entry id
    assert len(entries) == 2
    (winner,) = (e for e in entries.values() if e["source_event_id"] == shared_id)
    assert winner["source_event_type"] == (
        VENDOR_PAYMENT_MADE if payment_first else "fin.compensation.requested"
    )
    assert harness.counts() == {"posted": 2, "rejected": 1}
    assert harness.every_input_has_one_outcome()
    if payment_first:
        # The compensation that lost its id reversed nothing: another one still can.
        assert harness.row(target_id)["compensated_by"] is None
        later = harness.run(
            harness.by_id(compensation(str(uuid.uuid4()), target_id), "fin.commands")
        )
        assert outcomes(later) == ["forwarded", "posted"]
        assert len(harness.entries()) == 3


@pytest.mark.parametrize(
    "pinned",
    [set(), {"T", "C1", "C2"}, {"T", "C1"}, {"C1", "C2"}, {"T", "C2"}],
    ids=["all apart", "all together", "target+first", "first+second", "target+second"],
)
@pytest.mark.parametrize("early", [False, True], ids=["after", "ahead of its target"])
def test_a_compensation_of_a_compensation_is_refused_on_every_partition_layout(
    pinned: set[str], early: bool
) -> None:
    ids = {name: str(uuid.uuid4()) for name in ("T", "C1", "C2")}
    harness = Harness(together({ids[name] for name in pinned}))
    harness.run(harness.by_id(time_logged(ids["T"]), "pm.events"))
    second = compensation(ids["C2"], ids["C1"])
    if early:
        # Sent before the compensation it names is claimed: parked, like any unknown target.
        (parked,) = harness.run(harness.by_id(second, "fin.commands"))
        assert parked.outcome == "parked"
    first = harness.run(harness.by_id(compensation(ids["C1"], ids["T"]), "fin.commands"))
    assert outcomes(first) == ["forwarded", "posted"]

    refused = harness.run(
        harness.next_by_id(parked.sends[0]) if early else harness.by_id(second, "fin.commands")
    )

    assert outcomes(refused) == ["rejected:compensation_target_not_reversible"]
    detail = header_map(list(refused[0].sends[0].headers))["fin.detail"]
    assert f"event {ids['C1']} is a compensation" in detail
    assert len(harness.entries()) == 2
    assert harness.counts() == {"posted": 2, "rejected": 1}
    assert harness.every_input_has_one_outcome()


def test_a_compensation_naming_itself_is_refused_at_once() -> None:
    harness = Harness(apart())
    itself = str(uuid.uuid4())
    refused = harness.run(harness.by_id(compensation(itself, itself), "fin.commands"))
    assert outcomes(refused) == ["rejected:compensation_target_not_reversible"]


def test_replays_of_the_reserve_and_of_the_claim_reverse_once() -> None:
    harness = Harness(apart())
    target_id, compensation_id = str(uuid.uuid4()), str(uuid.uuid4())
    harness.run(harness.by_id(time_logged(target_id), "pm.events"))
    reserve = harness.by_id(compensation(compensation_id, target_id), "fin.commands")
    source_offset = harness.source_offset

    first = harness.post(reserve)
    again = harness.post(reserve)  # the same by-id record after a crash: the claim again
    assert first.outcome == again.outcome == "forwarded"
    assert first.sends == again.sends
    (claim_send,) = first.sends
    assert dict(claim_send.headers)[H_STEP] == STEP_CLAIM
    assert claim_send.key == compensation_id.encode()
    claim, claim_copy = harness.next_by_id(claim_send), harness.next_by_id(again.sends[0])

    posted = harness.post(claim)
    reemitted = harness.post(claim)  # the claim itself again after a crash
    copy = harness.post(claim_copy)  # the second claim the replayed reserve sent
    assert [posted.outcome, reemitted.outcome, copy.outcome] == ["posted", "reemit", "replay"]
    assert reemitted.sends == posted.sends and copy.sends == ()

    # The same source record ingested again (an upstream replay), then sent again (a retry).
    replayed = harness.run(
        harness.by_id(
            compensation(compensation_id, target_id), "fin.commands", source_offset=source_offset
        )
    )
    resent = harness.run(harness.by_id(compensation(compensation_id, target_id), "fin.commands"))
    assert outcomes(replayed) == ["replay"] and outcomes(resent) == ["duplicate"]

    assert len(harness.entries()) == 2
    assert harness.row(target_id)["compensated_by"] == compensation_id
    assert harness.counts() == {"posted": 2, "duplicates": 1}
    assert harness.every_input_has_one_outcome()


def test_a_refused_claim_replayed_releases_its_target_once_and_reverses_nothing() -> None:
    harness = Harness(apart())
    target_id, shared_id = str(uuid.uuid4()), str(uuid.uuid4())
    harness.run(harness.by_id(time_logged(target_id), "pm.events"))
    harness.run(harness.by_id(vendor_payment(shared_id), "fin.commands"))
    reserve = harness.by_id(compensation(shared_id, target_id), "fin.commands")
    claim = harness.next_by_id(harness.post(reserve).sends[0])

    refused = harness.post(claim)
    refused_again = harness.post(claim)  # after a crash: answered the same way
    assert refused.reason == refused_again.reason == "event_id_conflict"
    assert refused.sends == refused_again.sends
    release_send = refused.sends[-1]
    assert dict(release_send.headers)[H_STEP] == STEP_RELEASE
    assert release_send.key == target_id.encode()
    release, release_copy = harness.next_by_id(release_send), harness.next_by_id(release_send)

    assert harness.post(release).outcome == "released"
    assert harness.row(target_id)["compensated_by"] is None
    # The reserve record after a crash, once released: no new claim.
    replayed = harness.post(reserve)
    assert replayed.outcome == "replay" and replayed.sends == ()
    # A compensation of the same target now reserves it; the late release copy leaves it be.
    other = str(uuid.uuid4())
    other_reserve = harness.post(harness.by_id(compensation(other, target_id), "fin.commands"))
    assert other_reserve.outcome == "forwarded"
    assert harness.post(release_copy).outcome == "released"
    assert harness.row(target_id)["compensated_by"] == other
    assert harness.post(harness.next_by_id(other_reserve.sends[0])).outcome == "posted"

    assert len(harness.entries()) == 3  # the target, the payment, one reversal
    assert harness.counts() == {"posted": 3, "rejected": 1}
    assert harness.every_input_has_one_outcome()


# --- a payment's natural key (issue 14, item 5) ----------------------------------------------


def test_a_payment_sent_twice_without_a_key_is_one_payment_and_another_amount_a_conflict() -> None:
    harness = Harness(apart())

    def command(amount: str) -> bytes:
        data = vendor_payment_data("VEN-001", {"payment_id": "BANK-REF-9", "amount": amount})
        event_id = natural_command_id(VENDOR_PAYMENT_MADE, data)
        assert event_id is not None
        prepared = prepare(
            VENDOR_PAYMENT_MADE, data, event_id=event_id, now=NOW, chart=CHART, encoder=encoder()
        )
        return prepared.value

    sent = command("400.00")
    first = harness.run(harness.by_id_bytes(sent, "fin.commands"))
    resent = harness.run(harness.by_id_bytes(sent, "fin.commands"))  # the bytes the API repeats
    other = harness.run(harness.by_id_bytes(command("500.00"), "fin.commands"))

    assert outcomes(first) == ["posted"]
    assert outcomes(resent) == ["duplicate"]
    assert outcomes(other) == ["rejected:event_id_conflict"]
    assert len(harness.entries()) == 1
    assert harness.every_input_has_one_outcome()


# --- outcome counts ----------------------------------------------------------------------------


def test_outcome_counters_never_count_a_record_twice() -> None:
    row = count_ingest(None, 5, "forwarded")
    row = count_ingest(row, 6, "rejected")
    assert count_ingest(row, 6, "rejected") is None  # replayed after a crash
    assert row is not None and b'"consumed":2' in row and b'"rejected":1' in row
    posting = count_posting(None, 10, "posted")
    posting = count_posting(posting, 11, "parked")  # parking moves the mark, counts nothing
    assert posting is not None and b'"posted":1' in posting and b"parked" not in posting
    assert count_posting(posting, 11, "duplicate") is None
    # A compensation's reserve and release steps count nothing either: its claim counts it.
    for step, offset in (("forwarded", 12), ("released", 13)):
        posting = count_posting(posting, offset, step)
        assert posting is not None and step.encode() not in posting


def test_a_re_emission_counts_as_the_posting_it_repeats_once() -> None:
    # The posting at offset 10 was counted, then a kill -9 lost the stats row's changelog record
    # while processed[] kept its row: the by-id record comes back as a re-emission.
    lost = count_posting(None, 9, "posted")
    recounted = count_posting(lost, 10, "reemit")
    assert recounted is not None and b'"posted":2' in recounted
    # Had the count survived, the watermark refuses it.
    survived = count_posting(lost, 10, "posted")
    assert count_posting(survived, 10, "reemit") is None


def test_a_parked_record_waits_until_its_time_and_never_longer_than_the_park_delay() -> None:
    from streams.stage_records import H_PARK_NOT_BEFORE_MS, PARK_DELAY_S

    def parked_until(ms: int) -> ByIdRecord:
        return ByIdRecord(b"k", b"v", {H_PARK_NOT_BEFORE_MS: str(ms).encode()}, 0, 7)

    now_s = 1_700_000_000.0
    assert parked_until(int(now_s * 1000) + 250).park_wait_s(now_s) == pytest.approx(0.25)
    assert parked_until(int(now_s * 1000) + 60_000).park_wait_s(now_s) == PARK_DELAY_S
    assert parked_until(int(now_s * 1000) - 5).park_wait_s(now_s) == 0.0
    assert ByIdRecord(b"k", b"v", {}, 0, 8).park_wait_s(now_s) == 0.0
