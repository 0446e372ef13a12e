"""The posting stage links every entry it posts into its partition's hash chain (issue 16)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from ledger.chain import GENESIS_HASH, head_key
from settings import LEDGER_TOPIC
from streams.posting import Posting
from tests.unit.schemas.fixtures import FakeRegistry, decoder, encoder
from tests.unit.streams.test_pipeline import (
    CHART,
    Harness,
    apart,
    compensation,
    outcomes,
    time_logged,
    vendor_payment,
)
from tools.ledger_verify import render, verify_records


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    value: bytes


def ledger_records(harness: Harness) -> list[Consumed]:
    return [Consumed(0, offset, value) for offset, value in enumerate(harness.ledger)]


def verified(harness: Harness) -> dict[int, int]:
    """Chain partition -> verified sequence; asserts every chain holds."""
    verifier, undecodable = verify_records(
        ledger_records(harness), lambda value: harness.decoder.decode(LEDGER_TOPIC, value), "t"
    )
    assert undecodable == []
    reports = verifier.reports()
    assert [r.first_break for r in reports] == [None] * len(reports), render(
        reports, verifier, undecodable, "t"
    )
    return {report.partition: report.verified_sequence for report in reports}


def test_entries_posted_in_one_partition_form_one_chain_from_the_genesis_hash() -> None:
    harness = Harness()
    for _ in range(3):
        harness.run(harness.by_id(time_logged(str(uuid.uuid4())), "pm.events"))
    entries = [harness.decoder.decode(LEDGER_TOPIC, v).record for v in harness.ledger]  # type: ignore[union-attr]
    assert [e["chain_sequence"] for e in entries] == [1, 2, 3]
    assert entries[0]["previous_hash"] == GENESIS_HASH
    assert entries[1]["previous_hash"] == entries[0]["entry_hash"]
    head = orjson.loads(harness.processed[0][head_key(0)])
    assert head == {"sequence": 3, "entry_hash": entries[2]["entry_hash"]}
    assert verified(harness) == {0: 3}


def test_re_emissions_duplicates_and_compensations_keep_every_chain_whole() -> None:
    harness = Harness(apart())
    target_id, compensation_id = str(uuid.uuid4()), str(uuid.uuid4())
    posted = harness.run(harness.by_id(time_logged(target_id), "pm.events"))
    harness.post(harness.by_id(time_logged(target_id), "pm.events"))  # a duplicate
    payment = harness.by_id(vendor_payment(str(uuid.uuid4())), "fin.commands")
    first, again = harness.post(payment), harness.post(payment)  # a crash before the commit
    assert first.sends == again.sends
    reversal = harness.run(harness.by_id(compensation(compensation_id, target_id), "fin.commands"))
    assert outcomes(posted) == ["posted"] and outcomes(reversal) == ["forwarded", "posted"]
    # Each entry is first of its own partition's chain here; the re-emission is a repeat.
    chains = verified(harness)
    assert sorted(chains.values()) == [1, 1, 1]
    assert len(harness.ledger) == 4


def test_a_head_row_lost_with_a_crash_is_moved_up_again_by_the_re_emission() -> None:
    harness = Harness()
    first = harness.by_id(time_logged(str(uuid.uuid4())), "pm.events")
    harness.post(first)
    del harness.processed[0][head_key(0)]  # its changelog record lost, the processed row kept
    assert harness.post(first).outcome == "reemit"
    harness.post(harness.by_id(time_logged(str(uuid.uuid4())), "pm.events"))
    assert verified(harness) == {0: 2}


def test_a_re_emission_writes_the_head_row_again_even_where_it_is_already_there() -> None:
    """A kill -9 between a batch's RocksDB write and its changelog delivery leaves the head row
    in RocksDB only: the re-emission after the restart must put it on the changelog again, or a
    wipe would restore an older head and the next entry take a sequence already used (the
    fault suite's wipe scenario found two entries at one sequence, 2026-12-04)."""
    harness = Harness()
    first = harness.by_id(time_logged(str(uuid.uuid4())), "pm.events")
    harness.post(first)
    head_after_first = harness.processed[0][head_key(0)]
    again = harness.post(first)
    assert again.outcome == "reemit"
    assert ("processed", head_key(0), head_after_first) in again.table_writes
    # A later entry moved the head on: the re-emission writes the head as it is, not back.
    harness.post(harness.by_id(time_logged(str(uuid.uuid4())), "pm.events"))
    head_now = harness.processed[0][head_key(0)]
    assert orjson.loads(head_now)["sequence"] == 2
    assert ("processed", head_key(0), head_now) in harness.post(first).table_writes
    assert verified(harness) == {0: 2}


def test_a_stage_with_chains_off_sends_unchained_entries() -> None:
    registry = FakeRegistry()
    harness = Harness()
    harness.posting = Posting(decoder(registry), encoder(), CHART, chain=False)
    harness.post(harness.by_id(time_logged(str(uuid.uuid4())), "pm.events"))
    verifier, _ = verify_records(
        ledger_records(harness), lambda value: harness.decoder.decode(LEDGER_TOPIC, value), "t"
    )
    assert verifier.unchained == 1 and verifier.reports() == []
    assert head_key(0) not in harness.processed[0]


def test_an_edited_copy_is_reported_at_the_edited_entry_by_the_command_output() -> None:
    harness = Harness()
    for _ in range(3):
        harness.post(harness.by_id(time_logged(str(uuid.uuid4())), "pm.events"))
    # The billable amount 1125.00 is in the entry twice (debit and credit lines): change the
    # first occurrence's bytes in the second entry, as someone with topic access could.
    original = harness.ledger[1]
    old = (112500).to_bytes(3, "big")
    assert old in original
    harness.ledger[1] = original.replace(old, (112600).to_bytes(3, "big"), 1)
    verifier, undecodable = verify_records(
        ledger_records(harness), lambda value: harness.decoder.decode(LEDGER_TOPIC, value), "t"
    )
    (report,) = verifier.reports()
    assert report.first_break is not None and report.first_break.sequence == 2
    assert report.first_break.position == "t[0]@1"
    text = render(verifier.reports(), verifier, undecodable, "t")
    assert "chain 0: BROKEN at sequence 2" in text
