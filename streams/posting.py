"""The posting stage: a by-event-id record becomes a journal entry and deltas, exactly once per
event id (the idempotency decision, compensations in two steps, the entry's hash chain and
period policy). ``processed`` is the table keyed by event id: the caller passes a get function
and applies the returned writes, so this module stays free of faust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from ledger import idempotency, master, rules
from ledger.chart import ChartOfAccounts
from ledger.contract import MASTER_DATA_TOPIC
from ledger.deltas import delta_to_json_dict
from ledger.entries import JournalEntry, SourceRef, assert_balanced, to_avro_dict
from ledger.events import (
    CompensationRequested,
    DepartmentChanged,
    Event,
    PeriodChanged,
    parse_event,
)
from ledger.rejections import Reason, Rejection
from schemas.codec import Decoder, Encoder
from settings import LEDGER_TOPIC
from streams.effects import Outcome, Send, StageResult
from streams.posting_rows import first_link, load, marked, relinked, row_write
from streams.stage_records import (
    H_REVERSAL,
    PARK_ATTEMPTS_MAX,
    STEP_CLAIM,
    STEP_RELEASE,
    ByIdRecord,
    rejected,
    reservation_key,
)
from streams.table_stage import delta_send
from streams.validated import ValidatedEvents

log = logging.getLogger(__name__)


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
        validated: ValidatedEvents | None = None,
    ) -> None:
        self._decoder = decoder
        # What this worker's ingest stage already read from the same bytes (streams/validated.py).
        self._validated = validated
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
        validated = self._validated
        read = validated.take(source.topic, record.value) if validated is not None else None
        if read is not None:
            decoded, event = read
        else:
            decoded_now = self._decoder.decode(source.topic, record.value)
            # The ingest stage already decoded and validated these exact bytes (only it writes
            # by-event-id records); a failure now is a bug or a registry that forgot a schema,
            # and must not be swallowed. Its checks are not run again (~20 µs an event): the
            # record is only parsed into its event, which raises on anything malformed.
            if isinstance(decoded_now, Rejection):
                raise RuntimeError(f"by-id record no longer decodes: {decoded_now}")
            decoded, event = decoded_now, parse_event(decoded_now.record)
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

        existing = load(get_processed(event.event_id))
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
            return self._post(booked, incoming, get_processed)
        assert existing is not None
        if decision is idempotency.Decision.REEMIT:
            # "reemit" counts as the posting it repeats: the offset-guarded stats row does not
            # count it twice, and counts it if the crash took the first count with it.
            return self._reemit(record, existing, common=common, get=get_processed)
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
            return self._reemit(record, existing, common=incoming.common, get=lambda key: None)
        return self._post(rules.post(event, incoming.source_ref, self._chart), incoming, _nothing)

    def _reserve(
        self,
        event: CompensationRequested,
        incoming: _Incoming,
        get_processed: Callable[[str], bytes | None],
    ) -> StageResult:
        """In the target's partition: decide the reversal, mark the target, send the claim."""
        record = incoming.record
        key = reservation_key(event.event_id)
        existing = load(get_processed(key))
        if (
            existing is not None
            and existing.rejected_reason == RELEASED
            and existing.by_id_offset == record.offset
        ):
            # This very record again (a crash before its commit) after its claim was refused
            # and the target released: it was answered then (the claim counted the conflict).
            return StageResult(
                outcome=Outcome.REPLAY, table_writes=(row_write(key, existing),), **incoming.common
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
            target = load(get_processed(event.target_event_id))
            writes = [row_write(key, existing)]
            if target is not None:
                writes.append(marked(target, event.event_id))
            return StageResult(
                outcome=Outcome.FORWARDED,
                sends=(_claim_send(record, event, existing.posting),),
                table_writes=tuple(writes),
                **incoming.common,
            )
        if decision is not idempotency.Decision.POST:
            assert existing is not None
            return incoming.answered(decision, key, existing)

        target = load(get_processed(event.target_event_id))
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
                outcome=Outcome.PARKED, sends=(record.parked(incoming.now),), **incoming.common
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
            return replace(rejected, table_writes=(row_write(key, refused),))
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
            outcome=Outcome.FORWARDED,
            sends=(_claim_send(record, event, reserved.posting),),
            table_writes=(row_write(key, reserved), marked(target, event.event_id)),
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
        existing = load(get_processed(event.event_id))
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
            return self._post(booked, incoming, get_processed)
        assert existing is not None
        if decision is idempotency.Decision.REEMIT:
            return self._reemit(record, existing, common=incoming.common, get=get_processed)
        answer = incoming.answered(decision, event.event_id, existing)
        if decision is idempotency.Decision.CONFLICT:
            # The id belongs to another payload: no reversal; the target is free again.
            release = record.step_send(STEP_RELEASE, event.target_event_id)
            answer = replace(answer, sends=(*answer.sends, release))
        return answer

    def _post(
        self,
        posting: rules.Posting,
        incoming: _Incoming,
        get: Callable[[str], bytes | None],
    ) -> StageResult:
        """A first posting. Its entry is linked into the partition's hash chain before anything
        is made of it, so the processed row keeps (and a re-emission sends) the linked entry;
        the entry's Avro record is built once (hashed, kept as JSON, sent), and so is each
        delta's JSON (kept, and coalesced by the caller)."""
        record = incoming.record
        entry_record: dict[str, Any] | None = None
        chain_writes: tuple[tuple[str, str, bytes], ...] = ()
        if self._chain and posting.entry is not None:
            posting, entry_record, chain_writes = first_link(posting, record.partition, get)
        processed = idempotency.ProcessedRecord(
            fingerprint=incoming.fingerprint,
            source=incoming.source_ref,
            by_id_offset=record.offset,
            posting=rules.posting_to_json_dict(posting, entry_record),
            compensated_by=None,
        )
        return self._result(
            posting,
            record,
            processed,
            outcome=Outcome.POSTED,
            common=incoming.common,
            entry_record=entry_record,
            chain_writes=chain_writes,
            deltas_json=processed.posting["deltas"],
        )

    def _reemit(
        self,
        record: ByIdRecord,
        processed: idempotency.ProcessedRecord,
        *,
        common: Mapping[str, Any],
        get: Callable[[str], bytes | None],
    ) -> StageResult:
        """A re-emission: the posting ``processed`` recorded, sent again as it was (counted as
        the posting it repeats)."""
        posting = processed.posting_value()
        chain_writes: tuple[tuple[str, str, bytes], ...] = ()
        if self._chain and posting.entry is not None:
            chain_writes = relinked(posting, record.partition, get)
        return self._result(
            posting,
            record,
            processed,
            outcome=Outcome.REEMIT,
            common=common,
            chain_writes=chain_writes,
        )

    def _result(
        self,
        posting: rules.Posting,
        record: ByIdRecord,
        processed: idempotency.ProcessedRecord,
        *,
        outcome: Outcome,
        common: Mapping[str, Any],
        chain_writes: tuple[tuple[str, str, bytes], ...],
        entry_record: Mapping[str, Any] | None = None,
        deltas_json: Sequence[Mapping[str, Any]] | None = None,
    ) -> StageResult:
        sends: list[Send] = []
        if posting.entry is not None:
            sends.append(self.entry_send(posting.entry, entry_record))
        event_id = processed.source.event_id
        if deltas_json is None:
            deltas_json = [delta_to_json_dict(delta) for delta in posting.deltas]
        positioned = tuple(
            (delta, (record.partition, record.offset, index), event_id, deltas_json[index])
            for index, delta in enumerate(posting.deltas)
        )
        if not self._coalesce_deltas:
            sends.extend(delta_send(*item[:3]) for item in positioned)
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

    def entry_send(self, entry: JournalEntry, record: Mapping[str, Any] | None = None) -> Send:
        """``record``: the entry's Avro record, if the caller built it already."""
        # Second balance check, right before the entry leaves the process (invariant 1).
        assert_balanced(entry)
        if record is None:
            record = to_avro_dict(entry)
        return Send(LEDGER_TOPIC, entry.entry_id.encode(), self._encoder.encode(record))


def _nothing(key: str) -> bytes | None:
    """The processed rows of a posting that has no entry (master data): none are read."""
    return None


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
        return rejected(
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
        return replace(self.rejected(rejection, key), table_writes=(row_write(key, refused),))

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
            return replace(rejected, table_writes=(row_write(key, seen),))
        if decision is idempotency.Decision.DUPLICATE:
            log.info(
                "duplicate event_id=%s from %s[%d]@%d",
                event_id,
                source_ref.topic,
                source_ref.partition,
                source_ref.offset,
            )
            return StageResult(
                outcome=Outcome.DUPLICATE,
                table_writes=(row_write(key, existing.with_seen(source_ref, record.offset)),),
                **self.common,
            )
        assert decision is idempotency.Decision.REPLAY_COPY, decision
        # Written again, unchanged: its changelog record may have been lost with a crash
        # while the local row survived (see streams.table_agents, same reason).
        return StageResult(
            outcome=Outcome.REPLAY, table_writes=(row_write(key, existing),), **self.common
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
    reservation = load(get_processed(key))
    target = load(get_processed(event.target_event_id))
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
        writes.append(row_write(key, reservation))
    if target is not None:
        writes.append(row_write(event.target_event_id, target))
    return StageResult(outcome=Outcome.RELEASED, table_writes=tuple(writes), **incoming.common)


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
