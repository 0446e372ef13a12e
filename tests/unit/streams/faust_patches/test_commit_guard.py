"""The guard that keeps faust's committed-offset bookkeeping true after a failed commit."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.faust_patches import commit_guard

PARTITION = TP("fin.events.by-id", 2)


class SlowBuffer:
    """faust's producer buffer as its flush behaves: each flush hands over at most one queued
    record, or none when the broker is away (``stuck_flushes``), and returns either way."""

    def __init__(self, size: int, stuck_flushes: int = 0, state: str = "running") -> None:
        self.size = size
        self.stuck_flushes = stuck_flushes
        self.state = state
        self.flushes = 0

    async def flush_atmost(self, max_messages: int | None) -> None:
        assert max_messages is None
        self.flushes += 1
        if self.stuck_flushes:
            self.stuck_flushes -= 1
        elif self.size:
            self.size -= 1


def _consumer(committed: int | None, acked: list[int]) -> Any:
    consumer = SimpleNamespace(
        _committed_offset=defaultdict(lambda: None),
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
    )
    if committed is not None:
        consumer._committed_offset[PARTITION] = committed
    consumer._acked[PARTITION].extend(acked)
    consumer._acked_index[PARTITION].update(acked)
    return consumer


async def _faust_0_15_3_commit(
    self: Any, offsets: Mapping[TP, int], start_new_transaction: bool = True
) -> bool:
    """What 0.15.3 does when the broker refuses the commit: it drops the acknowledged offsets
    it tried to commit and records them as committed anyway, then reports failure."""
    for tp, offset in offsets.items():
        self._acked[tp] = [acked for acked in self._acked[tp] if acked >= offset]
        self._acked_index[tp] = set(self._acked[tp])
        self._committed_offset[tp] = offset
    return False


@pytest.fixture
def buggy_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Consumer, "_commit_offsets", _faust_0_15_3_commit)
    commit_guard.install()


@pytest.mark.usefixtures("buggy_commit")
def test_a_failed_commit_leaves_the_committed_offset_and_the_acks_as_they_were() -> None:
    consumer = _consumer(committed=100, acked=list(range(100, 150)))
    did_commit = asyncio.run(Consumer._commit_offsets(consumer, {PARTITION: 150}))
    assert did_commit is False
    assert consumer._committed_offset[PARTITION] == 100
    assert consumer._acked[PARTITION] == list(range(100, 150))
    assert consumer._acked_index[PARTITION] == set(range(100, 150))


@pytest.mark.usefixtures("buggy_commit")
def test_acks_that_arrived_during_the_failed_commit_are_kept_in_order() -> None:
    consumer = _consumer(committed=10, acked=[*range(10, 22)])
    asyncio.run(Consumer._commit_offsets(consumer, {PARTITION: 20}))
    assert consumer._acked[PARTITION] == list(range(10, 22))


@pytest.mark.usefixtures("buggy_commit")
def test_a_first_commit_that_fails_keeps_the_last_offset_acknowledged() -> None:
    consumer = _consumer(committed=None, acked=[5, 6, 7])
    asyncio.run(Consumer._commit_offsets(consumer, {PARTITION: 8}))
    assert consumer._committed_offset.get(PARTITION) is None
    assert 7 in consumer._acked[PARTITION]


def test_install_wraps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Consumer, "_commit_offsets", _faust_0_15_3_commit)
    commit_guard.install()
    wrapped = Consumer._commit_offsets
    commit_guard.install()
    assert Consumer._commit_offsets is wrapped
    assert wrapped is not _faust_0_15_3_commit


def test_a_commit_that_succeeded_is_left_alone() -> None:
    consumer = _consumer(committed=150, acked=[150, 151])
    commit_guard.restore_failed_commit(consumer, {PARTITION: 140}, {PARTITION: 100})
    assert consumer._committed_offset[PARTITION] == 150
    assert consumer._acked[PARTITION] == [150, 151]


class _Assigned(SimpleNamespace):
    def __init__(self, **fields: Any) -> None:
        fields.setdefault("highwater", lambda tp: None)
        super().__init__(
            _read_offset={}, _paused_partitions=set(), _active_partitions={PARTITION}, **fields
        )

    def assignment(self) -> set[TP]:
        return {PARTITION}


def test_a_commit_that_does_not_move_while_acks_pile_up_is_reported_once_per_period() -> None:
    consumer = _Assigned(_committed_offset={PARTITION: 40}, _acked={PARTITION: [42, 43]}, _gap={})
    watch = commit_guard.CommitWatch(stall_s=30.0)
    assert watch.stalled(consumer, now=0.0) == []
    assert watch.stalled(consumer, now=29.0) == []
    ((tp, report),) = watch.stalled(consumer, now=31.0)
    assert tp == PARTITION
    assert "[2] committed offset 40 unchanged for 31s" in report and "42..43" in report
    assert watch.stalled(consumer, now=32.0) == []  # reported again only after another period


def test_a_commit_that_moves_is_not_reported() -> None:
    consumer = _Assigned(_committed_offset={PARTITION: 40}, _acked={PARTITION: [41]}, _gap={})
    watch = commit_guard.CommitWatch(stall_s=30.0)
    watch.stalled(consumer, now=0.0)
    consumer._committed_offset[PARTITION] = 42
    assert watch.stalled(consumer, now=31.0) == []


def test_a_committed_offset_behind_the_broker_s_is_taken_from_the_broker() -> None:
    # faust's seek read 17 while its commit of 27 was in flight: acks start at 27, bookkeeping
    # says 17, so faust waits forever for 17..26. The broker has 27.
    consumer = _consumer(committed=17, acked=list(range(27, 69)))
    healed = commit_guard.adopt_broker_offsets(consumer, [PARTITION], {PARTITION: 27})
    assert healed == ["fin.events.by-id[2] 17 -> 27"]
    assert consumer._committed_offset[PARTITION] == 27


def test_the_broker_s_offset_is_not_taken_when_a_real_gap_remains() -> None:
    # The broker agrees with faust: offsets 17..26 were never acknowledged; that is a record
    # still being processed (or lost), and skipping it would lose it.
    consumer = _consumer(committed=17, acked=list(range(27, 69)))
    assert commit_guard.adopt_broker_offsets(consumer, [PARTITION], {PARTITION: 17}) == []
    assert commit_guard.adopt_broker_offsets(consumer, [PARTITION], {PARTITION: 20}) == []
    assert consumer._committed_offset[PARTITION] == 17


def test_an_assigned_partition_with_records_waiting_and_nothing_acknowledged_is_reported() -> None:
    consumer = _Assigned(_committed_offset={PARTITION: 31}, _acked={PARTITION: []}, _gap={})
    watch = commit_guard.CommitWatch(stall_s=20.0)
    lags = {PARTITION: 228}
    assert watch.stalled(consumer, now=0.0, lags=lags) == []
    ((_, report),) = watch.stalled(consumer, now=21.0, lags=lags)
    assert "nothing acknowledged although records wait" in report
    assert "lag 228" in report and "not paused" in report and "active" in report


def test_an_idle_partition_with_nothing_waiting_is_not_reported() -> None:
    consumer = _Assigned(_committed_offset={PARTITION: 31}, _acked={PARTITION: []}, _gap={})
    watch = commit_guard.CommitWatch(stall_s=20.0)
    watch.stalled(consumer, now=0.0, lags={PARTITION: 0})
    assert watch.stalled(consumer, now=60.0, lags={PARTITION: 0}) == []


def test_the_task_dump_names_the_coroutines_a_task_waits_in() -> None:
    from streams.diagnostics import awaiting_chain

    async def inner(event: asyncio.Event) -> None:
        await event.wait()

    async def outer(event: asyncio.Event) -> None:
        await inner(event)

    async def scenario() -> list[str]:
        event = asyncio.Event()
        task = asyncio.create_task(outer(event))
        await asyncio.sleep(0)
        chain = awaiting_chain(task)
        event.set()
        await task
        return chain

    chain = asyncio.run(scenario())
    names = [link.split(" ")[0] for link in chain]
    assert names[:3] == [
        "test_the_task_dump_names_the_coroutines_a_task_waits_in.<locals>.outer",
        "test_the_task_dump_names_the_coroutines_a_task_waits_in.<locals>.inner",
        "Event.wait",
    ]


def test_the_partition_dump_logs_faust_s_bookkeeping(caplog: pytest.LogCaptureFixture) -> None:
    from streams.diagnostics import dump_partitions

    consumer = _Assigned(
        _committed_offset={PARTITION: 31},
        _acked={PARTITION: [33, 34]},
        _gap={},
        highwater=lambda tp: 259,
    )
    consumer._paused_partitions.add(PARTITION)
    with caplog.at_level("WARNING"):
        dump_partitions(consumer)
    (line,) = caplog.messages
    assert "fin.events.by-id[2]: committed 31" in line
    assert "acked 2 (33..34, 2 distinct), paused, active, highwater 259" in line


# -- the offset to commit (faust's _new_offset on a set)


def _acked(committed: int | None, acked: list[int], gaps: Sequence[tuple[int, int]] = ()) -> Any:
    consumer = _consumer(committed, acked)
    consumer._gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        consumer._gap[PARTITION].addi(begin, end)
    return consumer


def test_an_offset_listed_twice_does_not_end_the_run_to_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The defect seen after a rebalance: every offset listed twice made faust commit one
    offset per commit interval."""
    consumer = _acked(93, [o for o in range(93, 194) for _ in (1, 2)])
    with caplog.at_level("WARNING"):
        assert commit_guard.next_commit_offset(consumer, PARTITION) == 194
    assert consumer._acked[PARTITION] == []
    assert consumer._acked_index[PARTITION] == set()
    assert "101 acknowledged offset(s) twice" in caplog.text


