"""Journal entries: immutable, balanced by construction, with deterministic ids.

An entry is never edited; a mistake is corrected by a reversing entry that names the original
(``reverses_entry_id``). Balance is asserted when an entry is built and again, by the caller,
just before it is sent (``assert_balanced``): two paths, one property.

Constructors: the frozen dataclasses built for every event (here, in ``ledger.deltas`` and in
``ledger.idempotency``) write their ``__init__`` out (``init=False``). The one a frozen
dataclass generates stores each field with a call to ``object.__setattr__``, about twice the cost
of storing it in the instance dict, which is where that call puts it. Instances stay frozen
(assigning a field raises ``FrozenInstanceError``) and every dataclass feature (``replace``,
``fields``, equality, hashing, repr) works as before; ``tests/unit/ledger/test_fast_paths.py``
checks that each such constructor takes the class's fields, in order, with their defaults, and
sets every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from errors import UnbalancedEntryError
from ledger.chain import ChainHead, ChainLink, next_link
from ledger.ids import uuid5_text
from ledger.money import CENT, MAGNITUDE_LIMIT, ZERO, fits_precision, is_money, money
from ledger.periods import month_of, quarter_of

# Fixed forever: changing it would give every past event a new entry id, so consumers that
# deduplicate postings by id would count every replayed entry twice.
ENTRY_NAMESPACE = UUID("168a8079-b327-4536-9197-8ef9007318fc")

Dimensions = tuple[tuple[str, str], ...]


def entry_id_for(event_id: str, rule_version: str) -> str:
    """The entry id of ``event_id`` posted under ``rule_version``."""
    return uuid5_text(ENTRY_NAMESPACE, f"{event_id}:{rule_version}")


def dimensions(values: Mapping[str, str] | Iterable[tuple[str, str]]) -> Dimensions:
    """Dimensions in canonical (sorted) order, so equal lines compare and serialise equal."""
    pairs = values.items() if isinstance(values, Mapping) else values
    return tuple(sorted(pairs))


@dataclass(frozen=True, init=False)
class SourceRef:
    """Where an entry came from: the event and its position in the source topic."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int

    def __init__(
        self, event_id: str, event_type: str, topic: str, partition: int, offset: int
    ) -> None:
        # Written out: see "Constructors" in the module docstring.
        fields = self.__dict__
        fields["event_id"] = event_id
        fields["event_type"] = event_type
        fields["topic"] = topic
        fields["partition"] = partition
        fields["offset"] = offset

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, init=False)
class JournalLine:
    """One side of an entry: exactly one of ``debit`` and ``credit`` is positive."""

    account: str
    debit: Decimal
    credit: Decimal
    dimensions: Dimensions = field(default=())

    def __init__(
        self, account: str, debit: Decimal, credit: Decimal, dimensions: Dimensions = ()
    ) -> None:
        # Written out: see "Constructors" in the module docstring.
        fields = self.__dict__
        fields["account"] = account
        fields["debit"] = debit
        fields["credit"] = credit
        fields["dimensions"] = dimensions
        self.__post_init__()

    def __post_init__(self) -> None:
        for side, amount in (("debit", self.debit), ("credit", self.credit)):
            if not _is_line_amount(amount):
                raise UnbalancedEntryError(
                    f"line {self.account}: {side} {amount!r} is not a non-negative money amount"
                )
        if (self.debit > 0) == (self.credit > 0):
            raise UnbalancedEntryError(
                f"line {self.account}: exactly one of debit {self.debit} and credit "
                f"{self.credit} must be positive"
            )
        # A tuple of one pair (most lines) is its own sorted form, without a repeated name;
        # only longer ones are checked.
        if type(self.dimensions) is tuple and len(self.dimensions) <= 1:
            return
        if self.dimensions != dimensions(self.dimensions):
            raise UnbalancedEntryError(f"line {self.account}: dimensions must be sorted")
        names = [name for name, _ in self.dimensions]
        if len(names) != len(set(names)):
            raise UnbalancedEntryError(f"line {self.account}: repeated dimension in {names}")

    @property
    def signed_amount(self) -> Decimal:
        """Debit positive, credit negative: the line's effect on a debit-normal balance."""
        return self.debit - self.credit

    def swapped(self) -> JournalLine:
        """The same line on the other side, for a reversal."""
        return JournalLine(self.account, self.credit, self.debit, self.dimensions)


