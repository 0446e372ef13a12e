"""The ``processed`` rows of the posting stage: read, written, marked, and the entry's link
into its partition's hash chain (whose head is a ``processed`` row too). Pure, no faust."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ledger import idempotency, rules
from ledger.chain import ChainHead, ChainLink, head_key
from ledger.entries import chained_record


def relinked(
    posting: rules.Posting, partition: int, get: Callable[[str], bytes | None]
) -> tuple[tuple[str, str, bytes], ...]:
    """The head row to write when a posting is re-emitted after a crash.

    A re-emission sends the entry as it was linked (the processed row keeps the linked entry,
    so the same bytes go out again). The head row is written again whatever it holds, like
    every row a batch touches (docs/design.md, crash windows): moved up to the entry's link if
    it lost it (a changelog record lost with a crash while the processed row's survived), else
    as it is, because a kill -9 between a batch's RocksDB write and its changelog delivery
    leaves the head only in RocksDB, and a later wipe would restore an older head from the
    changelog, so the next entry would take a sequence already used. An entry posted before
    chains existed is re-emitted unchained, and touches no head.
    """
    entry = posting.entry
    assert entry is not None
    link = entry.chain
    if link is None or link.partition != partition:
        return ()
    key = head_key(partition)
    head = _head(get(key))
    if link.sequence > head.sequence:
        head = ChainHead(sequence=link.sequence, entry_hash=link.entry_hash)
    return (("processed", key, orjson.dumps(head.to_json_dict())),)


def first_link(
    posting: rules.Posting, partition: int, get: Callable[[str], bytes | None]
) -> tuple[rules.Posting, dict[str, Any], tuple[tuple[str, str, bytes], ...]]:
    """A first posting's entry as the next link of ``partition``'s hash chain: the posting with
    the linked entry, that entry's Avro record (built once: hashed, kept, sent) and the head
    row to write."""
    entry = posting.entry
    assert entry is not None
    key = head_key(partition)
    head = _head(get(key))
    entry, record = chained_record(entry, partition, head)
    return (
        rules.Posting(entry, posting.deltas),
        record,
        _head_write(key, entry.chain, partition, head),
    )


def _head(raw: bytes | None) -> ChainHead:
    return ChainHead() if raw is None else ChainHead.from_json_dict(orjson.loads(raw))


def _head_write(
    key: str, link: ChainLink | None, partition: int, head: ChainHead
) -> tuple[tuple[str, str, bytes], ...]:
    """The head row moved up to ``link``, unless it is there already (or the link is not one
    of this partition's)."""
    if link is None or link.partition != partition or link.sequence <= head.sequence:
        return ()
    moved = ChainHead(sequence=link.sequence, entry_hash=link.entry_hash)
    return (("processed", key, orjson.dumps(moved.to_json_dict())),)


def load(raw: bytes | None) -> idempotency.ProcessedRecord | None:
    if raw is None:
        return None
    return idempotency.ProcessedRecord.from_json_dict(orjson.loads(raw))


def row_write(key: str, processed: idempotency.ProcessedRecord) -> tuple[str, str, bytes]:
    return ("processed", key, orjson.dumps(processed.to_json_dict()))


def marked(
    target: idempotency.ProcessedRecord, compensation_event_id: str
) -> tuple[str, str, bytes]:
    return row_write(target.source.event_id, target.with_compensated_by(compensation_event_id))


# --- outcome counts: invariant 3, durable and replay-proof ------------------------------------
# One `stats` row per stage and partition counts outcomes, with the offset it has counted up to:
# a record at or below that offset was counted before a crash and is not counted again.