def test_a_gap_over_acknowledged_offsets_counts_each_once() -> None:
    consumer = _acked(93, [93, 94, 95, 96, 97, 99], gaps=[(94, 98)])
    assert commit_guard.next_commit_offset(consumer, PARTITION) == 98
    assert consumer._acked[PARTITION] == [99]
    assert not consumer._gap[PARTITION]


def test_a_gap_fills_the_hole_between_acknowledged_offsets() -> None:
    consumer = _acked(10, [10, 11, 15, 16], gaps=[(12, 15)])
    assert commit_guard.next_commit_offset(consumer, PARTITION) == 17


def test_offsets_below_the_committed_one_are_dropped_not_committed() -> None:
    consumer = _acked(94, [50, 51, 94, 95])
    assert commit_guard.next_commit_offset(consumer, PARTITION) == 96
    assert consumer._acked[PARTITION] == []
    assert consumer._acked_index[PARTITION] == set()


def test_nothing_is_committed_while_the_next_offset_is_unacknowledged() -> None:
    consumer = _acked(10, [13, 14])
    assert commit_guard.next_commit_offset(consumer, PARTITION) is None
    assert consumer._acked[PARTITION] == [13, 14]


def test_the_run_ends_at_the_first_hole() -> None:
    consumer = _acked(10, [10, 11, 13])
    assert commit_guard.next_commit_offset(consumer, PARTITION) == 12
    assert consumer._acked[PARTITION] == [13]
    assert consumer._acked_index[PARTITION] == {13}


