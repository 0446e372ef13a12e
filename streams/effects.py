"""What a stage asks for: records to send and table rows to write (the hub carries them out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
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
    partition: int | None = None
    """The partition, when the sender chose it (a pack of rows for one partition); None: the
    key's partition (murmur2, as Kafka's default partitioner)."""


class Outcome(StrEnum):
    """What a stage did with one record (a StrEnum: it compares equal to its value's text)."""

    FORWARDED = "forwarded"
    """Ingest: accepted and sent on by event id; posting: a compensation step sent on."""
    REJECTED = "rejected"
    """Dead-lettered with a named reason."""
    POSTED = "posted"
    """Posted for the first time: the journal entry and its deltas sent."""
    REEMIT = "reemit"
    """This very by-id record again after a crash: the recorded entry and deltas sent again."""
    REPLAY = "replay"
    """A copy of a source record already accounted for (an upstream replay): nothing new."""
    DUPLICATE = "duplicate"
    """Another record with the same event id and content: recorded, not posted."""
    PARKED = "parked"
    """A compensation whose target is not posted yet, sent to the back of its partition."""
    RELEASED = "released"
    """A compensation's reservation of its target lifted (its claim was a conflict)."""
    APPLIED = "applied"
    """Table agents: a delta applied to its row."""
    SKIPPED = "skipped"
    """Table agents: a delta the row had already applied (its position guard)."""


@dataclass(frozen=True)
class StageResult:
    outcome: Outcome
    sends: tuple[Send, ...] = ()
    reason: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    table_writes: tuple[tuple[str, str, bytes], ...] = ()  # (table, key, value)
    event_timestamp: datetime | None = None
    alert_types: tuple[str, ...] = ()  # the table stage: the alerts its delta raised
    # The batched runtime coalesces deltas per row and batch instead of sending one record per
    # delta: (delta, position, source event id, the delta's JSON form), in the order the
    # posting produced them.
    deltas: tuple[tuple[Delta, Position, str, Mapping[str, Any]], ...] = ()

    def __post_init__(self) -> None:
        # An unknown outcome fails where it is made (a typo in text would pass the type check
        # of a caller that is not type-checked, e.g. a test).
        if not isinstance(self.outcome, Outcome):
            object.__setattr__(self, "outcome", Outcome(self.outcome))
