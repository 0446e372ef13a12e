"""Batches of what is ready: an agent takes the records that are there, not a timer's worth.

faust's ``Stream.take_events(max_, within)`` yields a batch when ``max_`` records are buffered
or ``within`` seconds after it started waiting, whichever comes first: at low load every record
waits out the timer in every stage, and an idle agent ticks. ``take_ready`` waits for a first
record as long as it takes (an idle agent costs nothing), then keeps taking while records keep
arriving less than ``gap_s`` apart, for at most ``linger_s`` or until ``max_`` are buffered:
under a backlog a batch fills up, a lone record leaves after one quiet gap. With
``behind_records``, it lingers only when the partition of the batch's first record had at least
that many more records on the broker (its highwater in the consumer's last fetch): a worker
that keeps up sends records on at once (the fetch that brought them already gathered a burst:
``streams/faust_patches/fetch_wait.py``), one that is behind (a backlog, a restart, a stage
writing ahead of the next in a drain) gathers bigger batches, which cost less per record and
let it catch up. (A record's age would not do: a stage's input written by the stage before it
in the same worker is always fresh, however far behind the source is.)

Acknowledgement is the caller's: acks are off for the stream while it is batched, and
``take_ready`` acknowledges nothing. The batched runtime acknowledges a batch's events once
every output of it is delivered (``streams.inflight.InFlight``), which may be after the next
batch was taken; faust commits only offsets that were acknowledged.

This uses the same faust stream internals as ``take_events`` (faust-streaming 0.15.x), listed
in ``STREAM_INTERNALS``; ``tests/unit/streams/test_take.py`` fails if any of them is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from faust.types import EventT, StreamT

from streams.handoff import Handoff

# What take_ready needs from faust (checked by tests/unit/streams/test_take.py).
STREAM_INTERNALS = (
    "add_processor",
    "_enable_passive",
    "current_event",
    "enable_acks",
    "ack",
    "wait_for_stopped",
    "wait",
    "wait_first",
    "should_stop",
    "channel",
    "_processors",
)


# How long take_ready waits for the reader to move one waiting record into the batch.
READER_STALL_S = 0.05


def waiting_in(channel: Any) -> int:
    """Records ``channel`` holds that its reader has not taken yet (0 if it cannot say)."""
    queue = getattr(channel, "queue", None)
    return queue.qsize() if queue is not None else 0


async def _linger(
    events: Sequence[EventT[Any]], full: asyncio.Event, linger_s: float, gap_s: float, s: Any
) -> None:
    """Wait while records keep arriving: until none came for ``gap_s``, the buffer is full or
    ``linger_s`` has passed since the batch's first record was seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + linger_s
    seen = len(events)
    while not full.is_set() and not s.should_stop:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(gap_s, remaining))
        if len(events) == seen:
            return  # a quiet gap: the burst is over
        seen = len(events)


Lag = Callable[[EventT[Any]], "int | None"]


def partition_lag(stream: StreamT[Any]) -> Lag:
    """The records after ``event``'s in its partition, by the highwater of the consumer's last
    fetch of it (None when the consumer has none)."""
    consumer = stream.app.consumer

    def lag(event: EventT[Any]) -> int | None:
        message = event.message
        highwater = consumer.highwater(message.tp)
        return None if highwater is None else highwater - message.offset - 1

    return lag


def behind(event: EventT[Any], behind_records: int, lag: Lag) -> bool:
    """Whether at least ``behind_records`` records follow ``event``'s in its partition (always,
    for ``behind_records`` 0; so does a partition whose lag cannot be told)."""
    if behind_records <= 0:
        return True
    try:
        records = lag(event)
    except Exception:  # e.g. the partition was revoked meanwhile (aiokafka asserts)
        return True
    return records is None or records >= behind_records


async def take_ready(
    stream: StreamT[Any],
    max_: int,
    linger_s: float = 0.0,
    gap_s: float = 0.01,
    behind_records: int = 0,
    lag: Lag | None = None,
    side: Handoff | None = None,
) -> AsyncIterator[Sequence[Any]]:
    """Yield lists of at most ``max_`` events: all that are ready, once at least one is, after
    lingering (at most ``linger_s``) while more keep arriving less than ``gap_s`` apart, when
    at least ``behind_records`` follow the first of them in its partition (``lag``: how many
    do; by default from the stream's consumer). With ``side``, the records handed over there
    (``streams.handoff``) come first, in lists of their own, as soon as there are any."""
    s: Any = stream
    events: list[EventT[Any]] = []
    added = asyncio.Event()  # set on every record buffered
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        if consuming is not None:
            # A batch is being handed out: the buffer is not to grow under the reader.
            try:
                await consuming
            finally:
                consuming = None
        event = s.current_event
        if event is None:
            raise RuntimeError("take_ready found no current event")
        events.append(event)
        added.set()
        if len(events) >= max_:
            full.set()
            consumed.clear()
            await s.wait(consumed)
        return value

    acks_were = s.enable_acks
    s.enable_acks = False
    s.add_processor(add_to_buffer)
    channel = s.channel.__aiter__()
    s._enable_passive(channel)
    loop = asyncio.get_running_loop()
    lag_of = lag if lag is not None or behind_records <= 0 else partition_lag(stream)
    try:
        while not s.should_stop:
            if side is not None and len(side):
                handed = side.take(max_)
                if handed:
                    yield handed
                continue
            if not events:
                # Idle: wait for the first record, as long as it takes (no ticking).
                added.clear()
                if side is None:
                    await s.wait_for_stopped(added)
                else:
                    await s.wait_first(added, side.ready)
                continue
            if linger_s > 0 and (lag_of is None or behind(events[0], behind_records, lag_of)):
                await _linger(events, full, linger_s, gap_s, s)
            # Records already delivered to the channel join this batch: the passive reader
            # moves them into the buffer one by one, each in its own turn of the loop.
            # (A full buffer was also "added to"; the timeout only guards against a reader that
            # stopped taking for a reason of its own.)
            while not full.is_set() and waiting_in(channel) and not s.should_stop:
                added.clear()
                await s.wait_for_stopped(added, timeout=READER_STALL_S)
            if not events:
                continue
            consuming = loop.create_future()
            try:
                yield list(events)
            finally:
                events.clear()
                if not consuming.done():
                    consuming.set_result(None)
                full.clear()
                consumed.set()
    finally:
        s.enable_acks = acks_were
        s._processors.remove(add_to_buffer)
