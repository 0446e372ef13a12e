"""What happens to one record at each stage, with no faust in sight.

Each stage takes a record and returns the effects to carry out (records to send, a table row to
write, an outcome for the metrics). The faust agents in ``streams/hub.py`` only execute these
effects, so every decision here is unit-testable and the benchmark baseline can reuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger import idempotency, master, rules, validation
from ledger.chain import ChainHead, head_key
from ledger.chart import ChartOfAccounts
from ledger.entries import JournalEntry, SourceRef, assert_balanced, chained, to_avro_dict
from ledger.entries import to_json_dict as entry_to_json
from ledger.events import (
    CompensationRequested,
    DepartmentChanged,
    Event,
    PeriodChanged,
    parse_event,
)
from ledger.rejections import Reason, Rejection
from schemas.codec import Decoder, Encoder
from settings import BY_EVENT_ID_TOPIC, DLQ_TOPIC, LEDGER_TOPIC
from streams.deadletter import (
    HEADER_REPLAY_ATTEMPT,
    SourcePosition,
    dead_letter_headers,
    processing_attempt,
)
from streams.effects import Send, StageResult
from streams.master_data import MASTER_DATA_TOPIC
from tables.state import delta_send

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


class Ingest:
    """Source record → decoded, validated, re-keyed by event id; or a named rejection."""

    def __init__(self, decoder: Decoder, chart: ChartOfAccounts) -> None:
        self._decoder = decoder
        self._chart = chart

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
            return _rejected(decoded, key, value, position, now, attempts=attempts)
        received_at = _received_at(position, now)
        checked = validation.validate(
            decoded.record, topic=topic, received_at=received_at, chart=self._chart
        )
        if isinstance(checked, Rejection):
            event_id = decoded.record.get("event_id")
            return _rejected(
                checked,
                key,
                value,
                position,
                now,
                event_id=event_id if isinstance(event_id, str) else None,
                attempts=attempts,
            )
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
            outcome="forwarded",
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


def _received_at(position: SourcePosition, now: datetime) -> datetime:
    if position.timestamp_ms is None or position.timestamp_ms <= 0:
        return now
    return datetime.fromtimestamp(position.timestamp_ms / 1000, UTC)


def _rejected(
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
        outcome="rejected",
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
    return _rejected(
        Rejection(Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"),
        key,
        value,
        source,
        now,
        event_id=event_id,
        attempts=attempts,
    )


class Posting:
    """By-event-id record → journal entry + deltas, exactly once per event id.

    ``processed`` is the table keyed by event id (the caller passes a get function and applies
    the returned writes), so this class stays free of faust.
    """

    def __init__(
        self,
        decoder: Decoder,
        encoder: Encoder,
        chart: ChartOfAccounts,
        *,
        coalesce_deltas: bool = False,
        chain: bool = True,
    ) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._chart = chart
        # True: every entry posted is linked into its partition's hash chain (ledger.chain),
        # its head kept in processed[chain|<partition>].
        self._chain = chain
        # True: deltas are returned in ``StageResult.deltas`` for the caller to coalesce per
        # row and batch; False: one delta record each, in ``sends``.
        self._coalesce_deltas = coalesce_deltas

    def process(
        self, record: ByIdRecord, get_processed: Callable[[str], bytes | None], now: datetime
    ) -> StageResult:
        source = record.source
        decoded = self._decoder.decode(source.topic, record.value)
        # The ingest stage already decoded and validated these exact bytes (only it writes
        # by-event-id records); a failure now is a bug or a registry that forgot a schema, and
        # must not be swallowed. Its checks are not run again (~20 µs an event): the record is
        # only parsed into its event, which raises on anything malformed.
        if isinstance(decoded, Rejection):
            raise RuntimeError(f"by-id record no longer decodes: {decoded}")
        event = parse_event(decoded.record)
        source_ref = SourceRef(
            event_id=event.event_id,
            event_type=event.event_type,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )
        fingerprint = idempotency.fingerprint(decoded.record)
        common: dict[str, Any] = {
            "event_type": event.event_type,
            "event_id": event.event_id,
            "event_timestamp": event.timestamp,
        }
        incoming = _Incoming(record, source_ref, fingerprint, now, common)
        if isinstance(event, CompensationRequested):
            step = record.step
            if step == STEP_CLAIM:
                return self._claim(event, incoming, get_processed)
            if step == STEP_RELEASE:
                return _release(event, incoming, get_processed)
            return self._reserve(event, incoming, get_processed)

        existing = _load(get_processed(event.event_id))
        decision = idempotency.decide(
            existing, fingerprint=fingerprint, source=source_ref, by_id_offset=record.offset
        )
        if isinstance(event, DepartmentChanged | PeriodChanged) and decision in (
            idempotency.Decision.POST,
            idempotency.Decision.REEMIT,
        ):
            # Master data: the change goes to every worker's register (streams/master_data.py);
            # a re-emission sends the same record again (same key, same bytes).
            result = self._posted_or_reemitted(event, record, existing, decision, incoming)
            return replace(result, sends=(*result.sends, self._master_data_send(event)))
        if decision is idempotency.Decision.POST:
            booked = self._period_policy(rules.post(event, source_ref, self._chart))
            if isinstance(booked, Rejection):
                return incoming.refused(booked, event.event_id)
            posting = booked
            processed = idempotency.ProcessedRecord(
                fingerprint=fingerprint,
                source=source_ref,
                by_id_offset=record.offset,
                posting=rules.posting_to_json_dict(posting),
                compensated_by=None,
            )
            return self._emit(
                posting, record, processed, outcome="posted", common=common, get=get_processed
            )
        assert existing is not None
        if decision is idempotency.Decision.REEMIT:
            # "reemit" counts as the posting it repeats: the offset-guarded stats row does not
            # count it twice, and counts it if the crash took the first count with it.
            return self._emit(
                existing.posting_value(),
                record,
                existing,
                outcome="reemit",
                common=common,
                get=get_processed,
            )
        return incoming.answered(decision, event.event_id, existing)

    def _period_policy(
        self, posting: rules.Posting, *, refuse: bool = True
    ) -> rules.Posting | Rejection:
        """A posting whose booking month is closed: booked late in the first open month, or
        refused as period_closed (``closed_period_policy``). Decided once, when first posted:
        the processed row keeps the result, so a re-emission repeats it whatever the periods'
        state by then."""
        entry = posting.entry
        if entry is None:
            return posting
        periods = self._chart.period_register
        booking = entry.posting_period or entry.period
        if not periods.is_closed(booking):
            return posting
        if refuse and self._chart.closed_period_policy == "reject":
            return Rejection(
                Reason.PERIOD_CLOSED,
                f"business date {entry.business_date.isoformat()} is in {entry.period}, which "
                "is closed; replay this dead letter once the period is re-opened",
            )
        return rules.booked_in(posting, periods.first_open_from(booking))

    def _master_data_send(self, event: DepartmentChanged | PeriodChanged) -> Send:
        if isinstance(event, DepartmentChanged):
            return _department_send(event)
        change = master.PeriodChange(
            period=event.period,
            action="CLOSE" if event.action == "CLOSE" else "REOPEN",
            requested_by=event.requested_by or event.source,
            reason=event.reason,
            at_ms=int(event.timestamp.timestamp() * 1000),
            event_id=event.event_id,
        )
        # Effective here at once, for the next record of this very batch; the other workers
        # take it from the master-data topic (a second or so; see docs/design.md).
        if self._chart.period_register.apply(change):
            log.info(
                "period %s %s by %s: %s",
                change.period,
                change.action,
                change.requested_by or "-",
                change.reason or "-",
            )
        return Send(MASTER_DATA_TOPIC, change.key.encode(), orjson.dumps(change.to_json_dict()))

    def _posted_or_reemitted(
        self,
        event: Event,
        record: ByIdRecord,
        existing: idempotency.ProcessedRecord | None,
        decision: idempotency.Decision,
        incoming: _Incoming,
    ) -> StageResult:
        if decision is idempotency.Decision.REEMIT:
            assert existing is not None
            return self._emit(
                existing.posting_value(),
                record,
                existing,
                outcome="reemit",
                common=incoming.common,
                get=lambda key: None,
            )
        posting = rules.post(event, incoming.source_ref, self._chart)
        processed = idempotency.ProcessedRecord(
            fingerprint=incoming.fingerprint,
            source=incoming.source_ref,
            by_id_offset=record.offset,
            posting=rules.posting_to_json_dict(posting),
            compensated_by=None,
        )
        return self._emit(
            posting, record, processed, outcome="posted", common=incoming.common, get=lambda k: None
        )

    def _reserve(
        self,
        event: CompensationRequested,
        incoming: _Incoming,
        get_processed: Callable[[str], bytes | None],
    ) -> StageResult:
        """In the target's partition: decide the reversal, mark the target, send the claim."""
        record = incoming.record
        key = reservation_key(event.event_id)
        existing = _load(get_processed(key))
        if (
            existing is not None
            and existing.rejected_reason == RELEASED
            and existing.by_id_offset == record.offset
        ):
            # This very record again (a crash before its commit) after its claim was refused
            # and the target released: it was answered then (the claim counted the conflict).
            return StageResult(
                outcome="replay", table_writes=(_row_write(key, existing),), **incoming.common
            )
        decision = idempotency.decide(
            existing,
            fingerprint=incoming.fingerprint,
            source=incoming.source_ref,
            by_id_offset=record.offset,
        )
        if decision is idempotency.Decision.REEMIT:
            assert existing is not None
            # The crash may have come between the table writes of the first attempt: mark the
            # target again (idempotent) so it can never be reversed twice; the claim again is a
            # replay copy where it lands.
            target = _load(get_processed(event.target_event_id))
            writes = [_row_write(key, existing)]
            if target is not None:
                writes.append(_marked(target, event.event_id))
            return StageResult(
                outcome="forwarded",
                sends=(_claim_send(record, event, existing.posting),),
                table_writes=tuple(writes),
                **incoming.common,
            )
        if decision is not idempotency.Decision.POST:
            assert existing is not None
            return incoming.answered(decision, key, existing)

        target = _load(get_processed(event.target_event_id))
        if event.target_event_id == event.event_id:
            refusal: Rejection | None = Rejection(
                Reason.COMPENSATION_TARGET_NOT_REVERSIBLE,
                f"compensation {event.event_id} names itself as its target",
            )
        else:
            refusal = idempotency.check_compensation(target, compensation_event_id=event.event_id)
        if (
            refusal is not None
            and refusal.reason is Reason.COMPENSATION_TARGET_UNKNOWN
            and record.park_attempt < PARK_ATTEMPTS_MAX
        ):
            log.info(
                "compensation %s: target %s not posted yet; parked (attempt %d)",
                event.event_id,
                event.target_event_id,
                record.park_attempt + 1,
            )
            return StageResult(
                outcome="parked", sends=(record.parked(incoming.now),), **incoming.common
            )
        if refusal is not None:
            rejected = incoming.rejected(refusal, event.event_id)
            # Remember the refusal, so a re-ingested copy of this source record is not counted
            # (and dead-lettered) a second time.
            refused = idempotency.ProcessedRecord(
                fingerprint=incoming.fingerprint,
                source=incoming.source_ref,
                by_id_offset=record.offset,
                posting={},
                rejected_reason=str(refusal.reason),
            )
            return replace(rejected, table_writes=(_row_write(key, refused),))
        assert target is not None
        reversal = rules.reverse(target.posting_value(), event.event_id, incoming.source_ref)
        reserved = idempotency.ProcessedRecord(
            fingerprint=incoming.fingerprint,
            source=incoming.source_ref,
            by_id_offset=record.offset,
            posting=rules.posting_to_json_dict(reversal),
            compensated_by=None,
        )
        return StageResult(
            outcome="forwarded",
            sends=(_claim_send(record, event, reserved.posting),),
            table_writes=(_row_write(key, reserved), _marked(target, event.event_id)),
            **incoming.common,
        )

    def _claim(
        self,
        event: CompensationRequested,
        incoming: _Incoming,
        get_processed: Callable[[str], bytes | None],
    ) -> StageResult:
        """In the partition of the compensation's own id: own the id, then post the reversal."""
        record = incoming.record
        existing = _load(get_processed(event.event_id))
        decision = idempotency.decide(
            existing,
            fingerprint=incoming.fingerprint,
            source=incoming.source_ref,
            by_id_offset=record.offset,
        )
        if decision is idempotency.Decision.POST:
            # A reversal is never refused for a closed period (its original is reversed once
            # it is decided): it is booked late like any entry, whatever the policy.
            booked = self._period_policy(
                rules.posting_from_json_dict(orjson.loads(record.headers[H_REVERSAL])),
                refuse=False,
            )
            assert not isinstance(booked, Rejection)
            reversal = rules.posting_to_json_dict(booked)
            claimed = idempotency.ProcessedRecord(
                fingerprint=incoming.fingerprint,
                source=incoming.source_ref,
                by_id_offset=record.offset,
                posting=reversal,
                compensated_by=None,
            )
            return self._emit(
                booked,
                record,
                claimed,
                outcome="posted",
                common=incoming.common,
                get=get_processed,
            )
        assert existing is not None
        if decision is idempotency.Decision.REEMIT:
            return self._emit(
                existing.posting_value(),
                record,
                existing,
                outcome="reemit",
                common=incoming.common,
                get=get_processed,
            )
        answer = incoming.answered(decision, event.event_id, existing)
        if decision is idempotency.Decision.CONFLICT:
            # The id belongs to another payload: no reversal; the target is free again.
            release = record.step_send(STEP_RELEASE, event.target_event_id)
            answer = replace(answer, sends=(*answer.sends, release))
        return answer

    def _emit(
        self,
        posting: rules.Posting,
        record: ByIdRecord,
        processed: idempotency.ProcessedRecord,
        *,
        outcome: str,
        common: Mapping[str, Any],
        get: Callable[[str], bytes | None],
    ) -> StageResult:
        chain_writes: tuple[tuple[str, str, bytes], ...] = ()
        if self._chain and posting.entry is not None:
            posting, processed, chain_writes = _linked(
                posting, processed, record.partition, get, first=outcome == "posted"
            )
        sends: list[Send] = []
        if posting.entry is not None:
            sends.append(self.entry_send(posting.entry))
        event_id = processed.source.event_id
        positioned = tuple(
            (delta, (record.partition, record.offset, index), event_id)
            for index, delta in enumerate(posting.deltas)
        )
        if not self._coalesce_deltas:
            sends.extend(delta_send(*item) for item in positioned)
            positioned = ()
        return StageResult(
            outcome=outcome,
            sends=tuple(sends),
            deltas=positioned,
            table_writes=(
                ("processed", processed.source.event_id, orjson.dumps(processed.to_json_dict())),
                *chain_writes,
            ),
            **common,
        )

    def entry_send(self, entry: JournalEntry) -> Send:
        # Second balance check, right before the entry leaves the process (invariant 1).
        assert_balanced(entry)
        return Send(
            LEDGER_TOPIC, entry.entry_id.encode(), self._encoder.encode(to_avro_dict(entry))
        )


