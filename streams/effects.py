"""What a stage asks for: records to send and table rows to write (the hub carries them out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.deltas import Delta
from ledger.reducers import Position


@dataclass(frozen=True)
class Send:
    """One record to produce. ``topic`` is the contract name; the hub adds any prefix."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class StageResult:
    outcome: str  # posted | rejected | duplicate | forwarded | replay | applied | skipped
    sends: tuple[Send, ...] = ()
    reason: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    table_writes: tuple[tuple[str, str, bytes], ...] = ()  # (table, key, value)
    event_timestamp: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The batched runtime coalesces deltas per row and batch instead of sending one record per
    # delta: (delta, position, source event id), in the order the posting produced them.
    deltas: tuple[tuple[Delta, Position, str], ...] = ()
