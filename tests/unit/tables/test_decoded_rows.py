"""The tables agent's decoded rows: taken only for the very bytes they were written as."""

from __future__ import annotations

from tables.decoded_rows import DecodedRows


def test_a_row_is_taken_for_equal_bytes_and_never_for_other_bytes() -> None:
    cache: DecodedRows[str] = DecodedRows()
    written = b'{"actual":"10.00"}'
    cache.put(("budgets", 0, b"k"), written, "row-10")
    # A read from RocksDB returns equal bytes in a new object.
    assert cache.get(("budgets", 0, b"k"), bytes(bytearray(written))) == "row-10"
    # Another worker (or a restore) wrote something else: parse again.
    assert cache.get(("budgets", 0, b"k"), b'{"actual":"11.00"}') is None
    # Same key in another partition or table is another slot.
    assert cache.get(("budgets", 1, b"k"), written) is None
    assert cache.get(("customers", 0, b"k"), written) is None
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_new_write_replaces_the_row_of_its_slot() -> None:
    cache: DecodedRows[str] = DecodedRows()
    cache.put("slot", b"one", "row-1")
    cache.put("slot", b"two", "row-2")
    assert cache.get("slot", b"one") is None
    assert cache.get("slot", b"two") == "row-2"
    assert len(cache) == 1


def test_the_rows_written_longest_ago_leave_once_the_budget_is_spent() -> None:
    cache: DecodedRows[int] = DecodedRows(budget_bytes=10)
    for number in range(5):
        cache.put(number, bytes(4), number)  # 4 bytes each: two fit
    assert len(cache) == 2
    assert cache.get(0, bytes(4)) is None and cache.get(3, bytes(4)) == 3
    cache.put(3, bytes(4), 3)  # written again: now the newest
    cache.put(5, bytes(4), 5)
    assert cache.get(4, bytes(4)) is None
    assert cache.get(3, bytes(4)) == 3 and cache.get(5, bytes(4)) == 5


def test_a_row_larger_than_the_budget_is_not_kept() -> None:
    cache: DecodedRows[str] = DecodedRows(budget_bytes=8)
    cache.put("small", b"1234", "small")
    cache.put("large", bytes(9), "large")
    assert cache.get("large", bytes(9)) is None
    assert cache.get("small", b"1234") == "small"
