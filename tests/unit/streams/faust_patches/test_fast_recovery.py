"""Table recovery in bulk (streams/faust_patches/fast_recovery.py): what it applies, where it
stops, what it leaves to faust, and the faust code it sits in, pinned.

The reader is driven here by a stand-in consumer (no broker); its records go through a real
faust table with a RocksDB store, so the write is faust's own. The broker-backed proof is the
fault suite's wipe scenario and ``python -m bench.recovery``, which compares every row and
persisted offset before the wipe and after the rebuild."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import TopicPartition
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.faust_patches import fast_recovery
from streams.faust_patches.fast_recovery import Options, Progress, pending

# sha256 (first 16 hex digits) of the source of each faust function in SOURCE_PINNED, as
# reviewed in faust-streaming 0.15.3. A change there may change the order of the recovery steps
# this relies on (highwaters and offsets built, then the seek, then need_recovery()), or the
# write it hands records to: review streams/faust_patches/fast_recovery.py, then update the digest.
REVIEWED_SOURCE = {
    ("Recovery", "_restart_recovery"): "6bd8a8558a2dffe4",
    ("Recovery", "_seek_offsets"): "19598ca63d94d250",
    ("Recovery", "need_recovery"): "fd1dc345b5d5e121",
    ("Recovery", "active_remaining"): "0dcc38568ad5018b",
    ("Recovery", "_build_offsets"): "27eec86be06cb51f",
    ("Collection", "apply_changelog_batch"): "b980a78d3ae9b1e8",
    ("Store", "apply_changelog_batch"): "ea3344d369fc4ab5",
}


def source_digest(owner: type, name: str) -> str:
    found = getattr(owner, name)
    found = getattr(found, "fun", found)  # mode's Service.task wraps the function
    return hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]


def test_the_installed_faust_is_the_version_the_bulk_reader_was_written_against() -> None:
    assert faust.__version__ == fast_recovery.FAUST_VERSION_REVIEWED


@pytest.mark.parametrize(
    ("owner", "name"),
    [pytest.param(o, n, id=f"{o.__name__}.{n}") for o, n in fast_recovery.SOURCE_PINNED],
)
def test_the_faust_code_around_the_bulk_reader_is_the_reviewed_code(owner: type, name: str) -> None:
    assert source_digest(owner, name) == REVIEWED_SOURCE[(owner.__name__, name)], (
        f"faust's {owner.__name__}.{name} changed: review streams/faust_patches/fast_recovery.py"
    )


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        pytest.param(o, n, id=f"{o.__name__}.{n}")
        for o, n in (*fast_recovery.REPLACED, *fast_recovery.READ)
    ],
)
def test_the_installed_faust_still_has_what_the_bulk_reader_wraps_or_reads(
    owner: type, name: str
) -> None:
    assert hasattr(owner, name) or any(
        f"self.{name} " in inspect.getsource(klass) or f"self.{name}:" in inspect.getsource(klass)
        for klass in owner.__mro__
        if klass.__module__.startswith(("faust", "mode"))
    ), f"{owner.__name__}.{name} is gone: review streams/faust_patches/fast_recovery.py"


# --- what is read ---------------------------------------------------------------------------

A, B, C, D = (TP("t-changelog", n) for n in range(4))


def test_pending_starts_after_the_last_offset_applied_and_skips_what_is_current() -> None:
    table = object()
    offsets = {A: -1, B: 4, C: 9, D: -1}
    highwaters = {A: 9, B: 9, C: 9, D: -1}  # C current, D empty
    tables = dict.fromkeys((A, B, C, D), table)
    assert pending([A, B, C, D], offsets, highwaters, tables) == {A: 0, B: 5}


def test_pending_leaves_a_table_with_a_changelog_callback_to_faust() -> None:
    class WithCallback:
        _on_changelog_event = staticmethod(lambda event: None)

    tables: dict[TP, Any] = {A: WithCallback(), B: object()}
    assert pending([A, B], {A: -1, B: -1}, {A: 3, B: 3}, tables) == {B: 0}


# --- the reader against a stand-in consumer -------------------------------------------------


class Record:
    def __init__(self, offset: int, key: bytes, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value


class FakeConsumer:
    """aiokafka's AIOKafkaConsumer as the reader uses it, over in-memory partitions."""

    def __init__(self, log: dict[TopicPartition, list[Record]], per_fetch: int) -> None:
        self.log, self.per_fetch = log, per_fetch
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        await asyncio.sleep(0)
        fetched = {}
        for tp, position in self.positions.items():
            if tp in self.paused:
                continue
            records = [r for r in self.log.get(tp, []) if r.offset >= position][: self.per_fetch]
            if records:
                fetched[tp] = records
                self.positions[tp] = records[-1].offset + 1
            elif self.log.get(tp) and position <= self.log[tp][-1].offset + 1:
                # offsets without records at the end (transaction markers): the position moves
                self.positions[tp] = max(position, self.end(tp))
        return fetched

    def end(self, tp: TopicPartition) -> int:
        return self.log[tp][-1].offset + 1 if self.log.get(tp) else 0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    yield faust.App(
        "test-fast-recovery",
        broker="memory://",
        store="rocksdb://",
        datadir=str(tmp_path),
        key_serializer="raw",
        value_serializer="raw",
    )


