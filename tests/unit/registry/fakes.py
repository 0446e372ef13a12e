"""Hand-written fakes for the registry's unit tests (no Kafka)."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import StoreError
from registry.store import LogRecord


class MemoryLog:
    """A `SchemaLog` in a list; `compacted()` does what Kafka's log cleaner eventually does."""

    def __init__(self, records: Sequence[LogRecord] = ()) -> None:
        self.records: list[LogRecord] = list(records)
        self.fail_appends = False
        self.appends = 0

    @property
    def end_offset(self) -> int:
        return self.records[-1].offset + 1 if self.records else 0

    async def read_from(self, offset: int) -> list[LogRecord]:
        return [record for record in self.records if record.offset >= offset]

    async def append(self, entries: Sequence[tuple[bytes, bytes | None]]) -> list[int]:
        if self.fail_appends:
            raise StoreError("Kafka is down (fake)")
        self.appends += 1
        offsets = []
        for key, value in entries:
            offset = self.end_offset
            self.records.append(LogRecord(offset=offset, key=key, value=value))
            offsets.append(offset)
        return offsets

    async def close(self) -> None:
        return None

    def compacted(self) -> MemoryLog:
        """Keep the latest record of each key, drop tombstones; offsets are kept, as in Kafka."""
        latest: dict[bytes, LogRecord] = {}
        for record in self.records:
            latest[record.key] = record
        kept = sorted(
            (record for record in latest.values() if record.value is not None),
            key=lambda record: record.offset,
        )
        return MemoryLog(kept)
