"""The ``processed`` rows of the posting stage: read, written, marked, and the entry's link
into its partition's hash chain (whose head is a ``processed`` row too). Pure, no faust."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import orjson

from ledger import idempotency, rules
from ledger.chain import ChainHead, head_key
from ledger.entries import chained
from ledger.entries import to_json_dict as entry_to_json


def linked(
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