class FakeRecovery:
    """faust's Recovery as the reader reads it: app, tp_to_table, active_highwaters."""

    def __init__(self, app: faust.App, table: Any, highwaters: dict[TP, int]) -> None:
        self.app = app
        self.tp_to_table = dict.fromkeys(highwaters, table)
        self.active_highwaters = Counter(highwaters)


def run_restore(
    app: faust.App,
    table: Any,
    log: dict[TopicPartition, list[Record]],
    offsets: dict[TP, int],
    highwaters: dict[TP, int],
    per_fetch: int = 3,
    budget_s: float = 30.0,
) -> tuple[FakeConsumer, Counter[TP], int]:
    consumer = FakeConsumer(log, per_fetch)
    counter: Counter[TP] = Counter(offsets)
    recovery: Any = FakeRecovery(app, table, highwaters)

    async def go() -> int:
        progress = Progress()
        todo = pending(set(highwaters), counter, recovery.active_highwaters, recovery.tp_to_table)
        await fast_recovery._read(
            recovery,
            todo,
            counter,
            Options("unused:9092", 1 << 20, budget_s),
            time.monotonic() + budget_s,
            progress,
            make_consumer=lambda **_: consumer,
        )
        return progress.applied

    applied = asyncio.run(go())
    return consumer, counter, applied


def changelog(partition: int, rows: list[tuple[bytes, bytes | None]], first: int = 0) -> Any:
    return TopicPartition("test-fast-recovery-rows-changelog", partition), [
        Record(first + i, key, value) for i, (key, value) in enumerate(rows)
    ]