def _is_line_amount(amount: object) -> bool:
    if type(amount) is Decimal:
        # is_money and fits_precision of an exact Decimal, without the calls (four per line).
        return amount.same_quantum(CENT) and abs(amount) < MAGNITUDE_LIMIT and amount >= 0
    return (
        isinstance(amount, Decimal) and is_money(amount) and fits_precision(amount) and amount >= 0
    )


def debit_line(account: str, amount: Decimal, dims: Dimensions = ()) -> JournalLine:
    return JournalLine(account, money(amount), ZERO, dims)


def credit_line(account: str, amount: Decimal, dims: Dimensions = ()) -> JournalLine:
    return JournalLine(account, ZERO, money(amount), dims)


@dataclass(frozen=True, init=False)
class JournalEntry:
    entry_id: str
    source: SourceRef
    rule_version: str
    business_date: date
    period: str
    quarter: str
    currency: str
    lines: tuple[JournalLine, ...]
    reverses_entry_id: str | None = None
    posting_period: str | None = None
    """The month the entry is booked in when that is not its business month: an event dated
    in a closed period, booked late in the first open one (issue 16). None: its own month."""
    chain: ChainLink | None = None
    """Its link in its posting partition's hash chain (``ledger.chain``), set by the posting
    stage when the entry is first posted; None for an entry not (yet) chained."""

    def __init__(
        self,
        entry_id: str,
        source: SourceRef,
        rule_version: str,
        business_date: date,
        period: str,
        quarter: str,
        currency: str,
        lines: tuple[JournalLine, ...],
        reverses_entry_id: str | None = None,
        posting_period: str | None = None,
        chain: ChainLink | None = None,
    ) -> None:
        # Written out: see "Constructors" in the module docstring.
        fields = self.__dict__
        fields["entry_id"] = entry_id
        fields["source"] = source
        fields["rule_version"] = rule_version
        fields["business_date"] = business_date
        fields["period"] = period
        fields["quarter"] = quarter
        fields["currency"] = currency
        fields["lines"] = lines
        fields["reverses_entry_id"] = reverses_entry_id
        fields["posting_period"] = posting_period
        fields["chain"] = chain
        self.__post_init__()

    def __post_init__(self) -> None:
        # Periods are derived, never chosen: a mismatch would file the entry in the wrong month.
        if self.period != month_of(self.business_date):
            raise ValueError(f"entry {self.entry_id}: period {self.period} != business date")
        if self.quarter != quarter_of(self.business_date):
            raise ValueError(f"entry {self.entry_id}: quarter {self.quarter} != business date")
        assert_balanced(self)

    @property
    def total_debit(self) -> Decimal:
        # sum(..., ZERO) added in the same order, without a generator (asked twice per entry).
        total = ZERO
        for line in self.lines:
            total += line.debit
        return total

    @property
    def total_credit(self) -> Decimal:
        total = ZERO
        for line in self.lines:
            total += line.credit
        return total


def chained(entry: JournalEntry, partition: int, head: ChainHead) -> JournalEntry:
    """``entry`` as the next link of ``partition``'s chain, after ``head``."""
    return chained_record(entry, partition, head)[0]


def chained_record(
    entry: JournalEntry, partition: int, head: ChainHead
) -> tuple[JournalEntry, dict[str, Any]]:
    """``entry`` as the next link of ``partition``'s chain, after ``head``, and its Avro record
    (``to_avro_dict`` of the linked entry), built once: hashed for the link, then sent."""
    assert entry.chain is None, f"entry {entry.entry_id} is already chained"
    record = to_avro_dict(entry)
    link = next_link(record, partition, head)
    record.update(_chain_fields(link))
    # Only the link changes: the content was checked when the entry was built, so the copy
    # is not checked again (``replace`` would run ``__post_init__``).
    linked = object.__new__(JournalEntry)
    linked.__dict__.update(entry.__dict__)
    linked.__dict__["chain"] = link
    return linked, record


def assert_balanced(entry: JournalEntry) -> None:
    """Raise ``UnbalancedEntryError`` unless debits equal credits and both are positive."""
    if not entry.lines:
        raise UnbalancedEntryError(f"entry {entry.entry_id} has no lines")
    total_debit = entry.total_debit
    total_credit = entry.total_credit
    if total_debit != total_credit or total_debit <= 0:
        raise UnbalancedEntryError(
            f"entry {entry.entry_id}: debits {total_debit} != credits {total_credit} "
            "or nothing posted"
        )


