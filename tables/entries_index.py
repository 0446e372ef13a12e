"""Every worker's own copy of ``fin.ledger.postings``, keyed by entry id (batched runtime).

``GET /ledger/entries/{id}`` needs an entry by its id. The classic runtime keeps an ``entries``
table written by an agent that reads the ledger topic back: a faust pass and a changelog record
per entry (~0.95 of the records written per input event). Yet the ledger topic already *is* a
durable log of every entry keyed by entry id. So here each worker reads it with a plain client
(no consumer group, every partition) into a local RocksDB database, its read position stored in
the same write batch as the entries: a projection, rebuilt from the topic when the directory is
lost, with nothing written to Kafka. Any worker answers any entry id from its own copy, no
routing needed. The ledger topic must keep its records (``retention.ms=-1``; see
``streams.admin``), as the book of record.

A look-up that misses first reads the topic up to its end as of that moment (a few ms when the
copy is current), so an entry already on the topic is always found; if the copy cannot catch
up in time the caller answers 503 "catching up", never a wrong 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Options, Rdict, WriteBatch

from errors import FinError
from tables.topic_reader import read_forever, topic_partitions

log = logging.getLogger(__name__)

_POSITION_PREFIX = b"\x00position:"  # entry ids are uuids: no key starts with a NUL byte
FETCH_RECORDS_MAX = 5_000
CATCH_UP_WAIT_S = 3.0
FRESH_ENTRIES_MAX = 200_000  # beyond this the chain watcher re-reads the whole copy instead


class IndexBehindError(FinError):
    """The local copy of the ledger topic has not caught up with it (yet)."""


END_OFFSETS_INTERVAL_S = 2.0
# The broker holds a fetch of the ledger topic up to this long for a fetch's worth of entries
# (aiokafka's defaults answer at the first byte: under load, a fetch and a RocksDB batch per
# few entries, on the worker's event loop). An entry is findable at most this much later.
FETCH_MAX_WAIT_MS = 100
FETCH_MIN_BYTES = 1024 * 1024


class EntriesIndex:
    def __init__(self, bootstrap: str, topic: str, path: Path) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._db = Rdict(str(path), options)
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._end_offsets: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # Records copied since the chain watcher last took them (api.integrity.ChainWatch);
        # None: the watcher has not started, it reads the whole copy first.
        self._fresh: list[tuple[bytes, str]] | None = None

    def get(self, entry_id: str) -> bytes | None:
        value = self._db.get(entry_id.encode())
        return value if isinstance(value, bytes) else None

    async def find(self, entry_id: str, wait_s: float = CATCH_UP_WAIT_S) -> bytes | None:
        """The entry, reading the topic up to its end as of now first if it is not here yet:
        an entry on the topic when the question is asked is found (raises ``IndexBehindError``
        if the copy could not catch up within ``wait_s``); None: no such entry."""
        value = self.get(entry_id)
        if value is not None:
            return value
        consumer = self._consumer
        if consumer is None:
            raise IndexBehindError("the copy of the ledger topic is not reading yet")
        ends = await consumer.end_offsets(
            [TopicPartition(self._topic, partition) for partition in self._positions]
        )
        wanted = {tp.partition: offset for tp, offset in ends.items()}
        for partition, end in wanted.items():
            self._end_offsets[partition] = max(self._end_offsets.get(partition, 0), end)
        deadline = asyncio.get_running_loop().time() + wait_s
        while any(self._positions.get(p, 0) < end for p, end in wanted.items()):
            if asyncio.get_running_loop().time() > deadline:
                raise IndexBehindError(
                    f"this worker's copy of the ledger topic is {self.behind} record(s) behind"
                )
            await asyncio.sleep(0.02)
        return self.get(entry_id)

    @property
    def behind(self) -> int:
        """Records on the topic (as of the last look at its end) not in this copy yet."""
        return sum(
            max(0, end - self._positions.get(partition, 0))
            for partition, end in self._end_offsets.items()
        )

    def take_new_entries(self) -> list[tuple[bytes, str]]:
        """(value, where) of every entry copied since the last call; on the first call (or
        after too many piled up) every entry of the copy, its id as the place."""
        if self._fresh is None or len(self._fresh) > FRESH_ENTRIES_MAX:
            self._fresh = []
            return [
                (value, f"entry {key.decode(errors='replace')}")
                for key, value in self._db.items()
                if isinstance(key, bytes)
                and isinstance(value, bytes)
                and not key.startswith(b"\x00")
            ]
        taken, self._fresh = self._fresh, []
        return taken

    def positions(self) -> dict[int, int]:
        return dict(self._positions)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._db.close()

    async def _run_forever(self) -> None:
        await read_forever(self._run, self._topic, "entries index")

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=FETCH_RECORDS_MAX,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_min_bytes=FETCH_MIN_BYTES,
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self._topic, "entries index")
            consumer.assign(partitions)
            self._consumer = consumer
            for tp in partitions:
                stored = self._db.get(_POSITION_PREFIX + str(tp.partition).encode())
                position = int(stored) if isinstance(stored, bytes) else 0
                self._positions[tp.partition] = position
                consumer.seek(tp, position)
            log.info(
                "entries index: copying %s from %s into %s",
                self._topic,
                ", ".join(f"[{p}]@{o}" for p, o in sorted(self._positions.items())),
                self._path,
            )
            loop = asyncio.get_running_loop()
            next_end_check = 0.0
            while True:
                if loop.time() >= next_end_check:
                    ends = await consumer.end_offsets(partitions)
                    self._end_offsets = {tp.partition: offset for tp, offset in ends.items()}
                    next_end_check = loop.time() + END_OFFSETS_INTERVAL_S
                fetched = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS_MAX)
                if fetched:
                    self._apply(fetched)
        finally:
            self._consumer = None
            await consumer.stop()

    def _apply(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for tp, records in fetched.items():
            for record in records:
                if record.key is not None and record.value is not None:
                    batch.put(record.key, record.value)
                    if self._fresh is not None:
                        self._fresh.append(
                            (record.value, f"{self._topic}[{tp.partition}]@{record.offset}")
                        )
            if records:
                position = records[-1].offset + 1
                batch.put(_POSITION_PREFIX + str(tp.partition).encode(), str(position).encode())
                self._positions[tp.partition] = position
                end = self._end_offsets.get(tp.partition, 0)
                self._end_offsets[tp.partition] = max(end, position)
        self._db.write(batch)