def test_every_record_up_to_the_highwater_lands_in_rocksdb_with_its_persisted_offset(
    app: faust.App,
) -> None:
    table = app.Table("rows", partitions=2, key_type=bytes, value_type=bytes)
    ktp0, records0 = changelog(0, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1")])
    ktp1, records1 = changelog(1, [(b"x", b"1"), (b"x", None), (b"y", b"7")])
    tp0, tp1 = TP(ktp0.topic, 0), TP(ktp1.topic, 1)
    consumer, offsets, applied = run_restore(
        app, table, {ktp0: records0, ktp1: records1}, {tp0: -1, tp1: -1}, {tp0: 3, tp1: 2}
    )

    store: Any = table.data
    assert applied == 7
    assert offsets == {tp0: 3, tp1: 2}
    assert store._db_for_partition(0).get(b"a") == b"2"  # the last value of a key wins
    assert store._db_for_partition(0).get(b"c") == b"1"
    assert store._db_for_partition(1).get(b"x") is None  # a tombstone deletes
    assert store._db_for_partition(1).get(b"y") == b"7"
    assert store.persisted_offset(tp0) == 3
    assert store.persisted_offset(tp1) == 2
    assert consumer.paused == {ktp0, ktp1}
    assert consumer.stopped


def test_reading_starts_after_the_persisted_offset_and_stops_at_the_highwater(
    app: faust.App,
) -> None:
    table = app.Table("rows", partitions=1, key_type=bytes, value_type=bytes)
    ktp, records = changelog(0, [(b"k", str(n).encode()) for n in range(8)])
    tp = TP(ktp.topic, 0)
    # rows up to offset 2 are on disk; the highwater built by faust is 5 (6 and 7 came later)
    _, offsets, applied = run_restore(app, table, {ktp: records}, {tp: 2}, {tp: 5})

    store: Any = table.data
    assert applied == 3  # offsets 3, 4, 5
    assert offsets[tp] == 5
    assert store._db_for_partition(0).get(b"k") == b"5"
    assert store.persisted_offset(tp) == 5


def test_offsets_without_records_at_the_end_count_as_read(app: faust.App) -> None:
    table = app.Table("rows", partitions=1, key_type=bytes, value_type=bytes)
    ktp, records = changelog(0, [(b"k", b"1"), (b"k", b"2")])
    tp = TP(ktp.topic, 0)
    # faust's highwater says offset 3 exists, but 2 and 3 hold no record (markers): the
    # position moves past them and the partition is done, as faust's aborted-tx check does

    class MarkerConsumer(FakeConsumer):
        def end(self, tp: TopicPartition) -> int:
            return 4

    consumer = MarkerConsumer({ktp: records}, 10)
    counter: Counter[TP] = Counter({tp: -1})
    recovery: Any = FakeRecovery(app, table, {tp: 3})

    async def go() -> None:
        await fast_recovery._read(
            recovery,
            {tp: 0},
            counter,
            Options("unused:9092", 1 << 20, 30.0),
            time.monotonic() + 30.0,
            Progress(),
            make_consumer=lambda **_: consumer,
        )

    asyncio.run(go())
    store: Any = table.data
    assert counter[tp] == 3  # faust's need_recovery() sees nothing left
    assert store.persisted_offset(tp) == 1  # the last record applied
    assert store._db_for_partition(0).get(b"k") == b"2"


def test_past_its_budget_the_reader_stops_and_leaves_the_rest_with_true_offsets(
    app: faust.App,
) -> None:
    table = app.Table("rows", partitions=1, key_type=bytes, value_type=bytes)
    ktp, records = changelog(0, [(b"k", str(n).encode()) for n in range(10)])
    tp = TP(ktp.topic, 0)
    consumer, offsets, applied = run_restore(
        app, table, {ktp: records}, {tp: -1}, {tp: 9}, per_fetch=3, budget_s=0.0
    )
    store: Any = table.data
    assert applied == 0
    assert offsets[tp] == -1  # faust's own path reads all of it
    assert store.persisted_offset(tp) is None
    assert consumer.stopped


def test_the_wrapped_seek_restores_first_then_seeks_faust_to_the_new_offsets(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []

    async def seek(self: Any, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        calls.append(("seek", (title, dict(offsets))))

    async def restore(recovery: Any, tps: Any, offsets: Any, options: Options) -> int:
        calls.append(("restore", dict(offsets)))
        offsets[A] = 9
        return 10

    monkeypatch.setattr(fast_recovery, "restore", restore)
    monkeypatch.setitem(fast_recovery._OPTIONS, app, Options("unused:9092", 1 << 20, 30.0))
    wrapped = fast_recovery._wrap(seek)
    recovery: Any = FakeRecovery(app, object(), {A: 9})

    async def go() -> None:
        await wrapped(recovery, None, {A}, Counter({A: -1}), "active")
        await wrapped(recovery, None, {A}, Counter({A: -1}), "standby")

    asyncio.run(go())
    assert calls == [
        ("restore", {A: -1}),
        ("seek", ("active", {A: 9})),
        ("seek", ("standby", {A: -1})),  # standbys: faust's path only
    ]


def test_an_app_without_options_keeps_faust_s_path(app: faust.App) -> None:
    seen: list[str] = []

    async def seek(self: Any, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        seen.append(title)

    recovery: Any = FakeRecovery(app, object(), {A: 9})

    async def go() -> None:
        await fast_recovery._wrap(seek)(recovery, None, {A}, Counter({A: -1}), "active")

    asyncio.run(go())
    assert seen == ["active"]


def test_install_leaves_exactly_once_to_faust(tmp_path: Path) -> None:
    app = faust.App(
        "test-fast-recovery-eos",
        broker="memory://",
        store="memory://",
        datadir=str(tmp_path),
        processing_guarantee="exactly_once",
    )
    fast_recovery.install(app, bootstrap="unused:9092", fetch_bytes=1 << 20)
    assert app not in fast_recovery._OPTIONS


def test_install_takes_at_least_once_and_wraps_faust_once(tmp_path: Path) -> None:
    app = faust.App(
        "test-fast-recovery-alo",
        broker="memory://",
        store="memory://",
        datadir=str(tmp_path),
        processing_guarantee="at_least_once",
    )
    fast_recovery.install(app, bootstrap="b:9092", fetch_bytes=1 << 20)
    wrapped = Recovery._seek_offsets
    fast_recovery.install(app, bootstrap="b:9092", fetch_bytes=1 << 20)
    assert fast_recovery._OPTIONS[app].bootstrap == "b:9092"
    assert fast_recovery.installed()
    assert Recovery._seek_offsets is wrapped  # not wrapped twice