# --- serialisation -------------------------------------------------------------------------


def to_avro_dict(entry: JournalEntry) -> dict[str, Any]:
    """The ``fin.ledger.JournalEntry`` record, ready for fastavro."""
    return {
        "entry_id": entry.entry_id,
        "source_event_id": entry.source.event_id,
        "source_event_type": entry.source.event_type,
        "source_topic": entry.source.topic,
        "source_partition": entry.source.partition,
        "source_offset": entry.source.offset,
        "rule_version": entry.rule_version,
        "business_date": entry.business_date,
        "period": entry.period,
        "quarter": entry.quarter,
        "currency": entry.currency,
        "reverses_entry_id": entry.reverses_entry_id,
        "lines": [
            {
                "account": line.account,
                "debit": line.debit,
                "credit": line.credit,
                "dimensions": dict(line.dimensions),
            }
            for line in entry.lines
        ],
        "posting_period": entry.posting_period,
        **_chain_fields(entry.chain),
    }


_CHAIN_FIELD_NAMES = ("chain_partition", "chain_sequence", "previous_hash", "entry_hash")


def _chain_fields(link: ChainLink | None) -> dict[str, Any]:
    if link is None:
        return {
            "chain_partition": None,
            "chain_sequence": None,
            "previous_hash": None,
            "entry_hash": None,
        }
    return {
        "chain_partition": link.partition,
        "chain_sequence": link.sequence,
        "previous_hash": link.previous_hash,
        "entry_hash": link.entry_hash,
    }


def _chain_from(record: Mapping[str, Any]) -> ChainLink | None:
    if record.get("chain_sequence") is None:
        return None
    return ChainLink(
        partition=int(record["chain_partition"]),
        sequence=int(record["chain_sequence"]),
        previous_hash=str(record["previous_hash"]),
        entry_hash=str(record["entry_hash"]),
    )


def from_avro_dict(record: Mapping[str, Any]) -> JournalEntry:
    """Rebuild an entry from a decoded ``fin.ledger.JournalEntry`` record (re-checks balance)."""
    return _entry_from(record)


def to_json_dict(entry: JournalEntry, avro: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Internal JSON form: the Avro record with Decimals and dates as text. ``avro``: the
    entry's ``to_avro_dict`` if the caller has it already (it is copied, not changed)."""
    if avro is None:
        record = to_avro_dict(entry)
    else:
        record = dict(avro)
        record["lines"] = [dict(line) for line in avro["lines"]]
    if entry.chain is None:
        # The form kept in processed rows stays as it was before chains for an unchained
        # entry (a table row's bytes change only when its content does).
        for name in _CHAIN_FIELD_NAMES:
            del record[name]
    if entry.posting_period is None:
        del record["posting_period"]
    record["business_date"] = entry.business_date.isoformat()
    for line in record["lines"]:
        line["debit"] = str(line["debit"])
        line["credit"] = str(line["credit"])
    return record


def from_json_dict(record: Mapping[str, Any]) -> JournalEntry:
    """Rebuild an entry from its internal JSON form (re-checks balance)."""
    return _entry_from(record)


def _as_money(value: Any) -> Decimal:
    # fastavro yields Decimal; JSON yields text. money() refuses a float either way.
    return money(value)


def _as_date(value: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, date):
        return value
    raise TypeError(f"not a date: {value!r}")


def _entry_from(record: Mapping[str, Any]) -> JournalEntry:
    # One reader for both forms: the converters accept Decimal/date (Avro) and text (JSON).
    source = SourceRef(
        event_id=str(record["source_event_id"]),
        event_type=record["source_event_type"],
        topic=record["source_topic"],
        partition=int(record["source_partition"]),
        offset=int(record["source_offset"]),
    )
    lines = tuple(
        JournalLine(
            account=line["account"],
            debit=_as_money(line["debit"]),
            credit=_as_money(line["credit"]),
            dimensions=dimensions(line["dimensions"]),
        )
        for line in record["lines"]
    )
    return JournalEntry(
        entry_id=str(record["entry_id"]),
        source=source,
        rule_version=record["rule_version"],
        business_date=_as_date(record["business_date"]),
        period=record["period"],
        quarter=record["quarter"],
        currency=record["currency"],
        lines=lines,
        reverses_entry_id=record.get("reverses_entry_id"),
        posting_period=record.get("posting_period"),
        chain=_chain_from(record),
    )
