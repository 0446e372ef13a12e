"""The dead-letter contract: original bytes unchanged, the reason and source position in headers.

The write side (``dead_letter_headers``) is the stages'; the read side (``DeadLetter``, a record
of ``fin.dlq`` read back, and its ``DlqPosition``) is shared by the operator tools
(``tools/dlq*.py``) and the status page's tail of the topic (``streams.dead_letter_tail``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from errors import FinError
from ledger.contract import (
    HEADER_ATTEMPTS,
    HEADER_DETAIL,
    HEADER_EVENT_ID,
    HEADER_REASON,
    HEADER_REJECTED_AT,
    HEADER_REPLAY_ATTEMPT,
    HEADER_REPLAY_OF,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TIMESTAMP_MS,
    HEADER_SOURCE_TOPIC,
)

# The header names are the contract's (ledger/contract.py), re-exported for the stages and
# tools that write and read dead letters.
__all__ = [
    "DETAIL_LENGTH_MAX",
    "HEADER_ATTEMPTS",
    "HEADER_DETAIL",
    "HEADER_EVENT_ID",
    "HEADER_REASON",
    "HEADER_REJECTED_AT",
    "HEADER_REPLAY_ATTEMPT",
    "HEADER_REPLAY_OF",
    "HEADER_SOURCE_OFFSET",
    "HEADER_SOURCE_PARTITION",
    "HEADER_SOURCE_TIMESTAMP_MS",
    "HEADER_SOURCE_TOPIC",
    "ConsumedRecord",
    "DeadLetter",
    "DlqError",
    "DlqPosition",
    "SourcePosition",
    "aware",
    "dead_letter_headers",
    "header_map",
    "int_or_none",
    "processing_attempt",
]


# A detail longer than this is cut: headers travel with every record and must stay small.
DETAIL_LENGTH_MAX = 1000


@dataclass(frozen=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def dead_letter_headers(
    *,
    reason: str,
    detail: str,
    source: SourcePosition,
    rejected_at: datetime,
    attempts: int = 1,
    event_id: str | None = None,
) -> list[tuple[str, bytes]]:
    headers = [
        (HEADER_REASON, reason.encode()),
        (HEADER_DETAIL, detail[:DETAIL_LENGTH_MAX].encode("utf-8", "replace")),
        (HEADER_SOURCE_TOPIC, source.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(source.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(source.offset).encode()),
        (HEADER_REJECTED_AT, rejected_at.astimezone(UTC).isoformat().encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
    ]
    if source.timestamp_ms is not None:
        headers.append((HEADER_SOURCE_TIMESTAMP_MS, str(source.timestamp_ms).encode()))
    if event_id is not None:
        headers.append((HEADER_EVENT_ID, event_id.encode()))
    return headers


def header_map(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    """Headers as text, whatever shape the client library hands them over in."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        key: (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        for key, value in items
    }


def processing_attempt(headers: Mapping[str, bytes]) -> int:
    """Which attempt at processing a source record this is: 1, or what a replay wrote on it."""
    raw = headers.get(HEADER_REPLAY_ATTEMPT)
    try:
        return max(1, int(raw)) if raw is not None else 1
    except ValueError:
        return 1


# --- reading dead letters back ------------------------------------------------------------------


class ConsumedRecord(Protocol):
    """The fields of a consumed record read here (kafka-python's or aiokafka's ConsumerRecord)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class DlqError(FinError):
    """A dead-letter command cannot do what it was asked (bad input, missing topic, timeout)."""


@dataclass(frozen=True, order=True)
class DlqPosition:
    """Where a dead letter sits in the dead-letter topic; written ``partition:offset``."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> DlqPosition:
        partition, separator, offset = text.strip().partition(":")
        try:
            position = cls(int(partition), int(offset))
        except ValueError:
            position = None
        if not separator or position is None or position.partition < 0 or position.offset < 0:
            raise DlqError(f"not a dead-letter position (PARTITION:OFFSET): {text!r}")
        return position

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic: the refused record's bytes and FIN's headers."""

    position: DlqPosition
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumedRecord) -> DeadLetter:
        return cls(
            DlqPosition(record.partition, record.offset),
            record.timestamp,
            record.key,
            record.value,
            tuple(record.headers or ()),
        )

    @property
    def text_headers(self) -> dict[str, str]:
        return header_map(self.headers)

    @property
    def reason(self) -> str:
        return self.text_headers.get(HEADER_REASON, "(no reason)")

    @property
    def detail(self) -> str:
        return self.text_headers.get(HEADER_DETAIL, "")

    @property
    def event_id(self) -> str | None:
        return self.text_headers.get(HEADER_EVENT_ID)

    @property
    def source(self) -> SourcePosition | None:
        """The record's position in its source topic (contract name), if the headers say."""
        headers = self.text_headers
        topic = headers.get(HEADER_SOURCE_TOPIC)
        partition = int_or_none(headers.get(HEADER_SOURCE_PARTITION))
        offset = int_or_none(headers.get(HEADER_SOURCE_OFFSET))
        if not topic or partition is None or offset is None:
            return None
        return SourcePosition(topic, partition, offset)

    @property
    def attempts(self) -> int:
        """How many times the worker has processed this record, by its own count (at least 1)."""
        attempts = int_or_none(self.text_headers.get(HEADER_ATTEMPTS))
        return attempts if attempts is not None and attempts >= 1 else 1

    @property
    def rejected_at(self) -> datetime:
        text = self.text_headers.get(HEADER_REJECTED_AT)
        if text:
            try:
                return aware(datetime.fromisoformat(text))
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
