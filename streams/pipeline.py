"""What happens to one record at each stage, with no faust in sight.

Each stage takes a record and returns the effects to carry out (records to send, a table row to
write, an outcome for the metrics). The faust agents in ``streams/hub.py`` only execute these
effects, so every decision here is unit-testable and the benchmark baseline can reuse it.
"""

from __future__ import annotations

import logging
from datetime import datetime

import orjson

from ledger import validation
from ledger.chart import ChartOfAccounts
from ledger.events import (
    CompensationRequested,
    Event,
)
from ledger.rejections import Rejection
from schemas.codec import Decoder
from settings import BY_EVENT_ID_TOPIC
from streams.deadletter import (
    HEADER_REPLAY_ATTEMPT,
    SourcePosition,
)
from streams.effects import Outcome, Send, StageResult
from streams.stage_records import (
    H_ORIGINAL_KEY,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TIMESTAMP_MS,
    H_SOURCE_TOPIC,
    received_time,
    rejected,
)
from streams.validated import ValidatedEvents

log = logging.getLogger(__name__)


class Ingest:
    """Source record → decoded, validated, re-keyed by event id; or a named rejection."""

    def __init__(
        self,
        decoder: Decoder,
        chart: ChartOfAccounts,
        *,
        validated: ValidatedEvents | None = None,
    ) -> None:
        self._decoder = decoder
        self._chart = chart
        # Each event forwarded is left here for this worker's posting stage (streams/validated.py).
        self._validated = validated

    def process(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        position: SourcePosition,
        now: datetime,
        attempts: int = 1,
    ) -> StageResult:
        decoded = self._decoder.decode(topic, value)
        if isinstance(decoded, Rejection):
            return rejected(decoded, key, value, position, now, attempts=attempts)
        received_at = received_time(position, now)
        checked = validation.validate(
            decoded.record, topic=topic, received_at=received_at, chart=self._chart
        )
        if isinstance(checked, Rejection):
            event_id = decoded.record.get("event_id")
            return rejected(
                checked,
                key,
                value,
                position,
                now,
                event_id=event_id if isinstance(event_id, str) else None,
                attempts=attempts,
            )
        if self._validated is not None and value is not None:
            self._validated.put(topic, value, decoded, checked)
        routing_key = _routing_key(checked)
        headers: list[tuple[str, bytes]] = [
            (H_SOURCE_TOPIC, topic.encode()),
            (H_SOURCE_PARTITION, str(position.partition).encode()),
            (H_SOURCE_OFFSET, str(position.offset).encode()),
            (H_SOURCE_TIMESTAMP_MS, str(int(received_at.timestamp() * 1000)).encode()),
        ]
        if key is not None:
            headers.append((H_ORIGINAL_KEY, key))
        if attempts > 1:
            headers.append((HEADER_REPLAY_ATTEMPT, str(attempts).encode()))
        return StageResult(
            outcome=Outcome.FORWARDED,
            sends=(Send(BY_EVENT_ID_TOPIC, routing_key.encode(), value, tuple(headers)),),
            event_type=checked.event_type,
            event_id=checked.event_id,
        )


def _routing_key(event: Event) -> str:
    # A compensation travels first with the event it reverses: that partition holds the
    # original's processed record, which the reversal needs, and every compensation of one
    # target meets there in its fin.commands order. Its own id is claimed afterwards (Posting).
    if isinstance(event, CompensationRequested):
        return event.target_event_id
    return event.event_id


def stats_key_ingest(topic: str, partition: int) -> str:
    return f"in|{topic}|{partition}"


def stats_key_posting(partition: int) -> str:
    return f"post|{partition}"


def _counted(current: bytes | None, offset: int, names: tuple[str, ...]) -> bytes | None:
    row: dict[str, int] = orjson.loads(current) if current is not None else {"watermark": -1}
    if offset <= row["watermark"]:
        return None
    row["watermark"] = offset
    for name in names:
        row[name] = row.get(name, 0) + 1
    return orjson.dumps(row)


def ingest_counters(outcome: str) -> tuple[str, ...]:
    """The ingest stats counters one record with ``outcome`` adds to."""
    return ("consumed", "rejected") if outcome == "rejected" else ("consumed",)


def count_ingest(current: bytes | None, offset: int, outcome: str) -> bytes | None:
    """The ingest stats row after counting the record at ``offset``; None if already counted."""
    return _counted(current, offset, ingest_counters(outcome))


POSTING_COUNTERS = {
    "posted": "posted",
    "reemit": "posted",
    "duplicate": "duplicates",
    "rejected": "rejected",
}


def count_posting(current: bytes | None, offset: int, outcome: str) -> bytes | None:
    """The posting stats row after counting ``outcome``; a replay copy counts nothing.

    A re-emission is the very by-id record that posted, back after a crash: it counts as a
    posting, once, because the row's watermark refuses an offset it has already counted.
    """
    return _counted(current, offset, posting_counters(outcome))


def posting_counters(outcome: str) -> tuple[str, ...]:
    """The posting stats counters one by-id record with ``outcome`` adds to (a replay copy or
    a forwarded compensation step: none)."""
    name = POSTING_COUNTERS.get(outcome)
    return (name,) if name else ()
