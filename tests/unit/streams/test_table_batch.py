"""Batched table writes: one write per key, made as the event that last changed the key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.streams import current_event

from tables.batch import TableBatch, as_current


class RecordingTable(dict[bytes, bytes]):
    """Remembers, for every write, the partition faust would send its changelog record to."""

    def __init__(self, rows: dict[bytes, bytes] | None = None) -> None:
        super().__init__(rows or {})
        self.writes: list[tuple[bytes, bytes, int]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        assert event is not None, "a table write outside of any event"
        self.writes.append((key, value, event.message.partition))
        super().__setitem__(key, value)


class _Event:
    """Stands in for a faust event (faust keeps a weak reference to the current one)."""

    def __init__(self, partition: int, offset: int) -> None:
        self.message = SimpleNamespace(partition=partition, offset=offset)


def _event(partition: int, offset: int) -> Any:
    return _Event(partition, offset)


def test_reads_see_the_batch_s_own_writes_and_flush_writes_each_key_once() -> None:
    periods = RecordingTable({b"2024-03": b"v0"})
    batch = TableBatch({"periods": periods})  # type: ignore[dict-item]
    assert batch.get("periods", b"2024-03") == b"v0"
    first, second, third = _event(1, 10), _event(1, 11), _event(3, 4)
    batch.put("periods", b"2024-03", b"v1", first)
    batch.put("periods", b"2024-03", b"v2", second)
    batch.put("periods", b"2024-04", b"w1", third)
    assert batch.get("periods", b"2024-03") == b"v2"
    assert periods.writes == []  # nothing written before the flush
    assert batch.flush() == 2
    assert periods.writes == [(b"2024-03", b"v2", 1), (b"2024-04", b"w1", 3)]
    assert len(batch) == 0


def test_a_key_never_written_reads_none() -> None:
    batch = TableBatch({"stats": RecordingTable()})  # type: ignore[dict-item]
    assert batch.get("stats", b"post|0") is None


def test_as_current_restores_the_previous_event() -> None:
    outer, inner = _event(0, 1), _event(2, 5)
    with as_current(outer):
        with as_current(inner):
            assert current_event() is inner
        assert current_event() is outer
