"""Table recovery read in bulk: the active changelog partitions restored by a plain consumer.

faust-streaming 0.15.3 restores a table (after a rebalance, or from nothing when the data dir
was wiped) by resuming the active changelog partitions on its group consumer. Every changelog
record then travels the path of any consumed record: the fetcher hands it over one at a time
(``Consumer._drain_messages``: a ``wait_first`` of two tasks per record), the conductor decodes
it into an ``Event`` and queues it, and ``Recovery._slurp_changelogs`` takes it off the queue
(an ``asyncio.wait_for`` per record), counts what remains over every partition
(``need_recovery``, per record) and buffers it until ``recovery_buffer_size`` records go to
RocksDB in one ``apply_changelog_batch``. Only that last step is bulk; the rest cost ~200 µs a
record here (4,500 records/s: docs/design.md, "Recovery").

``install(app, ...)`` wraps ``Recovery._seek_offsets``. faust calls it for the active
partitions once it has their highwaters and start offsets (``active_offsets``: the last
offset already applied, from the table's persisted offset or the partition's earliest) and has
checked them. Before faust's own seek, FIN reads those partitions itself with a group-less
aiokafka consumer (``assign``, no commits), thousands of records per fetch, and hands each
partition's records, in offset order, to the table's own ``apply_changelog_batch``: faust's
RocksDB write batch and persisted offset, the very code faust's path ends in, fed the same raw
key and value bytes. ``active_offsets`` then advance to what was applied, and faust carries on
as it does when the disk is current: ``need_recovery()`` finds nothing left, no changelog
partition is resumed, and the worker resumes its streams ("Worker ready").

What is not read here stays faust's: standby partitions; every partition when the processing
guarantee is exactly_once (changelogs written in transactions, read by faust with its own
aborted-transaction handling); a table with an ``on_changelog_event`` callback (faust calls it
per record; FIN's tables have none). The reader stops after half of
``broker_request_timeout`` (faust runs this step under that timeout, and a timeout there ends
its recovery service for good), and on any error it logs and stops: faust's seek then starts
at the offsets applied so far and its own path reads the rest, so a partial bulk read is only
slower, never different. A rebalance
during the read cancels it the same way as faust's own steps (rows and persisted offset stay
consistent: each batch writes its rows, then its offset).

``REPLACED`` and ``READ`` list the faust internals this relies on;
``tests/unit/streams/test_fast_recovery.py`` fails when one is gone, or when the source of the
faust functions this step sits between (``SOURCE_PINNED``) differs from the reviewed 0.15.3.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.types.enums import ProcessingGuarantee

from tables.store import ChangelogRow

log = logging.getLogger(__name__)

FAUST_VERSION_REVIEWED = "0.15.3"

REPLACED: tuple[tuple[type, str], ...] = ((Recovery, "_seek_offsets"),)
"""What ``install`` wraps (checked by tests/unit/streams/test_fast_recovery.py)."""
READ: tuple[tuple[type, str], ...] = (
    (Recovery, "app"),
    (Recovery, "tp_to_table"),
    (Recovery, "active_highwaters"),
    (Recovery, "active_offsets"),
    (Recovery, "need_recovery"),
    (Recovery, "_restart_recovery"),
    (Collection, "apply_changelog_batch"),
    (Collection, "_on_changelog_event"),
    (RocksDBStore, "apply_changelog_batch"),
)
"""faust code whose source is pinned: the caller of ``_seek_offsets`` (the step order this relies
on), what decides there is nothing left, and the write this hands the records to."""
SOURCE_PINNED: tuple[tuple[type, str], ...] = (
    (Recovery, "_restart_recovery"),
    (Recovery, "_seek_offsets"),
    (Recovery, "need_recovery"),
    (Recovery, "active_remaining"),
    (Recovery, "_build_offsets"),
    (Collection, "apply_changelog_batch"),
    (RocksDBStore, "apply_changelog_batch"),
)

# Log lines around the bulk read (bench/hub.py times recovery from them, as from faust's own).
LOG_STARTED = "Restoring state from changelog topics in bulk"
LOG_DONE = "Done reading changelog topics in bulk"

FETCH_RECORDS_MAX = 10_000  # records handed over per fetch: RocksDB writes stay ~10-50 ms slices
FETCH_WAIT_MS = 100  # the broker holds an empty fetch this long (only at the very end)


@dataclass(frozen=True)
class Options:
    bootstrap: str
    fetch_bytes: int  # per partition and fetch
    budget_s: float  # then faust's own path reads what is left


@dataclass
class Progress:
    """What the reader did, for its log line: records applied and where the time went."""

    applied: int = 0
    started: float = field(default_factory=time.monotonic)
    connected_s: float = 0.0  # the consumer started (connection, metadata)
    first_s: float = 0.0  # the first records in hand
    read_s: float = 0.0  # every partition at its highwater
    writing_s: float = 0.0  # inside apply_changelog_batch (RocksDB)

    def at(self) -> float:
        return time.monotonic() - self.started


_OPTIONS: weakref.WeakKeyDictionary[Any, Options] = weakref.WeakKeyDictionary()


def install(app: Any, *, bootstrap: str, fetch_bytes: int) -> None:
    """Read ``app``'s active changelog partitions in bulk at every recovery (at_least_once only;
    other apps, and this one under exactly_once, keep faust's path)."""
    if ProcessingGuarantee(app.conf.processing_guarantee) is not ProcessingGuarantee.AT_LEAST_ONCE:
        log.info(
            "table recovery: faust's own path (processing guarantee %s)",
            app.conf.processing_guarantee,
        )
        return
    # faust runs the wrapped step under broker_request_timeout: stop well before it.
    _OPTIONS[app] = Options(bootstrap, fetch_bytes, float(app.conf.broker_request_timeout) / 2)
    if not installed():
        Recovery._seek_offsets = _wrap(Recovery._seek_offsets)  # type: ignore[method-assign,assignment]


