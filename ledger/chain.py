"""Tamper evidence: every journal entry is a link of a hash chain (issue 16, item 3).

There is one chain per by-event-id (posting) partition: the partition's posting stage is the
only writer of its chain, in that partition's order, so the chain needs no coordination between
workers and survives scale-out (a partition moves with its ``processed`` rows, where the chain's
head is kept). Each chained entry carries four optional fields:

- ``chain_partition``: the posting partition whose chain it belongs to;
- ``chain_sequence``: its place in that chain, 1, 2, 3, ...;
- ``previous_hash``: the ``entry_hash`` of entry ``chain_sequence - 1`` (``GENESIS_HASH`` for 1);
- ``entry_hash``: SHA-256 over the entry's content *and* the three fields above, in a canonical
  JSON form (``content_hash``), so changing any amount, account, date or link breaks it.

The ledger topic is at-least-once: after a crash the same entries come again, byte for byte
(the entry and its link are kept in ``processed`` and re-emitted from there). A verifier
therefore ignores a repeat with the same bytes; a *different* record at a sequence already seen
is a break. Entries written before chains existed (no ``chain_sequence``) are counted, not
checked.

Everything here is pure: the Kafka reading is in ``tools/ledger_verify.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
HASH_VERSION = 1  # the field list below; a new version would name new fields, never reorder

# The fields an entry's hash covers (the Avro record's, by name). A field added to the entry
# later is not covered until a new HASH_VERSION says so.
HASHED_FIELDS = (
    "entry_id",
    "source_event_id",
    "source_event_type",
    "source_topic",
    "source_partition",
    "source_offset",
    "rule_version",
    "business_date",
    "period",
    "quarter",
    "currency",
    "reverses_entry_id",
    "lines",
    "posting_period",
    "chain_partition",
    "chain_sequence",
    "previous_hash",
)
LINE_FIELDS = ("account", "debit", "credit", "dimensions")


def head_key(partition: int) -> str:
    """The ``processed`` row holding the head of ``partition``'s chain.

    Event ids are UUIDs and reservations start with ``reversal|``: no event id looks like this.
    """
    return f"chain|{partition}"


@dataclass(frozen=True)
class ChainLink:
    """An entry's place in its chain."""

    partition: int
    sequence: int
    previous_hash: str
    entry_hash: str

    def __post_init__(self) -> None:
        assert self.partition >= 0 and self.sequence >= 1, self
        assert len(self.previous_hash) == 64 and len(self.entry_hash) == 64, self


@dataclass(frozen=True)
class ChainHead:
    """The last link of a chain (sequence 0 and the genesis hash: empty)."""

    sequence: int = 0
    entry_hash: str = GENESIS_HASH

    def to_json_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "entry_hash": self.entry_hash}

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> ChainHead:
        return cls(sequence=int(encoded["sequence"]), entry_hash=str(encoded["entry_hash"]))


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(name): _canonical(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, float):
        raise TypeError("a float never enters the ledger")
    return value


def _hashed_form(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields the hash covers, each line's amounts already as text (what
    ``_orjson_default`` would make of them, without a call per amount); None if a float is
    anywhere an entry's form can hold one (orjson would write it; the definition refuses it)."""
    form: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = record.get(name)
        if isinstance(value, float):
            return None
        form[name] = value
    lines: list[dict[str, Any]] = []
    for line in record["lines"]:
        item: dict[str, Any] = {}
        for name in LINE_FIELDS:
            value = line.get(name)
            if type(value) is Decimal:
                value = format(value, "f")
            elif isinstance(value, float):
                return None
            elif isinstance(value, Mapping):
                for inner in value.values():
                    if isinstance(inner, float):
                        return None
            item[name] = value
        lines.append(item)
    form["lines"] = lines
    return form


