"""Dead letters as read back from ``fin.dlq``: their position, headers and payload; which ones a
command selects; the listing and the description ``python app.py dlq list|show`` print.

Every read of the topic is ``streams.topic_scan.read_topic``'s: from the beginning to the end
offsets captured when the read started, under a deadline.
"""

from __future__ import annotations

import heapq
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from kafka import TopicPartition

from errors import RegistryUnavailableError
from ledger.rejections import Reason, Rejection
from schemas.codec import Decoded
from settings import DLQ_TOPIC, Settings
from streams.deadletter import (
    DeadLetter,
    DlqError,
    DlqPosition,
    aware,
)
from streams.topic_scan import (
    POLL_TIMEOUT_MS,
    READ_TIMEOUT_S,
    Consumer,
    before_end,
    read_topic,
)

LIST_LIMIT_DEFAULT = 1000
DETAIL_SHOWN_LENGTH_MAX = 80
HEX_DUMP_LENGTH_MAX = 64
HEX_DUMP_ROW_LENGTH = 16


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or time from the command line; without a zone it is UTC."""
    try:
        return aware(datetime.fromisoformat(text.strip()))
    except ValueError as exc:
        raise DlqError(f"not an ISO 8601 date or time: {text!r}") from exc


def read_dead_letters(
    consumer: Consumer, settings: Settings, *, timeout_s: float = READ_TIMEOUT_S
) -> Iterator[DeadLetter]:
    return (
        DeadLetter.of(record)
        for record in read_topic(consumer, settings.topic(DLQ_TOPIC), timeout_s=timeout_s)
    )


def read_dead_letter(
    consumer: Consumer,
    settings: Settings,
    position: DlqPosition,
    *,
    timeout_s: float = READ_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> DeadLetter | None:
    """The dead letter at ``position``, or None when there is none."""
    topic = settings.topic(DLQ_TOPIC)
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise DlqError(f"topic {topic} does not exist")
    if position.partition not in numbers:
        return None
    partition = TopicPartition(topic, position.partition)
    consumer.assign([partition])
    first = consumer.beginning_offsets([partition])[partition]
    end = consumer.end_offsets([partition])[partition]
    if not first <= position.offset < end:
        return None
    consumer.seek(partition, position.offset)
    deadline = clock() + timeout_s
    while before_end(consumer, partition, {partition: end}):
        if clock() > deadline:
            raise DlqError(f"could not read {topic} at {position} within {timeout_s:.0f}s")
        for record in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).get(partition, ()):
            if record.offset == position.offset:
                return DeadLetter.of(record)
            if record.offset > position.offset:
                return None  # the offset holds no record (a transaction marker)
    return None


# --- selection and listing --------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command applies to; an empty criterion selects everything.

    ``since`` is inclusive and ``until`` exclusive, both compared with ``fin.rejected_at``.
    """

    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    source_topics: frozenset[str] = frozenset()
    positions: frozenset[DlqPosition] = frozenset()

    @classmethod
    def from_arguments(
        cls,
        *,
        reasons: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        source_topics: Iterable[str] = (),
        positions: Iterable[str] = (),
    ) -> Selection:
        """A selection from command-line text; DlqError names the first bad value."""
        known = {str(reason) for reason in Reason}
        unknown = sorted(set(reasons) - known)
        if unknown:
            raise DlqError(
                f"unknown reason(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        selection = cls(
            reasons=frozenset(reasons),
            since=parse_instant(since) if since else None,
            until=parse_instant(until) if until else None,
            source_topics=frozenset(source_topics),
            positions=frozenset(DlqPosition.parse(text) for text in positions),
        )
        if selection.since and selection.until and selection.since >= selection.until:
            raise DlqError("--since must be before --until")
        return selection

    def matches(self, letter: DeadLetter) -> bool:
        if self.positions and letter.position not in self.positions:
            return False
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.source_topics:
            source = letter.source
            if source is None or source.topic not in self.source_topics:
                return False
        rejected_at = letter.rejected_at
        if self.since is not None and rejected_at < self.since:
            return False
        return self.until is None or rejected_at < self.until


@dataclass(frozen=True)
class Listing:
    """The dead letters a selection matched: the first ``limit`` in time order, and counts."""

    shown: list[DeadLetter]
    matched_count: int
    read_count: int
    count_by_reason: Counter[str]


def list_dead_letters(
    letters: Iterable[DeadLetter], selection: Selection, *, limit: int = LIST_LIMIT_DEFAULT
) -> Listing:
    assert limit >= 0
    read_count = 0
    count_by_reason: Counter[str] = Counter()

    def matching() -> Iterator[DeadLetter]:
        nonlocal read_count
        for letter in letters:
            read_count += 1
            if selection.matches(letter):
                count_by_reason[letter.reason] += 1
                yield letter

    # nsmallest keeps at most `limit` letters in memory, however long the topic is.
    shown = heapq.nsmallest(limit, matching(), key=_time_order)
    return Listing(shown, sum(count_by_reason.values()), read_count, count_by_reason)