def installed() -> bool:
    """Is faust's ``Recovery._seek_offsets`` wrapped (once per process, whatever the apps)?"""
    return bool(getattr(Recovery._seek_offsets, "__fin_fast_recovery__", False))


def _wrap(
    seek: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    @functools.wraps(seek)
    async def _seek_offsets(
        self: Recovery, consumer: Any, tps: set[TP], offsets: Any, title: str
    ) -> None:
        options = _OPTIONS.get(self.app)
        if options is not None and title == "active":
            await restore(self, tps, offsets, options)
        await seek(self, consumer, tps, offsets, title)

    _seek_offsets.__fin_fast_recovery__ = True  # type: ignore[attr-defined]
    return _seek_offsets


def pending(
    tps: Iterable[TP],
    offsets: MutableMapping[TP, Any],
    highwaters: MutableMapping[TP, Any],
    tables: MutableMapping[TP, Any],
) -> dict[TP, int]:
    """The partitions to read, each with the first offset to read (faust's ``offsets`` hold the
    last offset applied, -1 for none; its ``highwaters`` the last offset there is, -1 if empty)."""
    todo: dict[TP, int] = {}
    for tp in tps:
        high, done, table = highwaters.get(tp), offsets.get(tp), tables.get(tp)
        if high is None or done is None or table is None or done >= high:
            continue
        if getattr(table, "_on_changelog_event", None) is not None:
            continue  # faust calls it per record: its path
        todo[tp] = max(done + 1, 0)
    return todo


async def restore(recovery: Recovery, tps: set[TP], offsets: Any, options: Options) -> int:
    """Apply the active changelog partitions up to their highwaters; the records applied.
    Never raises (but for cancellation): what is left is faust's to read."""
    todo = pending(tps, offsets, recovery.active_highwaters, recovery.tp_to_table)
    if not todo:
        return 0
    highwaters = recovery.active_highwaters
    expected = sum(highwaters[tp] - offsets[tp] for tp in todo)
    log.info("%s: up to %d records of %d partitions", LOG_STARTED, expected, len(todo))
    progress = Progress()
    try:
        await _read(recovery, todo, offsets, options, progress.started + options.budget_s, progress)
    except asyncio.CancelledError:
        log.warning(
            "table recovery in bulk interrupted (rebalance or stop) after %d records",
            progress.applied,
        )
        raise
    except Exception:
        log.exception("table recovery in bulk failed; faust's own path reads what is left")
    left = {tp: highwaters[tp] - offsets[tp] for tp in todo if offsets[tp] < highwaters[tp]}
    seconds = progress.at()
    log.info(
        "%s: %d records of %d partitions in %.3f s (%.0f records/s; consumer started at "
        "%.3f s, first records %.3f s, all read %.3f s, RocksDB writes %.3f s in all)%s",
        LOG_DONE,
        progress.applied,
        len(todo),
        seconds,
        progress.applied / seconds if seconds > 0 else 0.0,
        progress.connected_s,
        progress.first_s,
        progress.read_s,
        progress.writing_s,
        f"; left to faust: {sum(left.values())} records of {len(left)} partitions" if left else "",
    )
    return progress.applied


async def _read(
    recovery: Recovery,
    todo: dict[TP, int],
    offsets: Any,
    options: Options,
    deadline: float,
    progress: Progress,
    make_consumer: Callable[..., Any] = AIOKafkaConsumer,
) -> None:
    highwaters = recovery.active_highwaters
    tables = recovery.tp_to_table
    consumer = make_consumer(
        bootstrap_servers=options.bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a start offset already deleted: its earliest
        isolation_level="read_uncommitted",  # at_least_once changelogs have no transactions
        max_partition_fetch_bytes=options.fetch_bytes,
        fetch_max_wait_ms=FETCH_WAIT_MS,
        client_id=f"{recovery.app.conf.id}-table-recovery",
    )
    await consumer.start()
    progress.connected_s = progress.at()
    try:
        reading = {TopicPartition(tp.topic, tp.partition): tp for tp in todo}
        consumer.assign(list(reading))
        for ktp, tp in reading.items():
            consumer.seek(ktp, todo[tp])
        while reading and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=FETCH_RECORDS_MAX)
            if fetched and not progress.first_s:
                progress.first_s = progress.at()
            for ktp, records in fetched.items():
                changelog = reading.get(ktp)
                if changelog is None:
                    continue
                last, high = offsets[changelog], highwaters[changelog]
                batch: list[Any] = [
                    ChangelogRow(changelog, r.offset, r.key, r.value)
                    for r in records
                    if last < r.offset <= high
                ]
                if batch:
                    writing = time.monotonic()
                    tables[changelog].apply_changelog_batch(batch)
                    progress.writing_s += time.monotonic() - writing
                    offsets[changelog] = batch[-1].offset
                    progress.applied += len(batch)
            for ktp, tp in list(reading.items()):
                # Done at the highwater, or once the position is past it (offsets without a
                # record at the end of the log: nothing more to apply there).
                if offsets[tp] >= highwaters[tp] or await consumer.position(ktp) > highwaters[tp]:
                    offsets[tp] = max(offsets[tp], highwaters[tp])
                    consumer.pause(ktp)
                    del reading[ktp]
        progress.read_s = progress.at()
    finally:
        await consumer.stop()
