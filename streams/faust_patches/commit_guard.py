"""Keep faust's committed-offset bookkeeping true when an offset commit fails.

faust-streaming 0.15.3 (the newest release on the package index) records offsets as committed
even when the commit failed, e.g. ``UnknownMemberIdError`` while the group rebalances after a
broker restart (faust-streaming issue #316; fixed upstream by PR #692, not yet released). It has
also already dropped the acknowledged offsets it tried to commit, so after a failed commit the
next one would either skip them or, once the bookkeeping is corrected, see a gap at the head of
its acknowledged offsets and never commit again.

The guard wraps ``Consumer._commit_offsets``: when the commit did not happen, each partition's
committed offset goes back to what it was and the offsets of the failed commit are acknowledged
again, so the next commit covers them. Their effects were flushed before the commit was tried
(faust flushes the producer first), so committing them later is safe.

faust's flush of its producer buffer (where table writes queue their changelog records) gave up
after 0.1 s without progress, e.g. while the broker was away; ``flush_fully`` replaces it, so an
offset commit, and the hand-over of revoked partitions, wait until those records reached the
producer.

Gaps. faust takes the offsets between the last record it delivered (its read offset) and a record
further on as a gap: offsets with no record (transaction markers), acknowledged as if processed.
But at every start and after every rebalance faust resumes fetching before it seeks back to the
committed offset; the seek sets the read offset back while records past it are already queued for
the agents, and the next record fetched opens a "gap" over them (robinhood/faust#559). faust then
counts those queued records as done before they are processed (a crash there would skip them),
and lists their offsets twice, which made each commit advance by one offset (the rebalance
scenario's slow catch-up: ~35 offsets behind on every partition of two topics, committed at ~0.4
records/s). FIN's ``perform_seek`` (in place of faust's) remembers how far each partition had
been delivered, ``_add_gap`` leaves those offsets (and the record's own offset, which faust
includes) out of a gap, and ``next_commit_offset`` replaces ``_new_offset``, doing the same work
on the set of offsets.

Records dropped from the agents' queues. mode's ``FlowControlEvent.resume`` empties every queue
made with ``clear_on_resume``, and faust makes every agent's input queue so. faust resumes flow
right after its seek to the committed offsets (at every start and after every rebalance), while
its fetcher has been delivering records all along: the records queued at that moment were
delivered (faust's read offset is past them) but are never processed, and never acknowledged.
That hole at the head of a partition stalled its commit when it was two records or more; when it
was one, faust's one-slot rule (a transaction marker's slot, kept in ``next_commit_offset``)
committed past it, and the record was lost: for a delta, a table row missed a change for good
(the delta's position guard then refuses its replay). ``keep_queued_records_on_resume`` makes the
resume leave the agents' queues alone (the changelog queue of table recovery is still emptied, as
faust intends); records queued before a rebalance are still dropped, by faust's explicit clear
when partitions are revoked and by the stream's generation check, and read again after the seek.

``CommitWatch`` and ``adopt_broker_offsets`` (run by the lag sampler every 5 s) report a partition
whose committed offset stops moving and take the broker's committed offset when faust's own fell
behind it. The one known cause, a seek racing an in-flight commit, is now prevented in
``perform_seek``; they stay as a safety net that says so in the log. ``holes_at_head`` and
``reread_holes`` (same place) read a partition again from its committed offset when its
acknowledged offsets start past records never acknowledged (the resume above was the cause found;
they stay as a net that logs an error).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faust.transport.consumer import Consumer, ensure_TP
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from streams.diagnostics import describe_partition

log = logging.getLogger(__name__)

MARKER_FREE_TOPICS: set[str] = set()
"""Topics with no transaction markers (FIN's own, written without transactions under
at_least_once; filled by ``declare_marker_free``): faust's one-slot rule never applies there."""
CommitOffsets = Callable[..., Awaitable[bool]]
COMMIT_STALL_S = 20.0
"""A partition whose committed offset has not moved for this long while records were
acknowledged past it is reported (a stalled commit makes every restart replay more)."""
_GUARDED = "_fin_commit_guard"
FAUST_NEW_OFFSET = Consumer._new_offset
"""faust's own version, kept for the tests that compare the two."""

