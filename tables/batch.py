"""Table writes of a batch of events: one write (one changelog record) per key per batch.

An agent takes its records in batches (``stream.take_events``); the stages read table rows through
the batch, so a row changed by an earlier record of the batch is seen by the later ones, and the
batch writes each changed row once at the end, after the batch's records were sent. A hot row (the
month's account balances, a partition's outcome counts) then costs one changelog record per batch
instead of one per event.

faust writes a table row to the RocksDB store and the changelog partition of the event being
processed (``faust.streams.current_event``). In a batch that is the event that last changed the
row, set explicitly for the write: every key of these tables is written only from records of the
partition that owns it, so that event's partition is the key's partition.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from faust.streams import Stream, _current_event
from faust.types import EventT, StreamT, TableT

BATCH_MAX = 500
"""Records per batch at most: enough to collapse hot rows, small enough to keep latency low."""
BATCH_WITHIN_S = 0.01
"""How long a batch waits to fill up; under load batches fill well before this."""


def batches(stream: StreamT[Any]) -> AsyncIterator[Sequence[EventT[Any]]]:
    """The stream's events in batches; faust acknowledges them after the batch is processed."""
    return cast(Stream[Any], stream).take_events(BATCH_MAX, BATCH_WITHIN_S)


@contextmanager
def as_current(event: EventT[Any]) -> Iterator[None]:
    """Make ``event`` faust's current event (the partition a table write goes to)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class TableBatch:
    """Reads through pending writes; ``flush`` writes every changed row once."""

    def __init__(self, tables: Mapping[str, TableT[Any, Any]]) -> None:
        self._tables = tables
        self._pending: dict[tuple[str, bytes], tuple[bytes, EventT[Any]]] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        pending = self._pending.get((table, key))
        if pending is not None:
            return pending[0]
        value = self._tables[table].get(key)
        return value if isinstance(value, bytes) else None

    def put(self, table: str, key: bytes, value: bytes, event: EventT[Any]) -> None:
        self._pending[(table, key)] = (value, event)

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write every pending row, each as the event that last changed it; returns the count."""
        written = len(self._pending)
        for (table, key), (value, event) in self._pending.items():
            with as_current(event):
                self._tables[table][key] = value
        self._pending.clear()
        return written
