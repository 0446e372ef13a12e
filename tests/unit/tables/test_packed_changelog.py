"""Packed changelog records (tables/store.py): a batch's ``processed`` rows in a few records,
restored into exactly the rows they carry, through faust's own RocksDB write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.batched import delta_sends
from streams.partitioner import partition_for
from tables.store import (
    PACK_BYTES_MAX,
    BatchedTable,
    chunks,
    expand_packs,
    is_pack,
    pack_key,
    pack_rows,
    packed_rows_table,
    unpack_rows,
)
from tests.unit.streams.test_batched import FakeProducer, FakeTable

_rows = st.lists(st.tuples(st.binary(max_size=64), st.binary(max_size=300)), max_size=40)


@given(_rows)
def test_rows_come_out_of_a_pack_as_they_went_in(rows: list[tuple[bytes, bytes]]) -> None:
    assert list(unpack_rows(pack_rows(rows))) == rows


@given(_rows, st.integers(min_value=1, max_value=2_000))
def test_chunks_keep_every_row_in_order_and_stay_under_the_limit(
    rows: list[tuple[bytes, bytes]], limit: int
) -> None:
    groups = list(chunks(rows, limit))
    assert [row for group in groups for row in group] == rows
    for group in groups:
        assert len(group) == 1 or len(pack_rows(group)) <= limit


def test_a_truncated_pack_is_refused_not_half_read() -> None:
    packed = pack_rows([(b"a", b"1"), (b"b", b"22")])
    with pytest.raises(ValueError, match="truncated"):
        list(unpack_rows(packed[:-1]))


def test_pack_keys_are_never_reused_and_never_an_event_id() -> None:
    keys = {pack_key() for _ in range(1_000)}
    assert len(keys) == 1_000
    assert all(is_pack(key) for key in keys)
    assert not is_pack(b"0f8fad5b-d9cb-469f-a165-70867728950e")
    assert not is_pack(b"chain|3") and not is_pack(None)


def test_a_packed_flush_sends_one_record_per_partition_and_writes_every_row() -> None:
    table = FakeTable(name="processed", changelog_topic_name="app-processed-changelog")
    batched = BatchedTable(table, packed=True)  # type: ignore[arg-type]
    producer = FakeProducer()
    for n in range(300):
        batched.put(n % 3, f"event-{n}".encode(), b"row %d" % n)

    async def flush() -> list[asyncio.Future[Any]]:
        return await batched.flush(producer)

    futures = asyncio.run(flush())

    assert len(futures) == 3 and len(producer.sent) == 3
    assert table.data.puts == 300
    restored: dict[int, dict[bytes, bytes]] = {}
    for topic, key, value, partition, _ in producer.sent:
        assert topic == "app-processed-changelog" and is_pack(key) and value is not None
        assert partition is not None
        restored.setdefault(partition, {}).update(unpack_rows(value))
    assert restored == {partition: dict(rows) for partition, rows in table.data.dbs.items()}


def test_a_flush_larger_than_a_pack_goes_in_several_records() -> None:
    table = FakeTable(name="processed", changelog_topic_name="app-processed-changelog")
    batched = BatchedTable(table, packed=True)  # type: ignore[arg-type]
    producer = FakeProducer()
    value = b"x" * 1_000
    count = 3 * PACK_BYTES_MAX // len(value)
    for n in range(count):
        batched.put(0, f"event-{n}".encode(), value)
    asyncio.run(batched.flush(producer))
    assert 3 <= len(producer.sent) <= 4
    assert sum(len(list(unpack_rows(sent[2] or b""))) for sent in producer.sent) == count


class _Message:
    def __init__(self, tp: TP, offset: int, key: bytes, value: bytes | None) -> None:
        self.tp, self.offset, self.partition = tp, offset, tp.partition
        self.key, self.value = key, value


class _Event:
    def __init__(self, message: _Message) -> None:
        self.message = message


def test_expanding_a_batch_replaces_each_pack_by_its_rows_in_order() -> None:
    tp = TP("app-processed-changelog", 1)
    events = [
        _Event(_Message(tp, 7, b"plain", b"p")),
        _Event(_Message(tp, 8, pack_key(), pack_rows([(b"a", b"1"), (b"plain", b"2")]))),
    ]
    expanded = [
        (e.message.key, e.message.value, e.message.offset)
        for e in expand_packs(events)  # type: ignore[arg-type]
    ]
    assert expanded == [(b"plain", b"p", 7), (b"a", b"1", 8), (b"plain", b"2", 8)]


def test_faust_restores_plain_and_packed_records_into_the_same_rocksdb_rows(
    tmp_path: Path,
) -> None:
    app = faust.App(
        "packed-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1"
    )
    table = packed_rows_table(app, "processed", partitions=2, key_type=bytes, value_type=bytes)
    tp = TP(table.changelog_topic.get_topic_name(), 1)  # type: ignore[attr-defined]
    events = [
        _Event(_Message(tp, 0, b"e-1", b"old")),
        _Event(_Message(tp, 1, pack_key(), pack_rows([(b"e-2", b"two"), (b"e-1", b"new")]))),
        _Event(_Message(tp, 2, pack_key(), pack_rows([(b"e-3", b"three")]))),
    ]
    table.apply_changelog_batch(events)  # type: ignore[arg-type]
    store: Any = table.data
    db = store._db_for_partition(1)
    assert {key: db.get(key) for key in (b"e-1", b"e-2", b"e-3")} == {
        b"e-1": b"new",
        b"e-2": b"two",
        b"e-3": b"three",
    }
    stored = [key for key, _ in db.items()]
    rows = sorted(key for key in stored if not key.startswith(b"__faust"))
    assert rows == [b"e-1", b"e-2", b"e-3"]  # no pack stored as a row
    assert store.persisted_offset(tp) == 2


# --- packed delta records (streams/batched.py, delta_sends) ---------------------------------


def _coalesced(keys: list[str], table: str = "vendors") -> dict[tuple[str, str], list[Any]]:
    return {
        (table, key): [{"delta": {"n": n}, "position": [0, n, 0]}] for n, key in enumerate(keys)
    }


def test_deltas_of_one_table_and_partition_travel_in_one_record_to_the_rows_partition() -> None:
    keys = [f"VEN-{n:03d}" for n in range(40)]
    sends = delta_sends(_coalesced(keys), lambda topic: 4)
    received: dict[str, tuple[int | None, list[Any]]] = {}
    for send in sends:
        body = orjson.loads(send.value or b"")
        assert send.topic == "fin.internal.deltas.vendors"
        if is_pack(send.key):
            assert send.partition is not None
            for key, items in body["rows"]:
                received[key] = (send.partition, items)
        else:
            assert send.key is not None
            received[send.key.decode()] = (partition_for(send.key, 4), body["deltas"])
    assert len(sends) <= 4
    assert {key: partition for key, (partition, _) in received.items()} == {
        key: partition_for(key.encode(), 4) for key in keys
    }
    assert {key: items for key, (_, items) in received.items()} == {
        key: items for (_, key), items in _coalesced(keys).items()
    }


def test_a_lone_row_or_an_unknown_partition_count_keeps_its_plain_keyed_record() -> None:
    (lone,) = delta_sends(_coalesced(["VEN-001"]), lambda topic: 4)
    assert lone.key == b"VEN-001" and lone.partition is None
    unknown = delta_sends(_coalesced(["VEN-001", "VEN-002", "VEN-003"]), lambda topic: None)
    assert [send.key for send in unknown] == [b"VEN-001", b"VEN-002", b"VEN-003"]


def test_a_pack_larger_than_the_limit_is_cut_into_several_records() -> None:
    big = "x" * 2_000
    coalesced = {
        ("periods", f"2024-{n:04d}"): [{"delta": {"memo": big}, "position": [0, n, 0]}]
        for n in range(400)
    }
    sends = delta_sends(coalesced, lambda topic: 1)
    assert len(sends) >= 3
    assert all(len(send.value or b"") <= PACK_BYTES_MAX + 4_096 for send in sends)
    keys = [key for send in sends for key, _ in orjson.loads(send.value or b"")["rows"]]
    assert keys == [key for _, key in coalesced]


def test_the_direct_write_batch_leaves_rocksdb_as_fausts_own_path_does(tmp_path: Path) -> None:
    """``apply_to_rocksdict`` (packs put straight into the write batch) against faust's
    ``RocksDBStore.apply_changelog_batch`` fed the expanded rows: the same rows, deletions and
    persisted offsets."""
    stores: list[Any] = []
    for name, table_of in (("direct", packed_rows_table), ("faust", None)):
        app = faust.App(
            f"apply-{name}",
            store="rocksdb://",
            datadir=str(tmp_path / name),
            broker="kafka://127.0.0.1:1",
        )
        options: dict[str, Any] = {"partitions": 2, "key_type": bytes, "value_type": bytes}
        table: Any = (
            table_of(app, "processed", **options)
            if table_of is not None
            else app.Table("processed", **options)
        )
        tp0 = TP(table.changelog_topic.get_topic_name(), 0)
        tp1 = TP(table.changelog_topic.get_topic_name(), 1)
        events = [
            _Event(_Message(tp0, 0, b"e-1", b"one")),
            _Event(_Message(tp1, 3, pack_key(), pack_rows([(b"e-2", b"two"), (b"e-3", b"x")]))),
            _Event(_Message(tp0, 1, pack_key(), pack_rows([(b"e-1", b"new"), (b"e-4", b"four")]))),
            _Event(_Message(tp1, 4, b"e-3", None)),  # a tombstone deletes
            _Event(_Message(tp1, 5, b"e-5", b"five")),
        ]
        if table_of is not None:
            table.apply_changelog_batch(events)
        else:
            table.data.apply_changelog_batch(
                expand_packs(events),  # type: ignore[arg-type]
                to_key=None,
                to_value=None,
            )
        stores.append(table.data)
    direct, reference = stores
    for partition in (0, 1):
        assert dict(direct._db_for_partition(partition).items()) == dict(
            reference._db_for_partition(partition).items()
        )
    assert direct.persisted_offset(TP("apply-direct-processed-changelog", 1)) == 5
    assert direct.persisted_offset(TP("apply-direct-processed-changelog", 0)) == 1
    assert reference.persisted_offset(TP("apply-faust-processed-changelog", 0)) == 1