@settings(max_examples=300, deadline=None)
@given(
    committed=st.one_of(st.none(), st.integers(0, 20)),
    offsets=st.sets(st.integers(0, 60), min_size=1, max_size=40),
)
def test_without_repeats_it_commits_what_faust_commits(
    committed: int | None, offsets: set[int]
) -> None:
    """On the lists faust keeps correctly (each offset once, none below the committed one),
    the replacement returns faust's offset and leaves faust's list."""
    acked = sorted(o for o in offsets if committed is None or o >= committed)
    if not acked:
        return
    ours, theirs = _acked(committed, acked), _acked(committed, acked)
    assert commit_guard.next_commit_offset(ours, PARTITION) == commit_guard.FAUST_NEW_OFFSET(
        theirs, PARTITION
    )
    assert ours._acked[PARTITION] == theirs._acked[PARTITION]
    assert ours._acked_index[PARTITION] == theirs._acked_index[PARTITION]


# -- gaps only where faust delivered no record


class _Seeking:
    """A consumer as far as seeking goes; records keep arriving while the seek awaits the broker."""

    def __init__(self, read: int | None, committed: int, delivered_meanwhile: int | None) -> None:
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None, {PARTITION: read})
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self.committed = committed
        self.meanwhile = delivered_meanwhile
        self.gaps: list[tuple[TP, int, int]] = []

    async def seek_to_committed(self) -> dict[TP, int]:
        if self.meanwhile is not None:
            self._read_offset[PARTITION] = self.meanwhile
        return {PARTITION: self.committed}

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


