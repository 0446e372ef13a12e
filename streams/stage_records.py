"""The by-event-id record and what every stage answers with when it refuses a record.

The ingest stage writes a valid event's original bytes to the by-event-id topic, re-keyed by
event id, with its origin in headers (``H_SOURCE_*``); the posting stage reads them back as a
``ByIdRecord``. A refused record becomes a dead letter with its original bytes, its source
position and a named reason (``dead_letter``, ``rejected``); an exception while processing one
becomes the dead letter ``processing_error``. No faust here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.rejections import Reason, Rejection
from settings import BY_EVENT_ID_TOPIC, DLQ_TOPIC
from streams.deadletter import (
    SourcePosition,
    dead_letter_headers,
    processing_attempt,
)
from streams.effects import Outcome, Send, StageResult

log = logging.getLogger(__name__)

# Headers the ingest stage puts on the by-event-id record so later stages know its origin.
H_SOURCE_TOPIC = "fin.source.topic"
H_SOURCE_PARTITION = "fin.source.partition"
H_SOURCE_OFFSET = "fin.source.offset"
H_SOURCE_TIMESTAMP_MS = "fin.source.timestamp_ms"
H_ORIGINAL_KEY = "fin.original_key"
# A compensation whose target has not been posted yet is parked: sent again to the end of its
# by-event-id partition, to be looked at no earlier than H_PARK_NOT_BEFORE_MS. Its target travels
# through another topic and may simply be a little behind; only after PARK_ATTEMPTS_MAX tries
# (about PARK_ATTEMPTS_MAX * PARK_DELAY_S) is it rejected as compensation_target_unknown.
H_PARK_ATTEMPT = "fin.park.attempt"
H_PARK_NOT_BEFORE_MS = "fin.park.not_before_ms"
PARK_ATTEMPTS_MAX = 10
PARK_DELAY_S = 1.0
# A compensation takes two by-event-id records, three when its id turns out to be taken
# (docs/design.md, Idempotency): the *reserve* record (from the ingest stage, keyed by the
# target) decides the reversal where the target's processed record lives and marks the target;
# the *claim* record (keyed by the compensation's own event id) records processed[compensation
# id] where any event with that id is recorded, and posts the reversal; if the id is already
# owned by another payload, the claim is event_id_conflict and a *release* record (keyed by the
# target again) lifts the target's mark. H_STEP names the step; absent means reserve.
H_STEP = "fin.compensation.step"
STEP_CLAIM = b"claim"
STEP_RELEASE = b"release"
# On a claim: the reversal's posting (JSON), decided by the reserve step from the target.
H_REVERSAL = "fin.compensation.reversal"
# Headers a step record does not take over from the record that sends it.
_STEP_HEADERS = frozenset((H_PARK_ATTEMPT, H_PARK_NOT_BEFORE_MS, H_STEP, H_REVERSAL))


def reservation_key(compensation_event_id: str) -> str:
    """The processed row, in the target's partition, of a compensation's reserve step.

    Not the compensation's own event id: that row belongs to the claim, in the partition of the
    id, and the two partitions may be one. Event ids are UUIDs, so no event id looks like this.
    """
    return f"reversal|{compensation_event_id}"


def dead_letter(
    rejection: Rejection,
    *,
    key: bytes | None,
    value: bytes | None,
    source: SourcePosition,
    now: datetime,
    event_id: str | None = None,
    attempts: int = 1,
) -> Send:
    headers = dead_letter_headers(
        reason=str(rejection.reason),
        detail=rejection.detail,
        source=source,
        rejected_at=now,
        attempts=attempts,
        event_id=event_id,
    )
    return Send(DLQ_TOPIC, key, value, tuple(headers))


def received_time(position: SourcePosition, now: datetime) -> datetime:
    if position.timestamp_ms is None or position.timestamp_ms <= 0:
        return now
    return datetime.fromtimestamp(position.timestamp_ms / 1000, UTC)


def rejected(
    rejection: Rejection,
    key: bytes | None,
    value: bytes | None,
    position: SourcePosition,
    now: datetime,
    *,
    event_id: str | None = None,
    attempts: int = 1,
) -> StageResult:
    log.warning(
        "rejected %s[%d]@%d event_id=%s reason=%s: %s",
        position.topic,
        position.partition,
        position.offset,
        event_id or "-",
        rejection.reason,
        rejection.detail,
    )
    return StageResult(
        outcome=Outcome.REJECTED,
        reason=str(rejection.reason),
        event_id=event_id,
        sends=(
            dead_letter(
                rejection,
                key=key,
                value=value,
                source=position,
                now=now,
                event_id=event_id,
                attempts=attempts,
            ),
        ),
    )


@dataclass(frozen=True)
class ByIdRecord:
    """A record of the by-event-id topic, with the origin the ingest stage wrote into headers."""

    key: bytes
    value: bytes
    headers: Mapping[str, bytes]
    partition: int
    offset: int

    @property
    def source(self) -> SourcePosition:
        return SourcePosition(
            topic=self.headers[H_SOURCE_TOPIC].decode(),
            partition=int(self.headers[H_SOURCE_PARTITION]),
            offset=int(self.headers[H_SOURCE_OFFSET]),
            timestamp_ms=int(self.headers[H_SOURCE_TIMESTAMP_MS]),
        )

    @property
    def original_key(self) -> bytes | None:
        return self.headers.get(H_ORIGINAL_KEY)

    @property
    def attempts(self) -> int:
        return processing_attempt(self.headers)

    @property
    def park_attempt(self) -> int:
        return int(self.headers.get(H_PARK_ATTEMPT, b"0"))

    @property
    def park_not_before_ms(self) -> int | None:
        raw = self.headers.get(H_PARK_NOT_BEFORE_MS)
        return int(raw) if raw is not None else None

    def park_wait_s(self, now_s: float) -> float:
        """How long to hold this record before processing it: a parked compensation gives its
        target time to arrive (bounded by PARK_DELAY_S); 0 for any other record."""
        not_before_ms = self.park_not_before_ms
        if not_before_ms is None:
            return 0.0
        return max(0.0, min(not_before_ms / 1000 - now_s, PARK_DELAY_S))

    def parked(self, now: datetime) -> Send:
        """This record again, at the end of its partition, to be retried after a delay."""
        headers = {
            **self.headers,
            H_PARK_ATTEMPT: str(self.park_attempt + 1).encode(),
            H_PARK_NOT_BEFORE_MS: str(int((now.timestamp() + PARK_DELAY_S) * 1000)).encode(),
        }
        return Send(BY_EVENT_ID_TOPIC, self.key, self.value, tuple(headers.items()))

    @property
    def step(self) -> bytes | None:
        """A compensation's step (STEP_CLAIM, STEP_RELEASE), None for a reserve or any event."""
        return self.headers.get(H_STEP)

    def step_send(self, step: bytes, key: str, extra: tuple[tuple[str, bytes], ...] = ()) -> Send:
        """This compensation's next step: its bytes and origin, keyed for that step's partition."""
        headers = tuple(
            (name, value) for name, value in self.headers.items() if name not in _STEP_HEADERS
        )
        return Send(BY_EVENT_ID_TOPIC, key.encode(), self.value, (*headers, (H_STEP, step), *extra))


