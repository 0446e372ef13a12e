"""Rows larger than a changelog record (tables/chunked.py): written as chunks and a header last,
read back whole, restored whole from the changelog, and never corrupted by a write that a crash
cut short, by log compaction or by a worker whose RocksDB ran ahead of its changelog."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from tables import chunked
from tables.chunked import CorruptRowError, assemble, header_of, is_row_key, records
from tables.store import BatchedTable, row_count, row_items, row_value
from tests.unit.streams.test_batched import FakeProducer

Log = list[tuple[bytes, bytes | None]]
LIMIT = 64


def _apply(db: dict[bytes, bytes], written: Log) -> None:
    for key, value in written:
        if value is None:
            db.pop(key, None)
        else:
            db[key] = value


def _compacted(log: Log) -> Log:
    """The log as compaction may leave it: the last record of each key, in log order."""
    last = {key: at for at, (key, _) in enumerate(log)}
    return [record for at, record in enumerate(log) if last[record[0]] == at]


def _restored(log: Log) -> dict[bytes, bytes]:
    db: dict[bytes, bytes] = {}
    _apply(db, log)
    return db


def _row(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


_sizes = st.lists(st.integers(min_value=0, max_value=LIMIT * 5), min_size=1, max_size=12)


@given(_sizes)
def test_every_version_of_a_row_reads_back_whole_and_leaves_no_chunk_behind(
    sizes: list[int],
) -> None:
    db: dict[bytes, bytes] = {}
    for n, size in enumerate(sizes):
        row = _row(size, n)
        written = records(b"VEN-001", row, db.get(b"VEN-001"), LIMIT)
        assert all(value is None or len(value) <= max(LIMIT, size) for _, value in written)
        assert all(
            value is None or len(value) <= LIMIT for key, value in written if key != b"VEN-001"
        )
        _apply(db, written)
        assert assemble(b"VEN-001", db[b"VEN-001"], db.get) == row
        header = header_of(db[b"VEN-001"])
        wanted = {b"VEN-001"} | set(header.chunk_keys(b"VEN-001") if header else ())
        assert set(db) == wanted
        assert (header is None) == (size <= LIMIT)


@settings(max_examples=300)
@given(_sizes, st.data())
def test_a_changelog_cut_anywhere_and_compacted_restores_a_row_that_was_written_whole(
    sizes: list[int], data: st.DataObject
) -> None:
    """A crash stops a write's records at any point (in the changelog and in RocksDB, each at
    its own point); the replay writes the row again from whatever RocksDB held. Restoring from
    the log, compacted or not, gives the last row whose records all arrived, or a later one."""
    local: dict[bytes, bytes] = {}
    log: Log = []
    complete: list[bytes] = []  # rows whose every record reached the log, in order
    attempted: list[bytes] = []
    for n, size in enumerate(sizes):
        row = _row(size, n)
        attempted.append(row)
        written = records(b"K", row, local.get(b"K"), LIMIT)
        delivered = data.draw(st.integers(min_value=0, max_value=len(written)))
        stored = data.draw(st.integers(min_value=0, max_value=len(written)))
        log.extend(written[:delivered])
        _apply(local, written[:stored])
        if delivered == len(written):
            complete.append(row)
        for version in (log, _compacted(log)):
            db = _restored(version)
            got = assemble(b"K", db.get(b"K"), db.get)
            if complete:
                last = attempted.index(complete[-1])
                assert got in attempted[last:]
            else:
                assert got is None or got in attempted


def test_a_missing_or_wrong_chunk_is_refused_by_name() -> None:
    row = _row(LIMIT * 3, 1)
    db: dict[bytes, bytes] = {}
    _apply(db, records(b"K", row, None, LIMIT))
    header = header_of(db[b"K"])
    assert header is not None and header.count == 3
    first, second, _ = header.chunk_keys(b"K")
    db[second] = db[second][:-1] + b"?"
    with pytest.raises(CorruptRowError, match="CRC"):
        assemble(b"K", db[b"K"], db.get)
    del db[first]
    with pytest.raises(CorruptRowError, match="chunk 0 of 3"):
        assemble(b"K", db[b"K"], db.get)


def test_chunk_keys_are_never_rows_and_rows_never_look_like_a_header() -> None:
    row = _row(LIMIT * 2, 2)
    written = records(b"K", row, None, LIMIT)
    assert [is_row_key(key) for key, _ in written] == [False, False, True]
    assert is_row_key(b"VEN-001") and not is_row_key(None)
    assert header_of(b'{"items":{}}') is None
    # Each write of a large row has chunk keys of its own.
    again = records(b"K", row, written[-1][1], LIMIT)
    assert {key for key, _ in again[:2]}.isdisjoint({key for key, _ in written[:2]})


# --- through BatchedTable and faust's own RocksDB store and restore -------------------------


def _app(tmp_path: Path, name: str) -> Any:
    """A faust table on RocksDB whose partition 1 is assigned to this worker."""
    app: Any = faust.App(
        name, store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1"
    )
    table: Any = app.Table("vendors", partitions=2, key_type=bytes, value_type=bytes)
    active = TP(f"{name}-vendors-changelog", 1)
    app.assignor.assigned_actives = lambda: {active}
    table.data._db_for_partition(1)
    return table


def _flush(batched: BatchedTable, producer: FakeProducer) -> None:
    """Flush, checking that the keys handed back (a failed delivery's log names them) are the
    sent records' keys, in order."""
    already = len(producer.sent)
    keys: list[bytes] = []

    async def flush() -> None:
        futures = await batched.flush(producer, keys)
        assert len(futures) == len(keys)

    asyncio.run(flush())
    assert keys == [key for _, key, _, _, _ in producer.sent[already:]]


class _Message:
    def __init__(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.tp, self.offset, self.partition = tp, offset, tp.partition
        self.key, self.value = key, value

    @property
    def message(self) -> _Message:
        return self


def test_a_large_row_goes_to_the_changelog_in_records_under_the_limit_and_restores_whole(
    tmp_path: Path,
) -> None:
    table = _app(tmp_path / "a", "chunk-a")
    batched = BatchedTable(table, chunk_bytes=1_000)
    producer = FakeProducer()
    big, small = _row(4_500, 3), b'{"paid_total":"1.00"}'
    batched.put(1, b"VEN-001", big)
    batched.put(1, b"VEN-002", small)
    _flush(batched, producer)
    sent = [(key, value) for _, key, value, _, _ in producer.sent]
    assert len(sent) == 7  # five chunks, the header, the small row
    assert all(value is not None and len(value) <= 1_000 for _, value in sent)
    assert batched.get(1, b"VEN-001") == big
    assert row_value(table, b"VEN-001") == big
    assert dict(row_items(table)) == {b"VEN-001": big, b"VEN-002": small}
    # RocksDB's estimate of the keys, chunk records included (exact while they are this few).
    stored = [key for key, _ in table.data._db_for_partition(1).items()]
    assert row_count(table) == len(stored) == 7

    bigger = _row(6_000, 4)
    batched.put(1, b"VEN-001", bigger)
    _flush(batched, producer)
    assert row_value(table, b"VEN-001") == bigger
    # The earlier chunks were deleted after the new header: RocksDB keeps only the new ones.
    stored = [key for key, _ in table.data._db_for_partition(1).items()]
    assert sum(1 for key in stored if key.startswith(chunked.CHUNK_KEY_PREFIX)) == 6

    # A fresh worker restores the changelog as faust does (tombstones delete) and reads the
    # same rows.
    restored = _app(tmp_path / "b", "chunk-b")
    tp = TP("chunk-b-vendors-changelog", 1)
    restored.apply_changelog_batch(
        [
            _Message(tp, offset, key, value)
            for offset, (_, key, value, _, _) in enumerate(producer.sent)
        ]
    )
    assert dict(row_items(restored)) == {b"VEN-001": bigger, b"VEN-002": small}
    assert row_value(restored, b"VEN-002") == small

    # Shrunk under the limit: one plain record, and every chunk deleted after it.
    batched.put(1, b"VEN-001", small)
    _flush(batched, producer)
    stored = [key for key, _ in table.data._db_for_partition(1).items()]
    assert not any(key.startswith(chunked.CHUNK_KEY_PREFIX) for key in stored)
    assert row_value(table, b"VEN-001") == small
