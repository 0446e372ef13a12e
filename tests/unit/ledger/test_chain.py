"""Tamper evidence (issue 16, item 3): hash chains of journal entries and their verifier."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain import (
    GENESIS_HASH,
    ChainHead,
    ChainVerifier,
    content_hash,
    head_key,
    next_link,
    reference_text,
    verify,
)
from ledger.entries import (
    JournalEntry,
    SourceRef,
    chained,
    chained_record,
    credit_line,
    debit_line,
    from_avro_dict,
    from_json_dict,
    to_avro_dict,
    to_json_dict,
)

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def entry(number: int, amount: str = "100.00") -> JournalEntry:
    value = Decimal(amount)
    return JournalEntry(
        entry_id=f"00000000-0000-4000-8000-{number:012d}",
        source=SourceRef(f"event-{number}", "scm.goods.received", "scm.events", 0, number),
        rule_version="v1",
        business_date=date(2024, 3, 15),
        period="2024-03",
        quarter="2024-Q1",
        currency="USD",
        lines=(
            debit_line("1300", value),
            credit_line("2000", value, (("vendor", "VEN-001"),)),
        ),
    )


def chain_of(count: int, partition: int = 0) -> list[JournalEntry]:
    head, linked = ChainHead(), []
    for number in range(1, count + 1):
        item = chained(entry(number + 1000 * partition), partition, head)
        assert item.chain is not None
        head = ChainHead(item.chain.sequence, item.chain.entry_hash)
        linked.append(item)
    return linked


def as_records(entries: list[JournalEntry]) -> list[tuple[dict[str, Any], bytes, str]]:
    """(record, raw bytes, position) as the verifier is fed; raw = a stable serialisation."""
    out = []
    for index, item in enumerate(entries):
        record = to_avro_dict(item)
        out.append((record, repr(sorted(to_json_dict(item).items())).encode(), f"t[0]@{index}"))
    return out


def test_each_entry_links_to_the_one_before_and_the_first_to_the_genesis_hash() -> None:
    first, second, third = chain_of(3)
    assert first.chain is not None and second.chain is not None and third.chain is not None
    assert first.chain.previous_hash == GENESIS_HASH and first.chain.sequence == 1
    assert second.chain.previous_hash == first.chain.entry_hash
    assert third.chain.previous_hash == second.chain.entry_hash


def test_an_entry_hash_covers_its_content_and_its_link() -> None:
    (linked,) = chain_of(1)
    record = to_avro_dict(linked)
    assert content_hash(record) == record["entry_hash"]
    altered_amount = {
        **record,
        "lines": [{**record["lines"][0], "debit": Decimal("100.01")}, record["lines"][1]],
    }
    assert content_hash(altered_amount) != record["entry_hash"]
    assert content_hash({**record, "previous_hash": "1" * 64}) != record["entry_hash"]
    assert content_hash({**record, "business_date": date(2024, 3, 16)}) != record["entry_hash"]


def test_the_avro_and_json_forms_of_an_entry_hash_the_same_and_keep_the_link() -> None:
    (linked,) = chain_of(1)
    assert content_hash(to_avro_dict(linked)) == content_hash(to_json_dict(linked))
    assert from_json_dict(to_json_dict(linked)) == linked
    assert from_avro_dict(to_avro_dict(linked)) == linked


def test_an_unchained_entry_keeps_its_json_form_without_chain_fields() -> None:
    plain = entry(1)
    assert "entry_hash" not in to_json_dict(plain)
    assert to_avro_dict(plain)["entry_hash"] is None
    assert from_json_dict(to_json_dict(plain)) == plain


def test_an_entry_cannot_be_chained_twice() -> None:
    (linked,) = chain_of(1)
    with pytest.raises(AssertionError):
        chained(linked, 0, ChainHead())


def test_a_chain_head_is_a_processed_row_no_event_id_can_name() -> None:
    assert head_key(3) == "chain|3"
    assert ChainHead.from_json_dict(ChainHead(7, "a" * 64).to_json_dict()) == ChainHead(7, "a" * 64)


def test_an_untouched_chain_verifies_clean_to_its_last_entry() -> None:
    records = as_records(chain_of(5))
    (report,) = verify(records).reports()
    assert report.first_break is None
    assert report.verified_sequence == 5 and report.verified_position == "t[0]@4"
    assert report.verified_hash == records[-1][0]["entry_hash"]


def test_byte_identical_repeats_are_ignored_in_any_order() -> None:
    records = as_records(chain_of(6))
    repeated = records + records[2:5] + records[:1]
    random.Random(3).shuffle(repeated)
    verifier = verify(repeated)
    (report,) = verifier.reports()
    assert report.first_break is None and report.verified_sequence == 6
    assert verifier.repeats == 4


def test_an_edited_amount_is_reported_at_that_entry() -> None:
    records = as_records(chain_of(5))
    record, raw, position = records[2]
    edited = {
        **record,
        "lines": [{**record["lines"][0], "debit": Decimal("999.00")}, record["lines"][1]],
    }
    records[2] = (edited, raw + b"edited", position)
    (report,) = verify(records).reports()
    assert report.first_break is not None
    assert report.first_break.sequence == 3 and report.first_break.position == "t[0]@2"
    assert "altered" in report.first_break.problem
    assert report.verified_sequence == 2


def test_an_entry_rehashed_after_an_edit_breaks_the_link_of_the_next_one() -> None:
    records = as_records(chain_of(4))
    record, raw, position = records[1]
    edited = {**record, "currency": "EUR"}
    edited["entry_hash"] = content_hash(edited)  # the forger recomputes this entry's own hash
    records[1] = (edited, raw + b"edited", position)
    (report,) = verify(records).reports()
    assert report.first_break is not None and report.first_break.sequence == 3
    assert "previous_hash" in report.first_break.problem


def test_a_missing_entry_and_a_second_different_record_at_one_sequence_are_breaks() -> None:
    records = as_records(chain_of(4))
    (missing,) = verify(records[:1] + records[2:]).reports()
    assert missing.first_break is not None and missing.first_break.sequence == 2
    assert missing.first_break.problem == "entry missing"

    record, raw, _ = records[3]
    other = verify([*records, (record, raw + b"x", "t[1]@9")])
    (conflict,) = other.reports()
    assert conflict.first_break is not None and conflict.first_break.sequence == 4
    assert "two different records" in conflict.first_break.problem
    assert conflict.verified_sequence == 3


def test_chains_are_verified_separately_and_unchained_entries_only_counted() -> None:
    records = as_records(chain_of(3, partition=0)) + as_records(chain_of(2, partition=1))
    record, raw, position = records[4]
    records[4] = ({**record, "period": "2024-04"}, raw + b"!", position)
    plain = to_avro_dict(entry(99))
    verifier = verify([*records, (plain, b"plain", "t[0]@99")])
    first, second = verifier.reports()
    assert first.first_break is None and first.verified_sequence == 3
    assert second.first_break is not None and second.first_break.sequence == 2
    assert verifier.unchained == 1


@PROPERTY_SETTINGS
@given(
    length=st.integers(min_value=1, max_value=25),
    repeats=st.lists(st.integers(min_value=0, max_value=24), max_size=30),
    seed=st.integers(min_value=0, max_value=2**32),
    tamper=st.none() | st.integers(min_value=0, max_value=24),
    cents=st.integers(min_value=1, max_value=10**6),
)
def test_any_order_and_any_repeats_verify_clean_and_any_one_edit_is_found_at_its_entry(
    length: int, repeats: list[int], seed: int, tamper: int | None, cents: int
) -> None:
    records = as_records(chain_of(length))
    fed = records + [records[index % length] for index in repeats]
    random.Random(seed).shuffle(fed)
    verifier = ChainVerifier()
    edited_sequence: int | None = None
    for original, original_raw, position in fed:
        record, raw = original, original_raw
        sequence = record["chain_sequence"]
        if tamper is not None and sequence == tamper % length + 1:
            amount = Decimal(cents).scaleb(-2)
            if amount != record["lines"][0]["debit"]:
                edited_sequence = sequence
                record = {
                    **record,
                    "lines": [{**record["lines"][0], "debit": amount}, record["lines"][1]],
                }
                raw = raw + b"edited"
        verifier.add(record, raw, position)
    (report,) = verifier.reports()
    if edited_sequence is None:
        assert report.first_break is None and report.verified_sequence == length
    else:
        assert report.first_break is not None
        assert report.first_break.sequence == edited_sequence
        assert report.verified_sequence == edited_sequence - 1


def test_a_compacted_watcher_keeps_verifying_as_the_ledger_grows() -> None:
    records = as_records(chain_of(8))
    watcher = ChainVerifier()
    for item in records[:5]:
        watcher.add(*item)
    watcher.compact()
    (report,) = watcher.reports()
    assert report.verified_sequence == 5 and report.entries == 5
    for item in [*records[2:3], *records[6:], records[5]]:  # a repeat, then out of order
        watcher.add(*item)
    (report,) = watcher.reports()
    assert report.first_break is None and report.verified_sequence == 8 and report.entries == 8
    assert watcher.repeats == 1
    watcher.compact()
    record, raw, position = as_records(chain_of(9))[8]
    watcher.add({**record, "currency": "EUR"}, raw, position)
    (report,) = watcher.reports()
    assert report.first_break is not None and report.first_break.sequence == 9
    assert report.verified_sequence == 8 and report.verified_position == "t[0]@7"


# --- the fast hash is the defined one -----------------------------------------------------

_texts = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=["Cs"]))
_amounts = st.decimals(
    min_value=Decimal("0.00"), max_value=Decimal("9999999999999999.99"), places=2
)
_lines = st.fixed_dictionaries(
    {
        "account": _texts,
        "debit": _amounts,
        "credit": _amounts,
        "dimensions": st.dictionaries(_texts, _texts, max_size=4),
    }
)
_records = st.fixed_dictionaries(
    {
        "entry_id": _texts,
        "source_event_id": _texts,
        "source_event_type": _texts,
        "source_topic": _texts,
        "source_partition": st.integers(min_value=0, max_value=2**31 - 1),
        "source_offset": st.integers(min_value=0, max_value=2**63 - 1),
        "rule_version": st.integers(min_value=0, max_value=100),
        "business_date": st.one_of(st.dates(), st.dates().map(date.isoformat)),
        "period": _texts,
        "quarter": _texts,
        "currency": _texts,
        "reverses_entry_id": st.one_of(st.none(), _texts),
        "lines": st.lists(_lines, min_size=1, max_size=4),
        "posting_period": st.one_of(st.none(), _texts),
        "chain_partition": st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
        "chain_sequence": st.one_of(st.none(), st.integers(min_value=1, max_value=2**40)),
        "previous_hash": st.one_of(
            st.none(), st.text("0123456789abcdef", min_size=64, max_size=64)
        ),
    }
)


@settings(max_examples=400, deadline=None)
@given(_records)
def test_the_fast_entry_hash_is_the_hash_of_the_defined_canonical_text(
    record: dict[str, Any],
) -> None:
    import hashlib

    assert content_hash(record) == hashlib.sha256(reference_text(record)).hexdigest()


@pytest.mark.parametrize("code_point", [*range(0, 0x100), 0x2028, 0x2029, 0xFEFF, 0x10FFFF])
def test_every_escaped_or_special_character_hashes_as_defined(code_point: int) -> None:
    import hashlib

    (linked,) = chain_of(1)
    record = to_avro_dict(linked)
    record["source_topic"] = f"a{chr(code_point)}b"
    record["lines"][0]["dimensions"] = {chr(code_point): chr(code_point)}
    assert content_hash(record) == hashlib.sha256(reference_text(record)).hexdigest()


def test_a_float_amount_is_refused_as_before() -> None:
    (linked,) = chain_of(1)
    record = to_avro_dict(linked)
    record["lines"][0]["debit"] = 100.0
    with pytest.raises(TypeError):
        content_hash(record)


@given(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=50))
@PROPERTY_SETTINGS
def test_the_posting_paths_record_is_the_linked_entrys_own(partition: int, sequence: int) -> None:
    """The posting stage builds a linked entry's Avro record once (``chained_record``) and makes
    its JSON form from it: both must be what the entry's own ``to_avro_dict`` and ``to_json_dict``
    give, and the entry what ``replace`` with the link would give."""
    head = ChainHead(sequence, "ab" * 32) if sequence else ChainHead()
    unchained = entry(7 + sequence, f"{sequence + 1}.25")
    linked, record = chained_record(unchained, partition, head)
    link = next_link(to_avro_dict(unchained), partition, head)
    assert linked == replace(unchained, chain=link)
    assert linked.chain == link
    assert record == to_avro_dict(linked)
    assert list(record) == list(to_avro_dict(linked))
    assert to_json_dict(linked, record) == to_json_dict(linked)
    assert record == to_avro_dict(linked)  # the JSON form was made from a copy
    assert unchained.chain is None
