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

``CommitWatch`` and ``adopt_broker_offsets`` (run by the lag sampler every 5 s) report a partition
whose committed offset stops moving and correct the one known way faust's bookkeeping falls
behind the broker's (a post-recovery seek racing an in-flight commit).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from streams.diagnostics import describe_partition

log = logging.getLogger(__name__)

CommitOffsets = Callable[..., Awaitable[bool]]
COMMIT_STALL_S = 20.0
"""A partition whose committed offset has not moved for this long while records were
acknowledged past it is reported (a stalled commit makes every restart replay more)."""
_GUARDED = "_fin_commit_guard"


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


def install() -> None:
    """Wrap faust's ``Consumer._commit_offsets`` once per process."""
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
