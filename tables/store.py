"""Batched table writes: each row written once per batch, its changelog record sent in bulk.

faust's own table write (``table[key] = value``) costs ~330 µs here: a RocksDB put, a
``FutureMessage`` through faust's producer buffer, a delivery callback that writes the persisted
offset to RocksDB once per record, and sensors on every step. A batch of a few hundred events
touches far fewer rows than it has events (the same period, department, customer again and
again), so the batched runtime keeps a record cache like Kafka Streams' before its changelog:

- ``get(partition, key)`` reads the cache first, then the partition's RocksDB database;
- ``put(partition, key, value)`` only fills the cache;
- ``flush()`` writes every cached row to RocksDB once and sends one changelog record per row
  straight to the producer (no faust round trip), then returns the delivery futures;
- ``mark_persisted()`` records, once per partition, the highest changelog offset delivered,
  which is where faust's recovery starts reading next time (faust does that per record).

The row goes to RocksDB before its changelog record is acknowledged, as with faust's own
writes; the caller acknowledges its input only after every delivery of the batch has
succeeded, so a crash in between replays the input, and the replay writes every row it touches
again (see docs/design.md, crash windows). The partition of a row is the partition of the input
record that changed it (faust's rule: the changelog partition is the source partition), which
the caller passes explicitly because a batch mixes partitions.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import faust
import rocksdict
from faust.types import TP, EventT, TableT

from errors import FinError
from tables import chunked


class StoreNotReadyError(FinError):
    """A partition's RocksDB database is not open on this worker (not assigned here)."""


# --- packed changelog records ------------------------------------------------------------
#
# A table whose rows are each written once and never again in the same way (``processed``: one
# row per event id) would send one changelog record per event. With ``packed=True`` a batch's
# rows of one partition travel in a few records instead: the key is ``PACKED_KEY_PREFIX`` and
# a random id (never reused, so compaction never drops one pack for another), the value the
# rows, length-prefixed. Restoring expands a pack into its rows, in order, through faust's own
# RocksDB write (``PackedRowsTable.apply_changelog_batch``), so the database holds exactly the
# rows it held before; a later pack (or a plain record) for the same key wins, as any later
# changelog record does. Plain and packed records can be mixed in one changelog.

PACKED_KEY_PREFIX = b"\x00fin-rows\x00"
PACK_BYTES_MAX = 256 * 1024  # well under a changelog topic's default 1 MiB record limit
_LENGTHS = struct.Struct(">II")


def is_pack(key: bytes | None) -> bool:
    return key is not None and key.startswith(PACKED_KEY_PREFIX)


def pack_key() -> bytes:
    return PACKED_KEY_PREFIX + uuid.uuid4().hex.encode()


