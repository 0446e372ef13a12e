"""The benchmark's recovery check (bench/recovery.py): rows compared before the wipe and after
the rebuild, persisted offsets against the changelogs' ends, and whose log lines time it."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Options, Rdict

from bench.recovery import OFFSET_KEY, Snapshot, compare, restore_timing, snapshot


def test_identical_rows_with_offsets_at_the_changelog_ends_are_no_problem() -> None:
    rows = {("periods", 0): {b"2024-01": b"x"}, ("periods", 1): {}}
    before = Snapshot(rows, {("periods", 0): 4, ("periods", 1): None})
    after = Snapshot(
        {k: dict(v) for k, v in rows.items()}, {("periods", 0): 9, ("periods", 1): None}
    )
    assert compare(before, after, {("periods", 0): 10, ("periods", 1): 0}) == []


def test_missing_different_and_extra_rows_and_a_wrong_offset_are_named() -> None:
    before = Snapshot({("vendors", 2): {b"a": b"1", b"b": b"1", b"c": b"1"}}, {})
    after = Snapshot({("vendors", 2): {b"a": b"2", b"c": b"1", b"d": b"1"}}, {("vendors", 2): 5})
    problems = compare(before, after, {("vendors", 2): 9})
    assert problems == [
        "table vendors[2]: 1 rows missing, 1 different, 1 extra after the rebuild",
        "table vendors[2]: persisted offset 5, the changelog's last offset is 8",
    ]


def test_a_snapshot_reads_every_partition_and_keeps_the_offset_apart(tmp_path: Path) -> None:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    for name, rows in (("budgets-0.db", {b"k": b"v", OFFSET_KEY: b"41"}), ("budgets-3.db", {})):
        db = Rdict(str(tmp_path / name), options)
        for key, value in rows.items():
            db[key] = value
        db.close()
    found = snapshot(tmp_path)
    assert found.rows == {("budgets", 0): {b"k": b"v"}, ("budgets", 3): {}}
    assert found.offsets == {("budgets", 0): 41, ("budgets", 3): None}
    assert found.row_count == 1


LOG = """\
[2026-12-03 17:00:01,000] [1] [INFO] [^---Recovery]: Highwater for active changelog partitions:
[2026-12-03 17:00:01,250] [1] [INFO] Restoring state from changelog topics in bulk: up to 9 records
[2026-12-03 17:00:01,750] [1] [INFO] Done reading changelog topics in bulk: 9 records
"""


def test_the_bulk_reader_s_lines_time_the_restore() -> None:
    assert restore_timing(LOG) == (0.5, "FIN bulk reader")


def test_faust_s_own_lines_time_it_without_the_bulk_reader() -> None:
    log = (
        "[2026-12-03 17:00:02,000] [1] [INFO] [^---Recovery]: Restoring state from changelog "
        "topics...\n"
        "[2026-12-03 17:00:03,500] [1] [INFO] [^---Recovery]: Done reading from changelog topics\n"
    )
    assert restore_timing(log) == (1.5, "faust")


def test_what_the_bulk_reader_left_to_faust_counts_until_faust_is_done() -> None:
    log = LOG + (
        "[2026-12-03 17:00:01,760] [1] [INFO] [^---Recovery]: Restoring state from changelog "
        "topics...\n"
        "[2026-12-03 17:00:04,250] [1] [INFO] [^---Recovery]: Done reading from changelog topics\n"
    )
    assert restore_timing(log) == (3.0, "FIN bulk reader, then faust")
