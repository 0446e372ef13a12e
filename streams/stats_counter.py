"""The durable outcome counts of an agent's batches (``stats`` rows), counted in memory."""

from __future__ import annotations

import orjson

from tables.store import BatchedTable


class StatsCounter:
    """The durable outcome counts (``stats`` rows) of one agent, counted in memory over a batch
    (each row parsed once, written once by ``stage``), with the rule of ``_counted`` in
    ``streams.pipeline``: a record at or below the row's watermark was counted before a crash
    and is not counted again, and the row is written again all the same so that its
    changelog has it (docs/design.md, crash windows)."""

    def __init__(self, stats: BatchedTable) -> None:
        self._stats = stats
        self._rows: dict[tuple[int, bytes], dict[str, int]] = {}

    def count(self, partition: int, key: str, offset: int, counters: tuple[str, ...]) -> None:
        slot = (partition, key.encode())
        row = self._rows.get(slot)
        if row is None:
            raw = self._stats.get(*slot)
            row = orjson.loads(raw) if raw is not None else {"watermark": -1}
            self._rows[slot] = row
        if offset <= row["watermark"]:
            return
        row["watermark"] = offset
        for name in counters:
            row[name] = row.get(name, 0) + 1

    def stage(self) -> BatchedTable:
        """Put the batch's rows in the table's record cache; the table, for ``flush``."""
        for (partition, key), row in self._rows.items():
            self._stats.put(partition, key, orjson.dumps(row))
        self._rows.clear()
        return self._stats