REPLACED: tuple[tuple[type, str], ...] = (
    (Consumer, "_commit_offsets"),
    (Consumer, "_add_gap"),
    (Consumer, "_new_offset"),
    (Consumer, "perform_seek"),
    (ProducerBuffer, "flush"),
    (FlowControlEvent, "resume"),
)
"""The faust and mode attributes this module replaces or wraps (``install``,
``keep_queued_records_on_resume``); tests/unit/streams/faust_patches/test_faust_still_has.py
fails when the installed faust lacks one of them."""
READ: tuple[tuple[type, str], ...] = (
    (Consumer, "_committed_offset"),
    (Consumer, "_acked"),
    (Consumer, "_acked_index"),
    (Consumer, "_read_offset"),
    (Consumer, "_gap"),
    (ProducerBuffer, "flush_atmost"),
    (FlowControlEvent, "_suspend"),
    (FlowControlEvent, "_resume"),
)
"""The private state of faust and mode this module reads or sets (checked the same way)."""


def restore_failed_commit(
    consumer: Any, offsets: Mapping[TP, int], before: Mapping[TP, int | None]
) -> None:
    """Undo the bookkeeping of a commit of ``offsets`` that did not happen."""
    for tp, attempted in offsets.items():
        if consumer._committed_offset.get(tp) != attempted:
            continue  # not recorded (revoked, or bookkeeping already fixed)
        previous = before.get(tp)
        consumer._committed_offset[tp] = previous
        # The failed commit consumed the acknowledged offsets [previous, attempted).
        first = attempted - 1 if previous is None else previous
        returned = range(first, attempted)
        acked = consumer._acked[tp]
        index = consumer._acked_index[tp]
        fresh = [offset for offset in returned if offset not in index]
        acked.extend(fresh)
        acked.sort()
        index.update(fresh)
        log.warning(
            "offset commit of %s at %d failed; committed offset stays %s, will retry",
            tp,
            attempted,
            previous,
        )


def declare_marker_free(topics: Iterable[str]) -> None:
    """Topics FIN writes without transactions: an unacknowledged offset there is a record."""
    MARKER_FREE_TOPICS.update(topics)


def _slot(tp: TP) -> int:
    """How many unacknowledged offsets right at the committed one faust's rule takes for a
    transaction marker: one, except on a topic known to have none."""
    return 0 if tp.topic in MARKER_FREE_TOPICS else 1


def next_commit_offset(consumer: Any, tp: TP) -> int | None:
    """The offset to commit for ``tp`` (one past the first run of consecutive acknowledged
    offsets), consuming that run; None when nothing can be committed.

    faust's ``_new_offset`` on a set: an offset acknowledged twice, or acknowledged and also
    covered by a gap (offsets the fetcher skipped), counts once; offsets below the committed
    offset are already committed and dropped. Otherwise faust's rules: gaps up to the highest
    acknowledged offset count as acknowledged, and the run may start one past the committed
    offset (a transaction marker's slot) — except on a topic with no markers
    (``MARKER_FREE_TOPICS``), where that offset is a record never processed: nothing is
    committed and the stall watch reads the partition again (``holes_at_head``)."""
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    offsets = set(acked)
    repeated = len(acked) - len(offsets)
    gap = consumer._gap[tp]
    if gap:
        top = max(offsets)
        skipped = {
            o for interval in gap.overlap(0, top) for o in range(interval.begin, interval.end)
        }
        if skipped:
            overlapped = len(skipped & offsets)
            # Offsets faust took as a gap although their records were delivered (see
            # true_gap): counted once here; logged because it means faust's race recurred.
            log.log(
                logging.WARNING if overlapped else logging.DEBUG,
                "partition %s[%d]: gap offsets %d..%d taken as done, %d of %d were acknowledged "
                "records",
                tp.topic,
                tp.partition,
                min(skipped),
                max(skipped),
                overlapped,
                len(skipped),
            )
            offsets |= skipped
            gap.chop(0, max(*skipped, top) + 1)
    committed = consumer._committed_offset.get(tp)
    index: set[int] = consumer._acked_index[tp]
    if committed is not None:
        done = {o for o in offsets if o < committed}
        offsets -= done
        index.difference_update(done)
    if repeated:
        log.warning(
            "partition %s[%d]: faust listed %d acknowledged offset(s) twice; each counted once",
            tp.topic,
            tp.partition,
            repeated,
        )
    ordered = sorted(offsets)
    if not ordered or (committed and ordered[0] - committed > _slot(tp)):
        acked[:] = ordered
        return None
    if committed and ordered[0] == committed + 1:
        # faust's rule for a transaction marker's slot (an upstream writing transactions).
        log.info(
            "partition %s[%d]: offset %d was never acknowledged; committing past it as a "
            "transaction marker's slot",
            tp.topic,
            tp.partition,
            committed,
        )
    end = 0
    while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
        end += 1
    batch = ordered[: end + 1]
    acked[:] = ordered[end + 1 :]
    index.difference_update(batch)
    return batch[-1] + 1


