"""The dead-letter contract: original bytes unchanged, the reason and source position in headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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
    "SourcePosition",
    "dead_letter_headers",
    "header_map",
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