def _linked(
    posting: rules.Posting,
    processed: idempotency.ProcessedRecord,
    partition: int,
    get: Callable[[str], bytes | None],
    *,
    first: bool,
) -> tuple[rules.Posting, idempotency.ProcessedRecord, tuple[tuple[str, str, bytes], ...]]:
    """A posting's entry linked into ``partition``'s hash chain, and the head row to write.

    A first posting (its entry not chained yet) becomes the chain's next link, and the processed
    row keeps the linked entry, so a re-emission after a crash sends the same bytes. A
    re-emission sends the entry as it was linked; if the head row lost that link (a changelog
    record lost with a crash while the processed row's survived), the head moves up to it
    again, so the next entry links to the right one. An entry posted before chains existed is
    re-emitted unchained.
    """
    entry = posting.entry
    assert entry is not None
    key = head_key(partition)
    raw = get(key)
    head = ChainHead() if raw is None else ChainHead.from_json_dict(orjson.loads(raw))
    if first:
        entry = chained(entry, partition, head)
        posting = replace(posting, entry=entry)
        # Only the entry changed: its JSON replaces the unchained one, the deltas' JSON stays.
        processed = replace(
            processed, posting={**processed.posting, "entry": entry_to_json(entry)}
        )
    link = entry.chain
    if link is None or link.partition != partition or link.sequence <= head.sequence:
        return posting, processed, ()
    moved = ChainHead(sequence=link.sequence, entry_hash=link.entry_hash)
    return posting, processed, (("processed", key, orjson.dumps(moved.to_json_dict())),)