_DELIVERED = "_fin_delivered_before_seek"


def delivered_before_seek(consumer: Any) -> dict[TP, int]:
    """Per partition, the last offset faust had delivered to its streams when it last sought
    back to the committed offset (records it has queued and will acknowledge)."""
    found: dict[TP, int] | None = getattr(consumer, _DELIVERED, None)
    if found is None:
        found = {}
        setattr(consumer, _DELIVERED, found)
    return found


def true_gap(consumer: Any, tp: TP, offset_from: int, offset: int) -> tuple[int, int] | None:
    """The offsets between the read offset (``offset_from`` - 1) and the record at ``offset``
    that have no record: none delivered before faust's last seek, and not ``offset`` itself
    (faust includes it). None when that leaves nothing."""
    delivered = delivered_before_seek(consumer).get(tp)
    if delivered is not None and delivered >= offset_from:
        offset_from = delivered + 1
    last = offset - 1
    return (offset_from, last) if offset_from <= last else None


def _true_gaps(original: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(original)
    async def add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
        gap = true_gap(self, tp, offset_from, offset_to)
        if gap is None:
            log.debug(
                "partition %s[%d]: record %d follows records delivered before the seek; no gap",
                tp.topic,
                tp.partition,
                offset_to,
            )
            return
        # DEBUG: behind a transactional upstream every commit marker is such a gap.
        log.debug(
            "partition %s[%d]: offsets %d..%d have no record (a gap; read offset %s, committed %s)",
            tp.topic,
            tp.partition,
            gap[0],
            gap[1],
            self._read_offset.get(tp),
            self._committed_offset.get(tp),
        )
        await original(self, tp, gap[0], gap[1])

    setattr(add_gap, _GUARDED, True)
    return add_gap


async def perform_seek(self: Any) -> None:
    """faust's ``Consumer.perform_seek`` (seek every partition to its committed offset and set
    the read and committed offsets to it), remembering first how far each partition had been
    delivered (faust keeps fetching while the seek awaits the broker, and those records are
    queued for the agents too), and never setting the committed offset back below a commit
    that completed meanwhile."""
    committed: Mapping[Any, int | None] = await self.seek_to_committed()
    read_offset, ours = self._read_offset, self._committed_offset
    delivered = delivered_before_seek(self)
    delivered.clear()
    for raw_tp, offset in committed.items():
        tp = ensure_TP(raw_tp)
        sought = offset if offset is not None and offset >= 0 else None
        current = read_offset.get(tp)
        if current is not None and (sought is None or current > sought):
            delivered[tp] = current
        read_offset[tp] = sought
        if offset is None:
            continue
        known = ours.get(tp)
        # A commit that completed while the seek awaited the broker is newer than what the
        # broker answered before it (faust took the older one, and then waited for offsets
        # below its commit that no longer come).
        if known is None or not offset or offset >= known:
            ours[tp] = offset or None


def install() -> None:
    """Wrap faust's ``Consumer._commit_offsets`` and ``_add_gap``, and replace
    ``Consumer._new_offset``, ``Consumer.perform_seek`` and ``ProducerBuffer.flush``, once per
    process."""
    Consumer._new_offset = next_commit_offset  # type: ignore[method-assign,assignment]
    if not getattr(Consumer._add_gap, _GUARDED, False):
        Consumer._add_gap = _true_gaps(Consumer._add_gap)  # type: ignore[method-assign,assignment]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    ProducerBuffer.flush = flush_fully  # type: ignore[method-assign]
    original: CommitOffsets = Consumer._commit_offsets
    if getattr(original, _GUARDED, False):
        return

    @functools.wraps(original)
    async def guarded(
        self: Any, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        before = {tp: self._committed_offset.get(tp) for tp in offsets}
        did_commit = await original(self, offsets, start_new_transaction=start_new_transaction)
        if not did_commit:
            restore_failed_commit(self, offsets, before)
        return did_commit

    setattr(guarded, _GUARDED, True)
    Consumer._commit_offsets = guarded  # type: ignore[method-assign]


async def flush_fully(self: Any) -> None:
    """``ProducerBuffer.flush`` that returns only once the buffer is empty (or stopping).

    A table write queues its changelog record in faust's producer buffer (``send_soon``), to be
    handed to the Kafka producer by a background task. faust's flush of that buffer gives up
    after 0.1 s without progress (``ProducerBuffer.flush_atmost``), as it does while the broker
    is away, and two callers relied on it:
    - the flush before an offset commit: the commit went ahead of changelog records of events
      it committed; a kill -9 then, and a table rebuilt from its changelog (wiped disk,
      partition moved) would miss changes whose source records are committed;
    - the flush when partitions are revoked: the worker that gets a partition next rebuilds its
      table rows by reading the changelog up to its end at that moment; records still queued
      in the previous owner's buffer arrive after that read, so the new owner's table missed
      changes whose source records the previous owner had committed: a lost update.
    A stopping buffer is not waited for: nothing would drain it any more."""
    waits = 0
    while self.size and self.state == "running":
        await self.flush_atmost(None)
        waits += 1
        if waits % 100 == 0:  # every 10 s or more while the buffer does not drain
            log.warning(
                "producer flush waiting for %d changelog record(s) to reach the producer",
                self.size,
            )


def keep_queued_records_on_resume(
    flow_control: FlowControlEvent, changelog_queue: Callable[[], Any]
) -> None:
    """Make ``flow_control.resume()`` leave the agents' queues alone.

    mode's resume empties every queue that asked for it, and faust asks for it on every agent's
    input queue; faust resumes right after seeking to the committed offsets, so records the
    fetcher delivered meanwhile were dropped without being processed or acknowledged, and never
    read again (see the module docstring). Only the changelog queue of table recovery is
    emptied, as faust intends: recovery seeks its changelogs itself and re-reads them."""

    def resume() -> None:
        flow_control._suspend.clear()
        flow_control._resume.set()
        changelog_queue().clear()

    flow_control.resume = resume  # type: ignore[method-assign]


class CommitWatch:
    """Finds partitions whose offsets are acknowledged but not committed for a long time."""

    def __init__(self, stall_s: float = COMMIT_STALL_S) -> None:
        self._stall_s = stall_s
        self._since: dict[TP, tuple[int | None, float]] = {}

    def stalled(
        self, consumer: Any, now: float, lags: Mapping[TP, int] | None = None
    ) -> list[tuple[TP, str]]:
        """Partitions whose committed offset has not moved for ``stall_s`` although offsets were
        acknowledged past it, or records wait (``lags``: records behind, by partition)."""
        lags = lags or {}
        reports: list[tuple[TP, str]] = []
        for tp in consumer.assignment():
            committed = consumer._committed_offset.get(tp)
            acked = consumer._acked.get(tp) or []
            seen = self._since.get(tp)
            behind = lags.get(tp, 0) > 0
            if seen is None or seen[0] != committed or not (acked or behind):
                self._since[tp] = (committed, now)
                continue
            if now - seen[1] >= self._stall_s:
                reports.append((tp, _describe(consumer, tp, committed, now - seen[1], lags)))
                self._since[tp] = (committed, now)
        return reports


def _describe(
    consumer: Any, tp: TP, committed: int | None, for_s: float, lags: Mapping[TP, int]
) -> str:
    acked = consumer._acked.get(tp) or []
    state = f"lag {lags.get(tp, 0)}, {describe_partition(consumer, tp)}"
    if acked:
        return (
            f"{tp.topic}[{tp.partition}] committed offset {committed} unchanged for "
            f"{for_s:.0f}s with {len(acked)} acknowledged offsets {min(acked)}..{max(acked)} "
            f"({state})"
        )
    return (
        f"{tp.topic}[{tp.partition}] committed offset {committed} unchanged for {for_s:.0f}s "
        f"and nothing acknowledged although records wait ({state})"
    )


def adopt_broker_offsets(
    consumer: Any, stalled: list[TP], broker_committed: Mapping[TP, int]
) -> list[str]:
    """Where faust's committed offset is behind the group's committed offset on the broker and
    the acknowledged offsets start at or next to the broker's, take the broker's.

    faust 0.15.3 can set its bookkeeping back to an offset read from the broker while a commit
    past it was in flight (the seek after recovery races the commit); its acknowledged offsets
    below the newer commit are gone by then, so it waits for a gap that is never filled and
    commits nothing more on that partition. The broker's committed offset is the truth: every
    offset below it is committed, so adopting it cannot skip an unprocessed record.
    """
    healed: list[str] = []
    for tp in stalled:
        broker = broker_committed.get(tp)
        acked = consumer._acked.get(tp) or []
        ours = consumer._committed_offset.get(tp)
        if broker is None or not acked:
            continue
        if (ours is None or broker > ours) and broker >= min(acked) - 1:
            consumer._committed_offset[tp] = broker
            healed.append(f"{tp.topic}[{tp.partition}] {ours} -> {broker}")
    return healed


def holes_at_head(consumer: Any, stalled: list[TP]) -> dict[TP, tuple[int, int]]:
    """Stalled partitions whose acknowledged offsets start past a hole: offsets from the
    committed one on that were never acknowledged, while records after them were.

    An agent processes a partition's records in order, one at a time, so a record still in
    flight has nothing acknowledged after it; a hole means its records never reached the agent
    in this process (the cause found: faust's resume emptied the agents' queues after its seek,
    see ``keep_queued_records_on_resume``). Nothing would ever fill it, and the partition would
    never commit again."""
    holes: dict[TP, tuple[int, int]] = {}
    for tp in stalled:
        acked = consumer._acked.get(tp) or []
        committed = consumer._committed_offset.get(tp)
        if committed is None or not acked:
            continue
        first = min(acked)
        if first > committed + _slot(tp):  # faust's one slot for a transaction marker
            holes[tp] = (committed, first - 1)
    return holes


async def reread_holes(consumer: Any, holes: Mapping[TP, tuple[int, int]]) -> list[str]:
    """Seek each partition with a hole back to its committed offset: the records of the hole are
    delivered again, and so are those after it, whose replays are recognised (the ``processed``
    table, the delta position guards, the stats watermark) and whose offsets are already
    acknowledged. Right for postings (the ``processed`` table knows each event id); not for a
    delta or a stats count older than one applied after the hole: its guard refuses it, which
    is why the caller logs an error."""
    done: list[str] = []
    for tp, (start, end) in holes.items():
        # If the hole's offsets are in faust's index of acknowledged offsets although not in
        # its list, faust would ignore their acknowledgements again: take them out first.
        consumer._acked_index[tp].difference_update(range(start, end + 1))
        await consumer.seek(tp, start)
        done.append(
            f"{tp.topic}[{tp.partition}] from {start} (offsets {start}..{end} never acknowledged)"
        )
    return done