def pack_rows(rows: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Rows as one value: per row, the key's and the value's length (4 bytes each), then both."""
    parts: list[bytes] = []
    for key, value in rows:
        parts.append(_LENGTHS.pack(len(key), len(value)))
        parts.append(key)
        parts.append(value)
    return b"".join(parts)


def unpack_rows(packed: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The rows of ``pack_rows``, in order; raises ``ValueError`` on a truncated pack."""
    at, end = 0, len(packed)
    lengths, header = _LENGTHS.unpack_from, _LENGTHS.size
    while at < end:
        if end - at < header:
            raise ValueError(f"a packed changelog record is truncated at byte {at}")
        key_length, value_length = lengths(packed, at)
        at += header
        if end - at < key_length + value_length:
            raise ValueError(f"a packed changelog record is truncated at byte {at}")
        middle = at + key_length
        at = middle + value_length
        yield packed[middle - key_length : middle], packed[middle:at]


def chunks(
    rows: Iterable[tuple[bytes, bytes]], limit: int = PACK_BYTES_MAX
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Rows in groups of at most ``limit`` packed bytes (a larger row goes alone)."""
    group: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in rows:
        row_size = _LENGTHS.size + len(key) + len(value)
        if group and size + row_size > limit:
            yield group
            group, size = [], 0
        group.append((key, value))
        size += row_size
    if group:
        yield group


class ChangelogRow:
    """A changelog record in the shape faust's ``apply_changelog_batch`` reads
    (``event.message``): a row of a pack (at the pack's position: the persisted offset stays the
    pack's), or a record read by the bulk recovery reader
    (streams/faust_patches/fast_recovery.py)."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.tp = tp
        self.offset = offset
        self.partition = tp.partition
        self.key = key
        self.value = value

    @property
    def message(self) -> ChangelogRow:
        return self


def expand_packs(batch: Iterable[EventT[Any]]) -> Iterator[Any]:
    """The changelog events of ``batch``, each pack replaced by its rows, in order."""
    for event in batch:
        message = event.message
        if is_pack(message.key) and message.value is not None:
            for key, value in unpack_rows(message.value):
                yield ChangelogRow(message.tp, message.offset, key, value)
        else:
            yield event


class PackedRowsTable(faust.Table):  # type: ignore[misc,type-arg]
    """A faust table whose changelog may hold packs of rows (``BatchedTable(packed=True)``)."""

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        store = self.data
        if getattr(store, "use_rocksdict", False) and hasattr(store, "_db_for_partition"):
            apply_to_rocksdict(store, batch)
        else:
            super().apply_changelog_batch(expand_packs(batch))


def apply_to_rocksdict(store: Any, batch: Iterable[EventT[Any]]) -> None:
    """What faust's ``RocksDBStore.apply_changelog_batch`` does for a raw-bytes table (one
    write batch per partition, a record without a value deletes, then the highest offset of
    each changelog partition persisted), with each pack's rows put straight into the write
    batch: faust's loop, fed one object per row, took ~2.4 us a row, the bulk of a restore
    (a pack holds ~25 rows of ``processed``). faust's method's source is pinned
    (``streams/faust_patches/fast_recovery.py``, ``SOURCE_PINNED``): an upgrade that changes
    what it does fails a test, and this must then follow it."""
    batches: dict[int, Any] = {}
    offsets: dict[TP, int] = {}
    for event in batch:
        message = event.message
        tp, offset, partition = message.tp, message.offset, message.partition
        if offset > offsets.get(tp, -1):
            offsets[tp] = offset
        writes = batches.get(partition)
        if writes is None:
            writes = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
        key, value = message.key, message.value
        if key is None:
            raise ValueError(
                f"a changelog record without a key at {tp.topic}[{partition}]@{offset}"
            )
        if value is None:
            writes.delete(key)
        elif is_pack(key):
            for row_key, row_value in unpack_rows(value):
                writes.put(row_key, row_value)
        else:
            writes.put(key, value)
    for partition, writes in batches.items():
        store._db_for_partition(partition).write(writes)
    for tp, offset in offsets.items():
        store.set_persisted_offset(tp, offset)


def packed_rows_table(app: faust.App, name: str, **kwargs: Any) -> TableT[Any, Any]:
    """``app.Table(name, **kwargs)`` as a ``PackedRowsTable`` (what ``App.Table`` does, with
    this class)."""
    table = PackedRowsTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    app.tables.add(table)
    return table


class BatchedTable:
    """One faust table, written through a per-batch record cache."""

    def __init__(
        self,
        table: TableT[Any, Any],
        *,
        packed: bool = False,
        chunk_bytes: int = chunked.DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.table = table
        self._cache: dict[tuple[int, bytes], bytes] = {}
        # True: the rows of a flush go to the changelog in packs (a PackedRowsTable restores
        # them), a few records per partition instead of one per row.
        self.packed = packed
        # A row over this many bytes goes to the changelog in chunks (tables/chunked.py).
        self.chunk_bytes = chunk_bytes

    @property
    def _changelog_topic(self) -> str:
        name: str = self.table.changelog_topic_name  # type: ignore[attr-defined]
        return name

    @property
    def name(self) -> str:
        return str(self.table.name)

    @property
    def _store(self) -> Any:
        return self.table.data

    def get(self, partition: int, key: bytes) -> bytes | None:
        cached = self._cache.get((partition, key))
        if cached is not None:
            return cached
        db = self._store._db_for_partition(partition)
        value = db.get(key)
        if not isinstance(value, bytes):
            return None
        return chunked.assemble(key, value, db.get)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self._cache[(partition, key)] = value

    def touched(self) -> Iterator[tuple[int, bytes, bytes]]:
        for (partition, key), value in self._cache.items():
            yield partition, key, value

    def __len__(self) -> int:
        return len(self._cache)

    async def flush(
        self, producer: Any, keys: list[bytes] | None = None
    ) -> list[asyncio.Future[Any]]:
        """Write the cached rows to RocksDB and hand their changelog records to the producer.

        Returns the delivery futures; the cache is empty afterwards. ``keys``, if given, gets
        each record's key in the same order (a failed delivery's log names its row)."""
        if not self._cache:
            return []
        store = self._store
        topic = self._changelog_topic
        key_index = store._key_index
        futures: list[asyncio.Future[Any]] = []
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for (partition, key), value in self._cache.items():
            db = store._db_for_partition(partition)
            if self.packed:
                db.put(key, value)
                key_index[key] = partition
                by_partition.setdefault(partition, []).append((key, value))
                continue
            # RocksDB holds what the changelog holds, record by record and in the same order
            # (a large row as chunks and a header: tables/chunked.py).
            for name, record in chunked.records(key, value, db.get(key), self.chunk_bytes):
                if record is None:
                    db.delete(name)
                    key_index.pop(name, None)
                else:
                    db.put(name, record)
                    key_index[name] = partition
                futures.append(await producer.send(topic, name, record, partition, None, None))
                if keys is not None:
                    keys.append(name)
        for partition, rows in by_partition.items():
            for group in chunks(rows):
                key = pack_key()
                futures.append(
                    await producer.send(topic, key, pack_rows(group), partition, None, None)
                )
                if keys is not None:
                    keys.append(key)
        self._cache.clear()
        return futures

    def mark_persisted(self, futures: Iterable[asyncio.Future[Any]]) -> None:
        """After the futures of one ``flush`` completed: remember, once per partition, the
        highest changelog offset delivered. Batches may be in flight one behind the other
        (streams/batched.py), so each flush's futures are passed back explicitly."""
        highest: dict[int, int] = {}
        for future in futures:
            if not future.done() or future.cancelled() or future.exception() is not None:
                continue
            metadata = future.result()
            if metadata.offset > highest.get(metadata.partition, -1):
                highest[metadata.partition] = metadata.offset
        topic = self._changelog_topic
        store = self._store
        for partition, offset in highest.items():
            store.set_persisted_offset(TP(topic, partition), offset)

    def discard(self) -> None:
        """Forget a batch that will be processed again (nothing of it was acknowledged)."""
        self._cache.clear()


# --- reading a faust table's rows (a large row is stored as chunks: tables/chunked.py) ----


ESTIMATED_KEYS = "rocksdb.estimate-num-keys"


def _raw(table: Any, key: bytes) -> bytes | None:
    value = table.get(key)
    return value if isinstance(value, bytes) else None


def row_value(table: Any, key: bytes) -> bytes | None:
    """The row stored under ``key`` in ``table`` (a faust table of raw bytes), assembled if it
    was written in chunks; None if there is none."""
    return chunked.assemble(key, _raw(table, key), functools.partial(_raw, table))


def row_items(table: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every row of ``table``'s active partitions, assembled; chunk records are not rows."""
    get = functools.partial(_raw, table)
    for key, value in table.items():
        if chunked.is_row_key(key) and isinstance(value, bytes):
            row = chunked.assemble(key, value, get)
            if row is not None:
                yield key, row


def row_count(table: Any) -> int:
    """About how many keys ``table``'s active partitions hold: RocksDB's own estimate per
    partition, read in microseconds. Counting walked every key on the event loop (the
    ``processed`` table has one per event: 69 ms every 30 s after ~56,000 events in a bench
    run, growing without end); the estimate also counts chunk records and faust's offset key.
    A store that is not RocksDB (tests) is counted key by key, chunk records left out."""
    actives = getattr(table.data, "_dbs_for_actives", None)
    if actives is None:
        return sum(1 for key in table if chunked.is_row_key(key))
    return sum(int(db.property_int_value(ESTIMATED_KEYS) or 0) for db in actives())