# A reservation whose claim was refused (the id belongs to another payload) and whose target
# was released: a later copy is looked at afresh, like any refused compensation.
RELEASED = str(Reason.EVENT_ID_CONFLICT)


@dataclass(frozen=True)
class _Incoming:
    """The by-id record being decided, with what every answer about it needs."""

    record: ByIdRecord
    source_ref: SourceRef
    fingerprint: str
    now: datetime
    common: Mapping[str, Any]

    def rejected(self, rejection: Rejection, event_id: str) -> StageResult:
        record = self.record
        return _rejected(
            rejection,
            record.original_key,
            record.value,
            record.source,
            self.now,
            event_id=event_id,
            attempts=record.attempts,
        )

    def refused(self, rejection: Rejection, key: str) -> StageResult:
        """A refusal at posting (period_closed), remembered so a re-ingested copy of this
        source record is not counted and dead-lettered twice; a dead letter replayed later
        (another source position) is looked at afresh."""
        refused = idempotency.ProcessedRecord(
            fingerprint=self.fingerprint,
            source=self.source_ref,
            by_id_offset=self.record.offset,
            posting={},
            rejected_reason=str(rejection.reason),
        )
        return replace(self.rejected(rejection, key), table_writes=(_row_write(key, refused),))

    def answered(
        self, decision: idempotency.Decision, key: str, existing: idempotency.ProcessedRecord
    ) -> StageResult:
        """A copy of something ``processed[key]`` already accounts for: duplicate, conflict or
        replay copy (never POST or REEMIT, which the caller decides itself)."""
        record, source_ref = self.record, self.source_ref
        event_id = source_ref.event_id
        if decision is idempotency.Decision.CONFLICT:
            rejection = Rejection(
                Reason.EVENT_ID_CONFLICT,
                f"event_id {event_id} was already posted with a different payload "
                f"(first seen at {existing.source.topic}[{existing.source.partition}]"
                f"@{existing.source.offset})",
            )
            rejected = self.rejected(rejection, event_id)
            seen = existing.with_seen(source_ref, record.offset)
            return replace(rejected, table_writes=(_row_write(key, seen),))
        if decision is idempotency.Decision.DUPLICATE:
            log.info(
                "duplicate event_id=%s from %s[%d]@%d",
                event_id,
                source_ref.topic,
                source_ref.partition,
                source_ref.offset,
            )
            return StageResult(
                outcome="duplicate",
                table_writes=(_row_write(key, existing.with_seen(source_ref, record.offset)),),
                **self.common,
            )
        assert decision is idempotency.Decision.REPLAY_COPY, decision
        # Written again, unchanged: its changelog record may have been lost with a crash
        # while the local row survived (see tables.agents, same reason).
        return StageResult(
            outcome="replay", table_writes=(_row_write(key, existing),), **self.common
        )


