"""The rows a table agent last wrote, kept decoded, so the next batch need not parse them again.

Between two batches the tables agent used to read each row it touches back from its table as
JSON and parse it whole: at moderate rates a batch carries about one delta per hot row, so a
vendor row with hundreds of open items was parsed (and its amounts and dates re-read) for
every delta. This cache keeps, per row, the bytes the agent wrote and the row they encode; a
read that finds exactly those bytes in the table takes the row as it is.

Always correct, whatever happened in between (a rebalance, another worker's writes, a restore
from the changelog): the row is used only when the table holds the very bytes it was encoded
to, and a row is a pure function of its bytes. Bounded by the bytes it holds (the rows'
objects take a few times that); the rows written longest ago leave first.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Row = TypeVar("Row")

DEFAULT_BUDGET_BYTES = 8 * 1024 * 1024


class DecodedRows(Generic[Row]):
    """``slot`` -> (the bytes last written, the row they encode), oldest write first."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._rows: dict[Hashable, tuple[bytes, Row]] = {}
        self._budget = budget_bytes
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, slot: Hashable, raw: bytes) -> Row | None:
        """The row ``raw`` encodes, if ``raw`` is what was last written at ``slot``."""
        kept = self._rows.get(slot)
        if kept is None or (kept[0] is not raw and kept[0] != raw):
            self.misses += 1
            return None
        self.hits += 1
        return kept[1]

    def put(self, slot: Hashable, raw: bytes, row: Row) -> None:
        """Remember that ``raw``, just written at ``slot``, encodes ``row``."""
        rows = self._rows
        old = rows.pop(slot, None)
        if old is not None:
            self._bytes -= len(old[0])
        if len(raw) > self._budget:
            return
        rows[slot] = (raw, row)
        self._bytes += len(raw)
        while self._bytes > self._budget:
            oldest = next(iter(rows))
            self._bytes -= len(rows.pop(oldest)[0])
