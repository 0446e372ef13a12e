"""Dead-letter tooling behind ``python app.py dlq list|show|replay``.

Synchronous (kafka-python): an operator runs it by hand. Every read of a topic assigns all of its
partitions, starts at the beginning and stops at the end offsets captured when the read started,
so a dead-letter topic that keeps growing never makes a command hang; a read also has a deadline.

A replay re-publishes a dead letter's original key and value bytes to its source topic (the
partition it came from), with two headers: ``fin.replay.attempt``, the processing attempt the
replay will be, and ``fin.replay.of``, the dead letter's ``partition:offset``. The replayed record
then takes the normal path, idempotency included. Each replayed dead letter gets a marker in the
compacted topic ``fin.dlq.replayed`` keyed by its ``partition:offset``, so the same dead letter is
never replayed twice. The marker also names where the replay landed: when that record is refused
again, its new dead letter is known to be attempt N even if the worker did not say so.
"""

from __future__ import annotations

import heapq
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TextIO

from kafka import TopicPartition

from errors import FinError, RegistryUnavailableError
from ledger.rejections import Reason, Rejection
from schemas.codec import Decoded
from settings import COMMANDS_TOPIC, DLQ_TOPIC, SOURCE_TOPICS, Settings
from streams.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_DETAIL,
    HEADER_EVENT_ID,
    HEADER_REASON,
    HEADER_REJECTED_AT,
    HEADER_REPLAY_ATTEMPT,
    HEADER_REPLAY_OF,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    SourcePosition,
    header_map,
)

log = logging.getLogger(__name__)

REPLAYED_TOPIC = "fin.dlq.replayed"
# Only the topics FIN's ingest agents read: a replay anywhere else would go unseen.
REPLAYABLE_TOPICS = frozenset((*SOURCE_TOPICS, COMMANDS_TOPIC))

MAX_ATTEMPTS_DEFAULT = 3
LIST_LIMIT_DEFAULT = 1000
READ_TIMEOUT_S = 60.0
SEND_TIMEOUT_S = 30.0
POLL_TIMEOUT_MS = 500
DETAIL_SHOWN_LENGTH_MAX = 80
HEX_DUMP_LENGTH_MAX = 64
HEX_DUMP_ROW_LENGTH = 16


class DlqError(FinError):
    """A dead-letter command cannot do what it was asked (bad input, missing topic, timeout)."""


# --- what is read from Kafka ------------------------------------------------------------------


class KafkaRecord(Protocol):
    """The fields of a consumed record this module reads (kafka-python's ConsumerRecord)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class Consumer(Protocol):
    """The part of kafka-python's ``KafkaConsumer`` used here (tests pass a hand-written fake)."""

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    def position(self, partition: TopicPartition) -> int | None: ...

    def poll(self, timeout_ms: int = 0) -> Mapping[TopicPartition, Sequence[KafkaRecord]]: ...


class SentMetadata(Protocol):
    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class SendFuture(Protocol):
    def get(self, timeout: float | None = None) -> SentMetadata: ...


