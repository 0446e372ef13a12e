"""Deciding what to do with an event id seen before (docs/design.md, Idempotency, layer 1).

The decision depends only on the stored ``ProcessedRecord`` and the incoming copy, so it is a
pure function; the posting agent reads the record, asks ``decide``, and acts.

A compensation is recorded like any event, under its own event id, with the reversal as its
posting, in the by-id partition of that id (where any other event with that id is recorded);
the target's record additionally names it in ``compensated_by``. The reversal is decided first
in the target's partition (streams.pipeline, reserve and claim steps).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from ledger.contract import COMPENSATION_REQUESTED
from ledger.entries import SourceRef
from ledger.events import to_json_record
from ledger.rejections import Reason, Rejection
from ledger.rules import Posting, is_reversible, posting_from_json_dict

SEEN_SOURCES_MAX = 64


class Decision(StrEnum):
    POST = "post"
    """Never seen: post it and record it."""
    REEMIT = "reemit"
    """This very by-id record again (a crash after emit, before commit): send the recorded
    entry and deltas again; the entry id and the delta positions make the copies harmless."""
    REPLAY_COPY = "replay_copy"
    """The same source record re-ingested (upstream replay): it is already accounted for."""
    DUPLICATE = "duplicate"
    """Another record with the same event id and content: a producer retry, the
    ``duplicate`` outcome."""
    CONFLICT = "conflict"
    """Same event id, different content: the ``event_id_conflict`` rejection."""


@dataclass(frozen=True, init=False)
class ProcessedRecord:
    """What ``processed[event_id]`` holds; ``posting`` is the posting's JSON form."""

    fingerprint: str
    source: SourceRef
    by_id_offset: int
    posting: Mapping[str, Any]
    compensated_by: str | None = None
    seen_sources: tuple[tuple[str, int, int, int], ...] = ()
    """Source positions of copies already answered DUPLICATE or CONFLICT, each with the by-id
    offset of the record that answered it. When the same source record comes back through a new
    by-id record (a re-ingest after a crash or a replay from offset 0) it is a replay copy, not a
    second duplicate; when the very by-id record that answered comes back (a crash before its
    commit) it is answered again the same way, so the offset-guarded outcome count, which may
    have lost its row with the crash, counts it once."""
    rejected_reason: str | None = None
    """Set when this event id was refused at posting (a compensation that could not reverse
    its target). A copy from the same source is a replay copy; one from another source (a dead
    letter replayed after a fix) is looked at afresh."""

    def __init__(
        self,
        fingerprint: str,
        source: SourceRef,
        by_id_offset: int,
        posting: Mapping[str, Any],
        compensated_by: str | None = None,
        seen_sources: tuple[tuple[str, int, int, int], ...] = (),
        rejected_reason: str | None = None,
    ) -> None:
        # Written out (one per event): see "Constructors" in ledger/entries.py.
        fields = self.__dict__
        fields["fingerprint"] = fingerprint
        fields["source"] = source
        fields["by_id_offset"] = by_id_offset
        fields["posting"] = posting
        fields["compensated_by"] = compensated_by
        fields["seen_sources"] = seen_sources
        fields["rejected_reason"] = rejected_reason

    def with_seen(self, source: SourceRef, by_id_offset: int) -> ProcessedRecord:
        if self.seen_by_id_offset(source) is not None:
            return self
        # Bounded: an event id copied more often than this is counted again on replay at worst.
        kept = (*self.seen_sources, (*source.position, by_id_offset))[-SEEN_SOURCES_MAX:]
        return replace(self, seen_sources=kept)

    def seen_by_id_offset(self, source: SourceRef) -> int | None:
        """The by-id offset of the record that answered this source position, if any."""
        for topic, partition, offset, by_id_offset in self.seen_sources:
            if (topic, partition, offset) == source.position:
                return by_id_offset
        return None

    def posting_value(self) -> Posting:
        return posting_from_json_dict(self.posting)

    def with_compensated_by(self, compensation_event_id: str) -> ProcessedRecord:
        return replace(self, compensated_by=compensation_event_id)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "source": _source_to_json(self.source),
            "by_id_offset": self.by_id_offset,
            "posting": dict(self.posting),
            "compensated_by": self.compensated_by,
            "seen_sources": [list(position) for position in self.seen_sources],
            "rejected_reason": self.rejected_reason,
        }

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> ProcessedRecord:
        return cls(
            fingerprint=encoded["fingerprint"],
            source=_source_from_json(encoded["source"]),
            by_id_offset=int(encoded["by_id_offset"]),
            posting=encoded["posting"],
            compensated_by=encoded.get("compensated_by"),
            seen_sources=tuple(_seen_from_json(seen) for seen in encoded.get("seen_sources", ())),
            rejected_reason=encoded.get("rejected_reason"),
        )