def _release(
    event: CompensationRequested,
    incoming: _Incoming,
    get_processed: Callable[[str], bytes | None],
) -> StageResult:
    """In the target's partition: the claim was refused, so the reservation is undone.

    Only the reservation this release belongs to (same source record) is undone, and the target
    only if this compensation still marks it; a late copy of a release changes nothing. Both
    rows are written again either way (crash windows, docs/design.md). Counts nothing: the
    claim counted the conflict.
    """
    key = reservation_key(event.event_id)
    reservation = _load(get_processed(key))
    target = _load(get_processed(event.target_event_id))
    if (
        reservation is not None
        and reservation.rejected_reason is None
        and reservation.source.position == incoming.source_ref.position
    ):
        log.info(
            "compensation %s: its event id is taken; target %s released",
            event.event_id,
            event.target_event_id,
        )
        reservation = replace(reservation, rejected_reason=RELEASED)
        if target is not None and target.compensated_by == event.event_id:
            target = replace(target, compensated_by=None)
    writes = []
    if reservation is not None:
        writes.append(_row_write(key, reservation))
    if target is not None:
        writes.append(_row_write(event.target_event_id, target))
    return StageResult(outcome="released", table_writes=tuple(writes), **incoming.common)


def _department_send(event: DepartmentChanged) -> Send:
    change = master.change_of(
        event.department_id,
        event.action,
        name=event.name,
        requested_by=event.requested_by or event.source,
        reason=event.reason,
        at_ms=int(event.timestamp.timestamp() * 1000),
        event_id=event.event_id,
    )
    return Send(MASTER_DATA_TOPIC, change.key.encode(), orjson.dumps(change.to_json_dict()))


def _claim_send(
    record: ByIdRecord, event: CompensationRequested, reversal: Mapping[str, Any]
) -> Send:
    return record.step_send(STEP_CLAIM, event.event_id, ((H_REVERSAL, orjson.dumps(reversal)),))


def _load(raw: bytes | None) -> idempotency.ProcessedRecord | None:
    if raw is None:
        return None
    return idempotency.ProcessedRecord.from_json_dict(orjson.loads(raw))


def _row_write(key: str, processed: idempotency.ProcessedRecord) -> tuple[str, str, bytes]:
    return ("processed", key, orjson.dumps(processed.to_json_dict()))


def _marked(
    target: idempotency.ProcessedRecord, compensation_event_id: str
) -> tuple[str, str, bytes]:
    return _row_write(target.source.event_id, target.with_compensated_by(compensation_event_id))


# --- outcome counts: invariant 3, durable and replay-proof ------------------------------------
# One `stats` row per stage and partition counts outcomes, with the offset it has counted up to:
# a record at or below that offset was counted before a crash and is not counted again.
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
