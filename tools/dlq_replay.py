"""Replaying dead letters (``python app.py dlq replay``): the plan, its markers and the sends.

A replay re-publishes a dead letter's original key and value bytes to its source topic (the
partition it came from), with two headers: ``fin.replay.attempt``, the processing attempt the
replay will be, and ``fin.replay.of``, the dead letter's ``partition:offset``. The replayed record
then takes the normal path, idempotency included. Each replayed dead letter gets a marker in the
compacted topic ``fin.dlq.replayed`` keyed by its ``partition:offset``, so the same dead letter is
never replayed twice. The marker also names where the replay landed: when that record is refused
again, its new dead letter is known to be attempt N even if the worker did not say so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, TextIO

from ledger.contract import COMMANDS_TOPIC, DLQ_REPLAYED_TOPIC, SOURCE_TOPICS
from settings import Settings
from streams.deadletter import (
    HEADER_REPLAY_ATTEMPT,
    HEADER_REPLAY_OF,
    DeadLetter,
    DlqError,
    DlqPosition,
)
from streams.topic_scan import (
    READ_TIMEOUT_S,
    Consumer,
    read_topic,
)
from tools.dlq_records import Selection, instant_text, read_dead_letters

log = logging.getLogger(__name__)

REPLAYED_TOPIC = DLQ_REPLAYED_TOPIC
# Only the topics FIN's ingest agents read: a replay anywhere else would go unseen.
REPLAYABLE_TOPICS = frozenset((*SOURCE_TOPICS, COMMANDS_TOPIC))

MAX_ATTEMPTS_DEFAULT = 3
SEND_TIMEOUT_S = 30.0


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
            f"replayed {instant_text(marker.replayed_at)} as attempt {marker.attempt} to "
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