def _time_order(letter: DeadLetter) -> tuple[datetime, DlqPosition]:
    return (letter.rejected_at, letter.position)


def format_line(letter: DeadLetter) -> str:
    source = letter.source
    where = f"{source.topic}[{source.partition}]@{source.offset}" if source else "(no source)"
    detail = " ".join(letter.detail.split())
    if len(detail) > DETAIL_SHOWN_LENGTH_MAX:
        detail = detail[: DETAIL_SHOWN_LENGTH_MAX - 3] + "..."
    return "  ".join(
        (
            str(letter.position),
            instant_text(letter.rejected_at),
            letter.reason,
            where,
            f"event={letter.event_id or '-'}",
            f"attempts={letter.attempts}",
            detail,
        )
    )


def instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    source = letter.source
    return {
        "position": str(letter.position),
        "partition": letter.position.partition,
        "offset": letter.position.offset,
        "rejected_at": instant_text(letter.rejected_at),
        "reason": letter.reason,
        "detail": letter.detail,
        "source": (
            {"topic": source.topic, "partition": source.partition, "offset": source.offset}
            if source
            else None
        ),
        "event_id": letter.event_id,
        "attempts": letter.attempts,
        "key": _key_text(letter.key),
        "value_length": None if letter.value is None else len(letter.value),
    }


def print_listing(listing: Listing, out: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        document = {
            "dead_letters": [letter_json(letter) for letter in listing.shown],
            "matched": listing.matched_count,
            "read": listing.read_count,
            "count_by_reason": dict(sorted(listing.count_by_reason.items())),
        }
        out.write(json.dumps(document, indent=2) + "\n")
        return
    for letter in listing.shown:
        out.write(format_line(letter) + "\n")
    hidden = listing.matched_count - len(listing.shown)
    if hidden:
        out.write(f"... {hidden} more not shown (raise --limit or narrow the selection)\n")
    out.write(f"{listing.matched_count} of {listing.read_count} dead letters match\n")
    width = max((len(reason) for reason in listing.count_by_reason), default=0)
    for reason, count in sorted(listing.count_by_reason.items()):
        out.write(f"  {reason:<{width}}  {count}\n")


# --- show -----------------------------------------------------------------------------------

Decode = Callable[[str, bytes | None], Decoded | Rejection]


def describe(letter: DeadLetter, decode: Decode) -> str:
    """Every header, the key, and the payload as JSON when it decodes, else a hex dump and why."""
    out = io.StringIO()
    written_at = datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC)
    out.write(f"dead letter {letter.position}, written {instant_text(written_at)}\n")
    out.write("headers:\n")
    for name, value in letter.headers:
        out.write(f"  {name}: {value.decode('utf-8', 'replace') if value is not None else ''}\n")
    out.write(f"key: {_key_text(letter.key)}\n")
    source = letter.source
    if letter.value is None:
        out.write("payload: none (a tombstone)\n")
        return out.getvalue()
    if source is None:
        problem = "the headers do not name a source topic"
    else:
        try:
            decoded = decode(source.topic, letter.value)
        except RegistryUnavailableError as exc:
            problem = f"the schema registry is unavailable: {exc}"
        else:
            if isinstance(decoded, Decoded):
                out.write(f"payload: {decoded.fullname}, schema id {decoded.schema_id}\n")
                out.write(json.dumps(json_compatible(decoded.record), indent=2) + "\n")
                return out.getvalue()
            problem = f"{decoded.reason}: {decoded.detail}"
    out.write(f"payload: {len(letter.value)} bytes, not decoded: {problem}\n")
    out.write(hex_dump(letter.value[:HEX_DUMP_LENGTH_MAX]))
    return out.getvalue()


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + key.hex()
    return text if text.isprintable() else "0x" + key.hex()


def json_compatible(value: Any) -> Any:
    """``value`` with decimals, dates, times and bytes as strings, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(key): json_compatible(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_compatible(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return instant_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def hex_dump(data: bytes) -> str:
    rows = []
    for start in range(0, len(data), HEX_DUMP_ROW_LENGTH):
        chunk = data[start : start + HEX_DUMP_ROW_LENGTH]
        hex_part = " ".join(f"{byte:02x}" for byte in chunk)
        text_part = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        rows.append(f"  {start:08x}  {hex_part:<{HEX_DUMP_ROW_LENGTH * 3 - 1}}  |{text_part}|\n")
    return "".join(rows)
