"""Deciding what to do with an event id seen before (docs/design.md, Idempotency, layer 1).

The decision depends only on the stored ``ProcessedRecord`` and the incoming copy, so it is a
pure function; the posting agent reads the record, asks ``decide``, and acts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ledger.entries import SourceRef
from ledger.events import to_json_record
from ledger.rules import Posting, is_reversible, posting_from_json, posting_to_json


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


class CompensationDecision(StrEnum):
    REVERSE = "reverse"
    REEMIT = "reemit"
    REPLAY_COPY = "replay_copy"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    TARGET_UNKNOWN = "target_unknown"
    """``compensation_target_unknown``."""
    NOT_REVERSIBLE = "not_reversible"
    """``compensation_target_not_reversible``: a set command, or already reversed by another
    compensation."""


@dataclass(frozen=True)
class CompensationMark:
    """The compensation that reversed a record, kept on the *target's* record.

    It lives there, not under its own event id, because the compensation travels keyed by the
    target's event id: the processed table may only be written under keys of the partition
    being processed.
    """

    event_id: str
    fingerprint: str
    source: SourceRef
    by_id_offset: int


@dataclass(frozen=True)
class ProcessedRecord:
    fingerprint: str
    source: SourceRef
    by_id_offset: int
    posting: Posting
    compensation: CompensationMark | None = None

    @property
    def compensated_by(self) -> str | None:
        return None if self.compensation is None else self.compensation.event_id

    def compensated(self, mark: CompensationMark) -> ProcessedRecord:
        return replace(self, compensation=mark)

    def to_json_dict(self) -> dict[str, Any]:
        mark = self.compensation
        return {
            "fingerprint": self.fingerprint,
            "source": _source_to_json(self.source),
            "by_id_offset": self.by_id_offset,
            "posting": posting_to_json(self.posting),
            "compensation": None
            if mark is None
            else {
                "event_id": mark.event_id,
                "fingerprint": mark.fingerprint,
                "source": _source_to_json(mark.source),
                "by_id_offset": mark.by_id_offset,
            },
        }

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> ProcessedRecord:
        mark = encoded.get("compensation")
        return cls(
            fingerprint=encoded["fingerprint"],
            source=_source_from_json(encoded["source"]),
            by_id_offset=int(encoded["by_id_offset"]),
            posting=posting_from_json(encoded["posting"]),
            compensation=None
            if mark is None
            else CompensationMark(
                event_id=mark["event_id"],
                fingerprint=mark["fingerprint"],
                source=_source_from_json(mark["source"]),
                by_id_offset=int(mark["by_id_offset"]),
            ),
        )


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
    """
    canonical = json.dumps(
        to_json_record(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def decide(
    existing: ProcessedRecord | None, *, fingerprint: str, source: SourceRef, by_id_offset: int
) -> Decision:
    """What to do with an incoming copy of an event, given what ``processed`` holds for its id.

    The order matters: the same by-id offset is checked first because after a crash the very
    same record comes back, and it must be re-emitted even though its content also matches.
    """
    if existing is None:
        return Decision.POST
    if existing.by_id_offset == by_id_offset:
        return Decision.REEMIT
    if existing.source.position == source.position:
        return Decision.REPLAY_COPY
    return Decision.DUPLICATE


def decide_compensation(
    target: ProcessedRecord | None,
    *,
    compensation_event_id: str,
    fingerprint: str,
    source: SourceRef,
    by_id_offset: int,
) -> CompensationDecision:
    """``decide`` for a compensation, judged on the target's record and its mark."""
    if target is None:
        return CompensationDecision.TARGET_UNKNOWN
    mark = target.compensation
    if mark is None:
        if not is_reversible(target.posting):
            return CompensationDecision.NOT_REVERSIBLE
        return CompensationDecision.REVERSE
    if mark.by_id_offset == by_id_offset:
        return CompensationDecision.REEMIT
    if mark.source.position == source.position:
        return CompensationDecision.REPLAY_COPY
    if mark.event_id == compensation_event_id:
        if mark.fingerprint == fingerprint:
            return CompensationDecision.DUPLICATE
        return CompensationDecision.CONFLICT
    # A second, different compensation of the same event: reversing twice would overshoot.
    return CompensationDecision.NOT_REVERSIBLE