def source_position(contract_topic: str, message: Any) -> SourcePosition:
    """Where a consumed source record (faust's ``Message``) sits, under its contract name."""
    timestamp_ms = int(message.timestamp * 1000) if message.timestamp else None
    return SourcePosition(contract_topic, message.partition, message.offset, timestamp_ms)


def headers_as_bytes(headers: Any) -> dict[str, bytes]:
    """A consumed record's headers by name (faust gives a list of pairs or a mapping)."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {
        str(key): value if isinstance(value, bytes) else str(value).encode() for key, value in items
    }


def by_id_record(message: Any, headers: Mapping[str, bytes]) -> ByIdRecord:
    """The by-event-id record a consumed message (faust's ``Message``) carries."""
    assert message.key is not None and message.value is not None
    return ByIdRecord(
        key=message.key,
        value=message.value,
        headers=headers,
        partition=message.partition,
        offset=message.offset,
    )


def processing_error(
    exc: BaseException,
    *,
    key: bytes | None,
    value: bytes | None,
    source: SourcePosition,
    now: datetime,
    event_id: str | None,
    attempts: int,
) -> StageResult:
    """A record a stage raised on (a defect, or an output the producer refused): its dead
    letter, named ``processing_error``, with the exception in the detail; logged with the
    traceback."""
    log.error(
        "processing_error %s[%d]@%d event_id=%s: %r",
        source.topic,
        source.partition,
        source.offset,
        event_id or "-",
        exc,
        exc_info=exc,
    )
    return rejected(
        Rejection(Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"),
        key,
        value,
        source,
        now,
        event_id=event_id,
        attempts=attempts,
    )