def _seek_and_gap(
    read: int | None, committed: int, record: int, meanwhile: int | None = None
) -> list[tuple[TP, int, int]]:
    """FIN's perform_seek, then faust's gap call for ``record`` arriving next."""
    consumer = _Seeking(read, committed, meanwhile)
    add_gap = commit_guard._true_gaps(_Seeking._add_gap)

    async def scenario() -> None:
        await commit_guard.perform_seek(consumer)
        assert consumer._read_offset[PARTITION] == committed
        assert consumer._committed_offset[PARTITION] == committed
        await add_gap(consumer, PARTITION, committed + 1, record)

    asyncio.run(scenario())
    return consumer.gaps


def test_records_queued_before_the_seek_are_not_a_gap() -> None:
    """The start-up race: records 15..28 delivered, seek back to 15, then record 29 fetched."""
    assert _seek_and_gap(read=28, committed=15, record=29) == []


def test_records_delivered_while_the_seek_awaited_the_broker_are_not_a_gap() -> None:
    assert _seek_and_gap(read=None, committed=1, record=40, meanwhile=39) == []


def test_offsets_past_the_queued_records_are_still_a_gap() -> None:
    assert _seek_and_gap(read=28, committed=15, record=33) == [(PARTITION, 29, 32)]


def test_without_records_before_the_seek_the_gap_stops_short_of_the_record() -> None:
    """faust includes the record's own offset in the gap; it is acknowledged when processed."""
    assert _seek_and_gap(read=None, committed=15, record=20) == [(PARTITION, 16, 19)]


def test_the_next_seek_forgets_what_was_delivered_before_the_previous_one() -> None:
    consumer = _Seeking(28, 15, None)

    async def twice() -> None:
        await commit_guard.perform_seek(consumer)
        assert commit_guard.delivered_before_seek(consumer) == {PARTITION: 28}
        consumer.committed = 30
        await commit_guard.perform_seek(consumer)

    asyncio.run(twice())
    assert commit_guard.delivered_before_seek(consumer) == {}


def test_a_commit_completed_during_the_seek_is_not_set_back() -> None:
    """The broker answered 6 before a commit of 10 completed; faust took the 6 and then waited
    for offsets 7..9, which were acknowledged before and never come again."""
    consumer = _Seeking(None, 6, None)
    consumer._committed_offset[PARTITION] = 10
    asyncio.run(commit_guard.perform_seek(consumer))
    assert consumer._committed_offset[PARTITION] == 10
    assert consumer._read_offset[PARTITION] == 6  # read again from the broker's offset


def test_after_a_revocation_the_seek_takes_the_broker_s_committed_offset() -> None:
    consumer = _Seeking(None, 6, None)
    asyncio.run(commit_guard.perform_seek(consumer))
    assert consumer._committed_offset[PARTITION] == 6


def test_a_flush_returns_once_every_queued_changelog_record_reached_the_producer() -> None:
    buffer = SlowBuffer(size=3, stuck_flushes=5)  # a broker away for five flushes, then back
    asyncio.run(commit_guard.flush_fully(buffer))
    assert buffer.size == 0
    assert buffer.flushes == 8


def test_a_stopping_producer_is_not_waited_for() -> None:
    buffer = SlowBuffer(size=2, stuck_flushes=1_000_000, state="stopping")
    asyncio.run(commit_guard.flush_fully(buffer))
    assert buffer.flushes == 0 and buffer.size == 2


def test_install_puts_the_full_flush_in_place_of_fausts() -> None:
    from faust.transport.producer import ProducerBuffer

    commit_guard.install()
    assert ProducerBuffer.flush is commit_guard.flush_fully


def test_a_hole_at_the_head_of_the_acknowledged_offsets_is_found() -> None:
    consumer = _consumer(committed=37, acked=list(range(39, 157)))
    other = TP("fin.events.by-id", 3)
    consumer._committed_offset[other] = 51
    consumer._acked[other].extend([51, 52, 53])  # in order: no hole, just not committed yet
    marker = TP("fin.events.by-id", 0)
    consumer._committed_offset[marker] = 10
    consumer._acked[marker].extend([11, 12])  # one slot, as faust tolerates (a marker)
    holes = commit_guard.holes_at_head(consumer, [PARTITION, other, marker])
    assert holes == {PARTITION: (37, 38)}