def _orjson_default(value: Any) -> Any:
    """What orjson cannot write itself, in ``_canonical``'s form (dates it writes as ISO)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(name): item for name, item in value.items()}
    raise TypeError(f"not hashable into an entry: {type(value).__name__}")


def content_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an entry's content and link, from its Avro or JSON record form.

    Amounts as text with their two places, dates ISO, dimensions sorted: the Avro record decoded
    by fastavro and the internal JSON form of the same entry give the same hash.

    orjson writes the very bytes of ``reference_text`` (the definition) for an entry's fields:
    keys sorted by code point, UTF-8 unescaped, the same escapes for control characters, dates
    ISO, amounts as ``format(amount, "f")`` (a property test compares them on any text). It
    refuses a float (never in the ledger) and what it cannot write that way (ints beyond 64
    bits, lone surrogates); those take the definition's path, which answers as it always did.
    ~8x faster: every posted entry is hashed once.
    """
    form = _hashed_form(record)
    try:
        if form is None:
            raise TypeError("a float never enters the ledger")
        text = orjson.dumps(form, default=_orjson_default, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        text = reference_text(record)
    return hashlib.sha256(text).hexdigest()


def reference_text(record: Mapping[str, Any]) -> bytes:
    """The canonical text an entry's hash is taken over, as first defined (HASH_VERSION 1)."""
    form = {name: _canonical(record.get(name)) for name in HASHED_FIELDS}
    form["lines"] = [
        {name: _canonical(line.get(name)) for name in LINE_FIELDS} for line in record["lines"]
    ]
    text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def next_link(record: Mapping[str, Any], partition: int, head: ChainHead) -> ChainLink:
    """The link of an entry (its unchained record form) appended after ``head``."""
    sequence = head.sequence + 1
    linked = {
        **record,
        "chain_partition": partition,
        "chain_sequence": sequence,
        "previous_hash": head.entry_hash,
    }
    return ChainLink(partition, sequence, head.entry_hash, content_hash(linked))


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    """The first place a chain does not hold, with where the offending record was read."""

    partition: int
    sequence: int
    problem: str
    position: str


@dataclass
class _Seen:
    digest: str  # of the record's bytes, to tell a byte-identical repeat from another record
    entry_hash: str
    previous_hash: str
    hash_ok: bool
    position: str


@dataclass
class ChainReport:
    """One chain after verification: verified up to ``verified_sequence``, first break if any."""

    partition: int
    entries: int
    verified_sequence: int
    verified_hash: str
    verified_position: str | None
    first_break: ChainBreak | None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "chain": self.partition,
            "entries": self.entries,
            "verified_sequence": self.verified_sequence,
            "verified_hash": self.verified_hash,
            "verified_position": self.verified_position,
            "first_break": None
            if self.first_break is None
            else {
                "sequence": self.first_break.sequence,
                "problem": self.first_break.problem,
                "position": self.first_break.position,
            },
        }