def _seen_from_json(seen: list[Any]) -> tuple[str, int, int, int]:
    # Rows written before the answering by-id offset was kept have three fields: -1 matches no
    # by-id record, so such a copy stays a replay copy, as it was then.
    topic, partition, offset, *rest = seen
    return (str(topic), int(partition), int(offset), int(rest[0]) if rest else -1)


def _source_to_json(source: SourceRef) -> dict[str, Any]:
    return {
        "event_id": source.event_id,
        "event_type": source.event_type,
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
    }


def _source_from_json(encoded: Mapping[str, Any]) -> SourceRef:
    return SourceRef(
        event_id=encoded["event_id"],
        event_type=encoded["event_type"],
        topic=encoded["topic"],
        partition=int(encoded["partition"]),
        offset=int(encoded["offset"]),
    )


def fingerprint(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a decoded record (sorted keys, no spaces).

    Computed on ``to_json_record``'s form, so a record and its JSON round trip agree.
    Fingerprints are kept in the ``processed`` table: this text must never change.
    """
    form = to_json_record(record)
    try:
        # orjson writes exactly the bytes of the json.dumps call below for what to_json_record
        # yields (dicts, lists, text, int, bool, None): keys sorted by code point, UTF-8 left
        # unescaped, the same escapes for control characters (a test compares them on every
        # code point). It refuses what it cannot write that way (ints beyond 64 bits, lone
        # surrogates), and those take the original path, which answers as it always did.
        canonical = orjson.dumps(form, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = _canonical_json(form)
    return hashlib.sha256(canonical).hexdigest()


def _canonical_json(form: Any) -> bytes:
    """The fingerprint's canonical JSON as it was first defined (the reference for orjson)."""
    text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def decide(
    existing: ProcessedRecord | None, *, fingerprint: str, source: SourceRef, by_id_offset: int
) -> Decision:
    """What to do with an incoming copy of an event, given what ``processed`` holds for its id.

    The order matters: the same by-id offset is checked first because after a crash the very
    same record comes back, and it must be re-emitted even though its content also matches.
    """
    if existing is None:
        return Decision.POST
    if existing.rejected_reason is not None:
        # Refused before: the same source record again is already accounted for (unless it is
        # the very by-id record, replayed after a crash: decide it again, deterministically).
        same_source = existing.source.position == source.position
        if same_source and existing.by_id_offset != by_id_offset:
            return Decision.REPLAY_COPY
        return Decision.POST
    if existing.by_id_offset == by_id_offset:
        return Decision.REEMIT
    if existing.source.position == source.position:
        return Decision.REPLAY_COPY
    answered_by = existing.seen_by_id_offset(source)
    if answered_by is not None and answered_by != by_id_offset:
        return Decision.REPLAY_COPY
    if existing.fingerprint == fingerprint:
        return Decision.DUPLICATE
    return Decision.CONFLICT


def check_compensation(
    target: ProcessedRecord | None, *, compensation_event_id: str
) -> Rejection | None:
    """Why a compensation, new to ``decide`` (POST), cannot reverse its target; None if it can.

    A target already reversed is refused whoever reversed it: a second reversal would overshoot,
    and if this very compensation marked it, its own record is missing and emitting the
    reversal again from a new position would apply its deltas twice.

    A target that is itself a compensation is refused, whatever became of it: a reversal is not
    reversed (docs/design.md, Idempotency). Its record is under its own id, in that id's
    partition, which is where a compensation naming it is decided, so the rule does not depend
    on how ids fall on partitions.
    """
    if target is not None and target.source.event_type == COMPENSATION_REQUESTED:
        return Rejection(
            Reason.COMPENSATION_TARGET_NOT_REVERSIBLE,
            f"event {target.source.event_id} is a compensation; a reversal is not reversed: "
            "to book the original again, send it again as a new event",
        )
    if target is None or target.rejected_reason is not None:
        return Rejection(
            Reason.COMPENSATION_TARGET_UNKNOWN, "no posted event has this target_event_id"
        )
    if target.compensated_by is not None:
        by_whom = (
            "this same compensation"
            if target.compensated_by == compensation_event_id
            else f"compensation {target.compensated_by}"
        )
        return Rejection(
            Reason.COMPENSATION_TARGET_NOT_REVERSIBLE,
            f"event {target.source.event_id} was already reversed by {by_whom}",
        )
    if not is_reversible(target.posting_value()):
        return Rejection(
            Reason.COMPENSATION_TARGET_NOT_REVERSIBLE,
            f"{target.source.event_type} {target.source.event_id} sets a value and has no "
            "journal entry to reverse; send a new set command instead",
        )
    return None