def test_a_hole_is_read_again_from_the_committed_offset_and_its_acks_are_taken() -> None:
    consumer = _consumer(committed=37, acked=list(range(39, 157)))
    consumer._acked_index[PARTITION].add(38)  # the inconsistent state an ack would trip on
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer.seek = seek
    done = asyncio.run(commit_guard.reread_holes(consumer, {PARTITION: (37, 38)}))
    assert seeks == [(PARTITION, 37)]
    assert 38 not in consumer._acked_index[PARTITION]
    assert consumer._acked_index[PARTITION] >= set(range(39, 157))
    assert done and "37..38" in done[0]


def _flow_with_queues() -> tuple[Any, Any, Any]:
    from mode.utils.queues import FlowControlEvent, ThrowableQueue

    flow = FlowControlEvent()  # suspended, as faust's is at start
    # The queue class and flag faust gives every agent's input channel and the changelog queue.
    agent_queue: ThrowableQueue[int] = ThrowableQueue(flow_control=flow, clear_on_resume=True)
    changelog_queue: ThrowableQueue[int] = ThrowableQueue(flow_control=flow, clear_on_resume=True)
    return flow, agent_queue, changelog_queue


def test_mode_s_own_resume_drops_the_records_queued_for_the_agents() -> None:
    """The faulty behaviour the replacement exists for (if mode stops doing this, the
    replacement can go)."""
    flow, agent_queue, _ = _flow_with_queues()
    agent_queue.put_nowait(60)
    flow.resume()
    assert agent_queue.empty()


def test_after_the_replacement_a_resume_keeps_the_agents_records_and_resumes_flow() -> None:
    flow, agent_queue, changelog_queue = _flow_with_queues()
    commit_guard.keep_queued_records_on_resume(flow, lambda: changelog_queue)
    agent_queue.put_nowait(60)
    agent_queue.put_nowait(61)
    changelog_queue.put_nowait(7)

    flow.resume()

    assert flow.is_active()
    assert [agent_queue.get_nowait(), agent_queue.get_nowait()] == [60, 61]
    assert changelog_queue.empty(), "table recovery's queue is still emptied, as faust intends"

    async def acquire() -> None:
        await asyncio.wait_for(flow.acquire(), timeout=1)

    asyncio.run(acquire())  # a resumed flow lets producers in at once


def test_after_the_replacement_suspend_and_an_explicit_clear_still_work() -> None:
    """faust empties the queues itself when partitions are revoked; that stays."""
    flow, agent_queue, changelog_queue = _flow_with_queues()
    commit_guard.keep_queued_records_on_resume(flow, lambda: changelog_queue)
    flow.resume()
    agent_queue.put_nowait(1)
    flow.suspend()
    assert not flow.is_active()
    flow.clear()
    assert agent_queue.empty()


def test_faust_s_marker_slot_is_committed_past_on_a_topic_that_may_have_markers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = _acked(10, [11, 12])
    with caplog.at_level("INFO"):
        assert commit_guard.next_commit_offset(consumer, PARTITION) == 13
    assert "offset 10 was never acknowledged" in caplog.text


def test_on_a_topic_without_markers_an_unacknowledged_offset_is_never_committed_past(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commit_guard, "MARKER_FREE_TOPICS", {PARTITION.topic})
    consumer = _acked(10, [11, 12])
    assert commit_guard.next_commit_offset(consumer, PARTITION) is None
    assert consumer._acked[PARTITION] == [11, 12], "kept for when the hole is read again"
    assert commit_guard.holes_at_head(consumer, [PARTITION]) == {PARTITION: (10, 10)}
    consumer._acked[PARTITION].insert(0, 10)  # the re-read record, processed at last
    assert commit_guard.next_commit_offset(consumer, PARTITION) == 13


def test_declared_topics_are_the_marker_free_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_guard, "MARKER_FREE_TOPICS", set())
    commit_guard.declare_marker_free(["t.fin.internal.by-event-id"])
    assert {"t.fin.internal.by-event-id"} == commit_guard.MARKER_FREE_TOPICS