@dataclass
class ChainVerifier:
    """Feed it every record of the ledger topic in any order; then ``reports()``.

    Records of one chain are spread over the ledger topic's partitions (it is keyed by entry
    id), so order of arrival means nothing: links are checked by sequence at the end, and the
    memory kept is a few hashes per entry, not the entries.
    """

    _chains: dict[int, dict[int, _Seen]] = field(default_factory=dict)
    _conflicts: dict[int, ChainBreak] = field(default_factory=dict)
    # After compact(): per chain, the verified prefix folded into (sequence, hash, position).
    _bases: dict[int, tuple[int, str, str | None]] = field(default_factory=dict)
    _entries_folded: dict[int, int] = field(default_factory=dict)
    repeats: int = 0
    unchained: int = 0

    def add(self, record: Mapping[str, Any], raw: bytes, position: str) -> None:
        sequence = record.get("chain_sequence")
        partition = record.get("chain_partition")
        if sequence is None or partition is None:
            self.unchained += 1
            return
        digest = hashlib.sha256(raw).hexdigest()
        chain = self._chains.setdefault(int(partition), {})
        base = self._bases.get(int(partition))
        if base is not None and int(sequence) <= base[0]:
            # Folded by compact(): taken as a repeat (``verify`` keeps every digest and tells a
            # repeat from a second record; a long-running watcher cannot afford to).
            self.repeats += 1
            return
        seen = chain.get(int(sequence))
        if seen is not None:
            if seen.digest == digest:
                self.repeats += 1  # at-least-once: the same record again
                return
            problem = (
                f"two different records at sequence {sequence} "
                f"(first at {seen.position}, another at {position})"
            )
            known = self._conflicts.get(int(partition))
            if known is None or known.sequence > int(sequence):
                self._conflicts[int(partition)] = ChainBreak(
                    int(partition), int(sequence), problem, position
                )
            return
        entry_hash = str(record.get("entry_hash") or "")
        chain[int(sequence)] = _Seen(
            digest=digest,
            entry_hash=entry_hash,
            previous_hash=str(record.get("previous_hash") or ""),
            hash_ok=content_hash(record) == entry_hash,
            position=position,
        )

    def reports(self) -> list[ChainReport]:
        return [self._report(partition) for partition in sorted(self._chains)]

    def compact(self) -> None:
        """Forget what is verified but each chain's last verified link (memory stays bounded
        by the entries not verified yet, for a watcher fed the ledger as it grows)."""
        for report in self.reports():
            if report.verified_sequence == 0:
                continue
            chain = self._chains[report.partition]
            for sequence in [s for s in chain if s <= report.verified_sequence]:
                del chain[sequence]
            self._bases[report.partition] = (
                report.verified_sequence,
                report.verified_hash,
                report.verified_position,
            )
            self._entries_folded[report.partition] = report.entries - len(chain)

    def _report(self, partition: int) -> ChainReport:
        chain = self._chains[partition]
        base_sequence, previous_hash, verified_position = self._bases.get(
            partition, (0, GENESIS_HASH, None)
        )
        verified_sequence = base_sequence
        first_break: ChainBreak | None = None
        for sequence in range(base_sequence + 1, max(chain, default=base_sequence) + 1):
            seen = chain.get(sequence)
            if seen is None:
                first_break = ChainBreak(
                    partition, sequence, "entry missing", _after(verified_position)
                )
                break
            if not seen.hash_ok:
                first_break = ChainBreak(
                    partition,
                    sequence,
                    "content does not match its entry_hash (altered)",
                    seen.position,
                )
                break
            if seen.previous_hash != previous_hash:
                first_break = ChainBreak(
                    partition,
                    sequence,
                    f"previous_hash {seen.previous_hash[:12]}... is not the hash of entry "
                    f"{sequence - 1} ({previous_hash[:12]}...)",
                    seen.position,
                )
                break
            previous_hash = seen.entry_hash
            verified_sequence, verified_position = sequence, seen.position
        conflict = self._conflicts.get(partition)
        earlier = first_break is None or (
            conflict is not None and conflict.sequence <= first_break.sequence
        )
        if conflict is not None and earlier:
            first_break = conflict
            if verified_sequence >= conflict.sequence:
                verified_sequence = conflict.sequence - 1
                kept = chain.get(verified_sequence)
                if kept is not None:
                    previous_hash, verified_position = kept.entry_hash, kept.position
                else:  # the base (or the genesis): nothing after it verified
                    _, previous_hash, verified_position = self._bases.get(
                        partition, (0, GENESIS_HASH, None)
                    )
        return ChainReport(
            partition=partition,
            entries=len(chain) + self._entries_folded.get(partition, 0),
            verified_sequence=verified_sequence,
            verified_hash=previous_hash,
            verified_position=verified_position,
            first_break=first_break,
        )


def _after(position: str | None) -> str:
    return f"after {position}" if position is not None else "at the start of the chain"


def verify(records: Iterable[tuple[Mapping[str, Any], bytes, str]]) -> ChainVerifier:
    """A verifier fed with ``(record, raw bytes, position)`` triples."""
    verifier = ChainVerifier()
    for record, raw, position in records:
        verifier.add(record, raw, position)
    return verifier
