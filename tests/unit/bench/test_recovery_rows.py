"""The recovery at scale counts the table rows its changelog records write, packs expanded."""

from __future__ import annotations

from bench.recovery import AtScale, rows_in
from bench.report import rows_clause
from tables.store import pack_key, pack_rows


def test_a_plain_record_writes_one_row_and_a_pack_writes_each_of_its_rows() -> None:
    assert rows_in(b"budgets-key", b"{}") == 1
    assert rows_in(b"gone", None) == 1  # a tombstone deletes one row
    packed = pack_rows([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    assert rows_in(pack_key(), packed) == 3


def test_rows_per_second_are_the_rows_over_the_restore_time() -> None:
    scaled = AtScale(
        changelog_records=200_000,
        appended=195_000,
        seconds_to_append=2.0,
        recovery_seconds=4.0,
        restored_by="FIN bulk reader",
        seconds_to_ready_wiped=7.0,
        rows_checked=16_000,
        changelog_rows=900_000,
    )
    assert scaled.records_per_s == 50_000
    assert scaled.rows_per_s == 225_000
    result = scaled.to_json()
    assert result["rows_per_s"] == 225_000 and result["changelog_rows"] == 900_000
    assert "900,000 table rows" in rows_clause(result)
    assert "225,000 rows/s" in rows_clause(result)


def test_a_result_from_before_rows_were_counted_says_nothing_of_rows() -> None:
    assert rows_clause({"records_per_s": 20_000}) == ""
