"""Events the ingest stage read, handed to the posting stage of the same worker by their bytes.

The posting stage reads the very bytes the ingest stage decoded and validated: a by-event-id
record carries the source record's value unchanged (``streams/pipeline.py``). When both stages
run in one worker (always with one worker; with several, whenever the source partition and the
event id's by-id partition are both its own), the posting stage takes the decoded record and
the event from here instead of decoding the Avro a second time (~30-50 µs an event in the
worker). A decode is a function of the bytes alone: the schema id is in them, and a registry
never changes the schema of an id. So a hit gives exactly what a decode would; a miss (another
worker ingested it, the entry was evicted, a restart) decodes as before.

Bounded: at most ``capacity`` entries, oldest evicted first; an entry is removed when taken. In
a drain, the ingest agent runs at most a few batches ahead of the posting agent (they take
turns on one event loop, ``FIN_BATCH_MAX`` records each).
"""

from __future__ import annotations

from collections import OrderedDict

from ledger.events import Event
from schemas.codec import Decoded

CAPACITY = 8192


class ValidatedEvents:
    """(contract topic, value bytes) -> the ingest stage's decoded record and event."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, bytes], tuple[Decoded, Event]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, topic: str, value: bytes, decoded: Decoded, event: Event) -> None:
        entries = self._entries
        entries[(topic, value)] = (decoded, event)
        if len(entries) > self._capacity:
            entries.popitem(last=False)

    def take(self, topic: str, value: bytes) -> tuple[Decoded, Event] | None:
        found = self._entries.pop((topic, value), None)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found
