"""The newest dead letters of ``fin.dlq``, read from each partition's tail by a consumer without
a group (every worker's dead letters, not only this one's), for the status page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.deadletter import DeadLetter

log = logging.getLogger(__name__)

DEAD_LETTERS_SHOWN = 20
DEAD_LETTERS_READ_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class RecentDeadLetter:
    position: str  # partition:offset in fin.dlq, what `python app.py dlq show` takes
    rejected_at: datetime
    reason: str
    source: str  # topic[partition]@offset, or "(no source)"
    event_id: str | None
    detail: str

    @property
    def show_command(self) -> str:
        return f"python app.py dlq show {self.position}"

    @classmethod
    def of(cls, letter: DeadLetter) -> RecentDeadLetter:
        source = letter.source
        where = f"{source.topic}[{source.partition}]@{source.offset}" if source else "(no source)"
        return cls(
            position=str(letter.position),
            rejected_at=letter.rejected_at,
            reason=letter.reason,
            source=where,
            event_id=letter.event_id,
            detail=" ".join(letter.detail.split()),
        )


class RecentDeadLetters:
    """The newest ``limit`` dead letters of the topic, read from each partition's tail."""

    def __init__(self, bootstrap: str, topic: str, limit: int = DEAD_LETTERS_SHOWN) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._limit = limit
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self.letters: tuple[RecentDeadLetter, ...] = ()
        self.error: str | None = None

    async def refresh(self) -> None:
        async with self._lock:
            try:
                await asyncio.wait_for(self._read(), DEAD_LETTERS_READ_TIMEOUT_S)
                self.error = None
            except Exception as exc:  # the page shows it; processing is not concerned
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("status page: the last dead letters could not be read: %s", exc)
                await self.stop()

    async def _read(self) -> None:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap.split(","),
                group_id=None,
                enable_auto_commit=False,
            )
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        cluster = await consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(self._topic) or set()
        partitions = [TopicPartition(self._topic, number) for number in sorted(numbers)]
        if not partitions:
            self.letters = ()
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if ends == self._ends:
            return  # nothing new since the last read
        starts = await consumer.beginning_offsets(partitions)
        wanted: dict[TopicPartition, int] = {}
        for tp in partitions:
            first = max(starts.get(tp, 0), ends[tp] - self._limit)
            if first < ends[tp]:
                consumer.seek(tp, first)
                wanted[tp] = ends[tp]
        letters: list[DeadLetter] = []
        while wanted:
            fetched = await consumer.getmany(*wanted, timeout_ms=500)
            for tp, records in fetched.items():
                letters.extend(
                    DeadLetter.of(record) for record in records if record.offset < wanted[tp]
                )
            for tp in list(wanted):
                if await consumer.position(tp) >= wanted[tp]:
                    del wanted[tp]
        letters.sort(key=lambda letter: (letter.rejected_at, letter.position), reverse=True)
        self.letters = tuple(RecentDeadLetter.of(letter) for letter in letters[: self._limit])
        self._ends = ends

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._ends = {}
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