class Producer(Protocol):
    """The part of kafka-python's ``KafkaProducer`` used here."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> SendFuture: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True, order=True)
class DlqPosition:
    """Where a dead letter sits in the dead-letter topic; written ``partition:offset``."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> DlqPosition:
        partition, separator, offset = text.strip().partition(":")
        try:
            position = cls(int(partition), int(offset))
        except ValueError:
            position = None
        if not separator or position is None or position.partition < 0 or position.offset < 0:
            raise DlqError(f"not a dead-letter position (PARTITION:OFFSET): {text!r}")
        return position

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic: the refused record's bytes and FIN's headers."""

    position: DlqPosition
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: KafkaRecord) -> DeadLetter:
        return cls(
            DlqPosition(record.partition, record.offset),
            record.timestamp,
            record.key,
            record.value,
            tuple(record.headers or ()),
        )

    @property
    def text_headers(self) -> dict[str, str]:
        return header_map(self.headers)

    @property
    def reason(self) -> str:
        return self.text_headers.get(HEADER_REASON, "(no reason)")

    @property
    def detail(self) -> str:
        return self.text_headers.get(HEADER_DETAIL, "")

    @property
    def event_id(self) -> str | None:
        return self.text_headers.get(HEADER_EVENT_ID)

    @property
    def source(self) -> SourcePosition | None:
        """The record's position in its source topic (contract name), if the headers say."""
        headers = self.text_headers
        topic = headers.get(HEADER_SOURCE_TOPIC)
        partition = _int_or_none(headers.get(HEADER_SOURCE_PARTITION))
        offset = _int_or_none(headers.get(HEADER_SOURCE_OFFSET))
        if not topic or partition is None or offset is None:
            return None
        return SourcePosition(topic, partition, offset)

    @property
    def attempts(self) -> int:
        """How many times the worker has processed this record, by its own count (at least 1)."""
        attempts = _int_or_none(self.text_headers.get(HEADER_ATTEMPTS))
        return attempts if attempts is not None and attempts >= 1 else 1

    @property
    def rejected_at(self) -> datetime:
        text = self.text_headers.get(HEADER_REJECTED_AT)
        if text:
            try:
                return _aware(datetime.fromisoformat(text))
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or time from the command line; without a zone it is UTC."""
    try:
        return _aware(datetime.fromisoformat(text.strip()))
    except ValueError as exc:
        raise DlqError(f"not an ISO 8601 date or time: {text!r}") from exc


def read_topic(
    consumer: Consumer,
    topic: str,
    *,
    timeout_s: float = READ_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[KafkaRecord]:
    """Every record of ``topic`` from the beginning up to its end offsets as of this call.

    Records written after the call starts are not returned. Raises DlqError when the topic does
    not exist or the end is not reached within ``timeout_s``.
    """
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise DlqError(f"topic {topic} does not exist")
    partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    pending = {partition for partition in partitions if _before(consumer, partition, end)}
    consumer.pause(*(partition for partition in partitions if partition not in pending))
    deadline = clock() + timeout_s
    while pending:
        if clock() > deadline:
            raise DlqError(f"could not read {topic} to its end within {timeout_s:.0f}s")
        for partition, records in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).items():
            yield from (record for record in records if record.offset < end[partition])
        done = {partition for partition in pending if not _before(consumer, partition, end)}
        if done:
            consumer.pause(*done)
            pending -= done


def _before(
    consumer: Consumer, partition: TopicPartition, end: Mapping[TopicPartition, int]
) -> bool:
    # The position, not the last record's offset, says whether the end was reached: transaction
    # markers occupy offsets that never come back as records. An unknown position is not the
    # end; the read's deadline bounds the wait for it.
    position = consumer.position(partition)
    return position is None or position < end[partition]


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
    while _before(consumer, partition, {partition: end}):
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
            _instant_text(letter.rejected_at),
            letter.reason,
            where,
            f"event={letter.event_id or '-'}",
            f"attempts={letter.attempts}",
            detail,
        )
    )


def _instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    source = letter.source
    return {
        "position": str(letter.position),
        "partition": letter.position.partition,
        "offset": letter.position.offset,
        "rejected_at": _instant_text(letter.rejected_at),
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
    out.write(f"dead letter {letter.position}, written {_instant_text(written_at)}\n")
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
        return _instant_text(value)
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


# --- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayMarker:
    """A dead letter that was replayed, and where the replay landed (contract topic name)."""

    dead_letter: DlqPosition
    replayed_at: datetime
    topic: str
    partition: int
    offset: int
    attempt: int

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "dead_letter": str(self.dead_letter),
                "replayed_at": self.replayed_at.astimezone(UTC).isoformat(),
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "attempt": self.attempt,
            }
        ).encode()

    @classmethod
    def from_json(cls, value: bytes) -> ReplayMarker:
        body = json.loads(value)
        return cls(
            dead_letter=DlqPosition.parse(body["dead_letter"]),
            replayed_at=datetime.fromisoformat(body["replayed_at"]),
            topic=str(body["topic"]),
            partition=int(body["partition"]),
            offset=int(body["offset"]),
            attempt=int(body["attempt"]),
        )

    @property
    def landed_at(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


class ReplayLog:
    """What earlier replays did, read back from the marker topic."""

    def __init__(self, markers: Mapping[DlqPosition, ReplayMarker] | None = None) -> None:
        self.markers: dict[DlqPosition, ReplayMarker] = dict(markers or {})
        self._attempt_landed_at = {
            marker.landed_at: marker.attempt for marker in self.markers.values()
        }

    def attempts(self, letter: DeadLetter) -> int:
        """Processing attempts behind a dead letter: the worker's count, or the replay's own when
        the refused record was itself a replay (for a worker that does not carry the count)."""
        source = letter.source
        replayed_as = (
            self._attempt_landed_at.get((source.topic, source.partition, source.offset), 0)
            if source
            else 0
        )
        return max(letter.attempts, replayed_as)


def read_replay_log(
    consumer: Consumer, settings: Settings, *, timeout_s: float = READ_TIMEOUT_S
) -> ReplayLog:
    """The markers of earlier replays; none when the marker topic does not exist yet."""
    topic = settings.topic(REPLAYED_TOPIC)
    if not consumer.partitions_for_topic(topic):
        return ReplayLog()
    markers: dict[DlqPosition, ReplayMarker] = {}
    for record in read_topic(consumer, topic, timeout_s=timeout_s):
        if record.key is None:
            continue
        position = DlqPosition.parse(record.key.decode("utf-8", "replace"))
        if record.value is None:  # a tombstone: an operator allowed this one to be replayed again
            markers.pop(position, None)
            continue
        try:
            markers[position] = ReplayMarker.from_json(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            # Only this module writes markers; replaying on a marker we cannot read could replay
            # a dead letter twice, so stop instead.
            raise DlqError(
                f"unreadable replay marker for {position} at {topic}[{record.partition}]"
                f"@{record.offset}: {exc}"
            ) from exc
    return ReplayLog(markers)


class Verdict(StrEnum):
    """What a replay run does with one selected dead letter, in precedence order."""

    REPLAY = "replay"
    ALREADY_REPLAYED = "already_replayed"
    NO_SOURCE = "no_source"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


@dataclass(frozen=True)
class PlannedReplay:
    letter: DeadLetter
    verdict: Verdict
    attempt: int  # the processing attempt a replay would be
    note: str = ""


def plan_replay(
    letters: Iterable[DeadLetter],
    selection: Selection,
    replay_log: ReplayLog,
    *,
    max_attempts: int = MAX_ATTEMPTS_DEFAULT,
) -> list[PlannedReplay]:
    """A verdict for every selected dead letter, in dead-letter order; nothing is sent."""
    assert max_attempts >= 1
    plans = []
    for letter in sorted(
        (letter for letter in letters if selection.matches(letter)),
        key=lambda letter: letter.position,
    ):
        attempt = replay_log.attempts(letter) + 1
        plans.append(_verdict(letter, attempt, replay_log, max_attempts))
    return plans


def _verdict(
    letter: DeadLetter, attempt: int, replay_log: ReplayLog, max_attempts: int
) -> PlannedReplay:
    marker = replay_log.markers.get(letter.position)
    if marker is not None:
        note = (
            f"replayed {_instant_text(marker.replayed_at)} as attempt {marker.attempt} to "
            f"{marker.topic}[{marker.partition}]@{marker.offset}"
        )
        return PlannedReplay(letter, Verdict.ALREADY_REPLAYED, attempt, note)
    source = letter.source
    if source is None:
        return PlannedReplay(letter, Verdict.NO_SOURCE, attempt, "no source position in headers")
    if source.topic not in REPLAYABLE_TOPICS:
        note = f"{source.topic} is not a topic FIN consumes"
        return PlannedReplay(letter, Verdict.NO_SOURCE, attempt, note)
    if attempt > max_attempts:
        note = f"{attempt - 1} attempts made, the cap is {max_attempts}"
        return PlannedReplay(letter, Verdict.ATTEMPTS_EXHAUSTED, attempt, note)
    return PlannedReplay(letter, Verdict.REPLAY, attempt)


def replay_headers(letter: DeadLetter, attempt: int) -> list[tuple[str, bytes]]:
    return [
        (HEADER_REPLAY_ATTEMPT, str(attempt).encode()),
        (HEADER_REPLAY_OF, str(letter.position).encode()),
    ]


@dataclass(frozen=True)
class ReplayReport:
    plans: list[PlannedReplay]
    replayed: list[ReplayMarker]
    failed: list[tuple[PlannedReplay, str]]
    dry_run: bool

    def count(self, verdict: Verdict) -> int:
        return sum(1 for plan in self.plans if plan.verdict is verdict)


def execute_replay(
    plans: Sequence[PlannedReplay],
    producer: Producer,
    settings: Settings,
    now: datetime,
    *,
    timeout_s: float = SEND_TIMEOUT_S,
) -> tuple[list[ReplayMarker], list[tuple[PlannedReplay, str]]]:
    """Send every planned replay, then a marker for each one Kafka accepted.

    Markers come after the replays: a crash in between can replay a dead letter twice, which the
    posting agent's idempotency absorbs; the other order could lose a replay.
    """
    pending = []
    for plan in plans:
        if plan.verdict is not Verdict.REPLAY:
            continue
        source = plan.letter.source
        assert source is not None
        future = producer.send(
            settings.topic(source.topic),
            value=plan.letter.value,
            key=plan.letter.key,
            headers=replay_headers(plan.letter, plan.attempt),
            partition=source.partition,
        )
        pending.append((plan, source.topic, future))
    producer.flush(timeout=timeout_s)
    replayed: list[ReplayMarker] = []
    failed: list[tuple[PlannedReplay, str]] = []
    for plan, topic, future in pending:
        try:
            metadata = future.get(timeout=timeout_s)
        except Exception as exc:  # kafka-python fails a future with many unrelated types
            failed.append((plan, f"{type(exc).__name__}: {exc}"))
            continue
        replayed.append(
            ReplayMarker(
                plan.letter.position, now, topic, metadata.partition, metadata.offset, plan.attempt
            )
        )
    marker_futures = [
        producer.send(
            settings.topic(REPLAYED_TOPIC),
            value=marker.to_json(),
            key=str(marker.dead_letter).encode(),
        )
        for marker in replayed
    ]
    producer.flush(timeout=timeout_s)
    for future in marker_futures:
        # Fail loudly: the replays went out, and without markers a second run would repeat them.
        future.get(timeout=timeout_s)
    return replayed, failed


def replay(
    consumer: Consumer,
    producer: Producer,
    settings: Settings,
    selection: Selection,
    *,
    max_attempts: int = MAX_ATTEMPTS_DEFAULT,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ReplayReport:
    replay_log = read_replay_log(consumer, settings)
    plans = plan_replay(
        read_dead_letters(consumer, settings), selection, replay_log, max_attempts=max_attempts
    )
    if dry_run:
        return ReplayReport(plans, [], [], dry_run=True)
    replayed, failed = execute_replay(plans, producer, settings, now or datetime.now(UTC))
    return ReplayReport(plans, replayed, failed, dry_run=False)


def print_replay_report(report: ReplayReport, selection: Selection, out: TextIO) -> None:
    landed = {marker.dead_letter: marker for marker in report.replayed}
    failed = {plan.letter.position: error for plan, error in report.failed}
    for plan in report.plans:
        letter = plan.letter
        what = f"{letter.position}  {letter.reason}  event={letter.event_id or '-'}"
        source = letter.source
        if plan.verdict is Verdict.REPLAY and report.dry_run:
            assert source is not None
            out.write(
                f"would replay {what} to {source.topic}[{source.partition}] "
                f"as attempt {plan.attempt}\n"
            )
        elif plan.verdict is Verdict.REPLAY and letter.position in failed:
            out.write(f"FAILED {what}: {failed[letter.position]}\n")
        elif plan.verdict is Verdict.REPLAY:
            marker = landed[letter.position]
            out.write(
                f"replayed {what} to {marker.topic}[{marker.partition}]@{marker.offset} "
                f"as attempt {marker.attempt}\n"
            )
        else:
            out.write(f"skipped {what}: {plan.verdict}: {plan.note}\n")
    missing = sorted(selection.positions - {plan.letter.position for plan in report.plans})
    for position in missing:
        out.write(f"not found {position}\n")
    sent = report.count(Verdict.REPLAY) if report.dry_run else len(report.replayed)
    out.write(
        f"{'would replay' if report.dry_run else 'replayed'} {sent}"
        f", already replayed {report.count(Verdict.ALREADY_REPLAYED)}"
        f", attempts exhausted {report.count(Verdict.ATTEMPTS_EXHAUSTED)}"
        f", no source {report.count(Verdict.NO_SOURCE)}"
        f", failed {len(report.failed)}"
        f", not found {len(missing)}\n"
    )


# --- the commands (real Kafka) --------------------------------------------------------------


def _consumer(settings: Settings) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="fin-dlq",
        group_id=None,
        enable_auto_commit=False,
        bootstrap_timeout_ms=15_000,
    )


def _producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="fin-dlq-replay",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


def _kafka_failure(settings: Settings, exc: Exception) -> DlqError:
    return DlqError(f"Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}")


def list_command(
    settings: Settings, selection: Selection, out: TextIO, *, limit: int, as_json: bool
) -> int:
    from kafka.errors import KafkaError

    try:
        consumer = _consumer(settings)
        try:
            listing = list_dead_letters(
                read_dead_letters(consumer, settings), selection, limit=limit
            )
        finally:
            consumer.close()
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    print_listing(listing, out, as_json=as_json)
    return 0


def show_command(settings: Settings, position: DlqPosition, out: TextIO) -> int:
    from kafka.errors import KafkaError

    from schemas.catalog import SchemaCatalog
    from schemas.codec import Decoder
    from schemas.registry import RegistryClient

    try:
        consumer = _consumer(settings)
        try:
            letter = read_dead_letter(consumer, settings, position)
        finally:
            consumer.close()
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    if letter is None:
        raise DlqError(f"no dead letter at {position} in {settings.topic(DLQ_TOPIC)}")
    registry = RegistryClient(settings.schema_registry_url, timeout_s=settings.registry_timeout_s)
    try:
        decoder = Decoder(SchemaCatalog.load(settings.schema_dir), registry.get_schema)
        out.write(describe(letter, decoder.decode))
    finally:
        registry.close()
    return 0


def ensure_replayed_topic(settings: Settings) -> None:
    """Create the compacted marker topic if it is missing (idempotent)."""
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from streams.admin import admin_client

    topic = settings.topic(REPLAYED_TOPIC)
    client = admin_client(settings, wait_s=15.0)
    try:
        if topic in set(client.list_topics()):
            return
        try:
            client.create_topics(
                {
                    topic: {
                        "num_partitions": 1,
                        "replication_factor": -1,
                        "configs": {"cleanup.policy": "compact"},
                    }
                },
                wait_for_metadata=True,
            )
        except TopicAlreadyExistsError:
            pass  # another replay created it at the same moment
        except KafkaError as exc:
            if "TopicAlreadyExists" not in repr(exc):
                raise
    finally:
        client.close()


def replay_command(
    settings: Settings,
    selection: Selection,
    out: TextIO,
    *,
    max_attempts: int,
    dry_run: bool,
) -> int:
    from kafka.errors import KafkaError

    if max_attempts < 1:
        raise DlqError(f"--max-attempts must be at least 1, got {max_attempts}")
    try:
        if not dry_run:
            ensure_replayed_topic(settings)
        consumer = _consumer(settings)
        producer = _producer(settings) if not dry_run else None
        try:
            report = replay(
                consumer,
                producer if producer is not None else _NoProducer(),
                settings,
                selection,
                max_attempts=max_attempts,
                dry_run=dry_run,
            )
        finally:
            consumer.close()
            if producer is not None:
                producer.close(timeout=SEND_TIMEOUT_S)
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    print_replay_report(report, selection, out)
    found = {plan.letter.position for plan in report.plans}
    return 1 if report.failed or not selection.positions <= found else 0


class _NoProducer:
    """The producer of a dry run: asked to send anything, it is a bug."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> SendFuture:
        raise AssertionError(f"a dry run tried to send to {topic}")

    def flush(self, timeout: float | None = None) -> None:
        raise AssertionError("a dry run tried to flush a producer")
