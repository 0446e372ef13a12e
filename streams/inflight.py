"""Batches of one agent in flight: processed one after the other, delivered in the background,
acknowledged in order once every output of a batch is on the broker (see streams/batched.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT, StreamT

from streams.handoff import Handoff, is_handed
from streams.outbox import Outbox, stop_without_commit
from streams.take import take_ready
from tables.store import BatchedTable

log = logging.getLogger(__name__)


async def run_batch(work: Callable[[], Awaitable[BatchDelivery]], what: str) -> BatchDelivery:
    """Process one batch to its end (its outputs handed to the producer), even if the agent is
    cancelled meanwhile (stop, rebalance): a batch cut off halfway could not be acknowledged
    honestly. An unexpected exception here is a defect outside any one record's processing:
    stop without acknowledging."""
    task = asyncio.ensure_future(work())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            try:
                await task
            except BaseException as exc:
                stop_without_commit(f"{what} batch failed while stopping: {exc!r}")
        raise
    except BaseException as exc:
        log.exception("%s batch failed", what)
        stop_without_commit(f"{what} batch failed: {exc!r}")


@dataclass
class BatchDelivery:
    """What one processed batch still waits for: the delivery of its outputs and changelog
    records; then its tables' persisted offsets are recorded and ``after`` runs."""

    box: Outbox
    changelogs: list[tuple[BatchedTable, list[asyncio.Future[Any]]]]
    after: Callable[[], None] | None = None

    async def complete(self) -> None:
        await self.box.delivered()  # a failed delivery stops the worker here
        for table, futures in self.changelogs:
            table.mark_persisted(futures)
        if self.after is not None:
            self.after()


class InFlight:
    """The batches of one agent whose deliveries are not complete yet, at most ``depth``.

    An agent processes its next batch while the previous ones are being delivered (the broker
    round trip is most of a small batch's time); a background task completes them in order
    and acknowledges each batch's events only after all its deliveries succeeded, so no offset
    is committed past a record whose outputs were not acknowledged by the broker."""

    def __init__(self, stream: StreamT[Any], what: str, depth: int) -> None:
        self._stream: Any = stream
        self._what = what
        self._queue: asyncio.Queue[tuple[Sequence[EventT[Any]], BatchDelivery]] = asyncio.Queue(
            maxsize=depth
        )
        self._task: asyncio.Task[None] | None = None

    async def push(self, events: Sequence[EventT[Any]], delivery: BatchDelivery) -> None:
        """Hand over a processed batch; waits while ``depth`` batches are still in flight."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._complete_in_order())
        await self._queue.put((events, delivery))

    async def _complete_in_order(self) -> None:
        while True:
            events, delivery = await self._queue.get()
            try:
                await delivery.complete()
                for event in events:
                    if not is_handed(event):  # faust acknowledges the consumed copy of it
                        await self._stream.ack(event)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.exception("%s: completing a batch failed", self._what)
                stop_without_commit(f"{self._what} batch completion failed: {exc!r}")
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every batch handed over is delivered and acknowledged."""
        if self._task is not None:
            await self._queue.join()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


GIVE_WAY_POLL_S = 0.001


async def give_way(busy: Callable[[], bool], max_s: float) -> None:
    """Wait while ``busy()`` holds, at most ``max_s``: a batch off the journal entries' path
    lets the agents on it take the event loop first."""
    if max_s <= 0 or not busy():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    while busy() and loop.time() < deadline:
        await asyncio.sleep(GIVE_WAY_POLL_S)


async def _after_giving_way(
    process: Callable[[Sequence[EventT[Any]]], Awaitable[BatchDelivery]],
    events: Sequence[EventT[Any]],
    busy: Callable[[], bool] | None,
    max_s: float,
) -> BatchDelivery:
    if busy is not None:
        await give_way(busy, max_s)
    return await process(events)


async def run_agent(
    stream: StreamT[Any],
    what: str,
    process: Callable[[Sequence[EventT[Any]]], Awaitable[BatchDelivery]],
    batch_max: int,
    linger_s: float,
    gap_s: float,
    depth: int = 2,
    behind_records: int = 0,
    side: Handoff | None = None,
    give_way_to: Callable[[], bool] | None = None,
    give_way_s: float = 0.0,
) -> None:
    """One batched agent: take what is ready, process it, let it complete in the background
    (``side``: records handed over inside the worker, streams/handoff.py; ``give_way_to``:
    before each batch, wait up to ``give_way_s`` while it says other agents have work).

    When the agent stops (shutdown, rebalance), the batches in flight are delivered and
    acknowledged before it returns, so faust's commit on revocation includes them. A batch
    taken is always processed, also when the agent is cancelled while it gives way
    (``run_batch`` shields the whole of it)."""
    in_flight = InFlight(stream, what, depth)
    try:
        async for events in take_ready(
            stream, batch_max, linger_s, gap_s, behind_records, side=side
        ):
            work = functools.partial(_after_giving_way, process, events, give_way_to, give_way_s)
            delivery = await run_batch(work, what)
            await in_flight.push(events, delivery)
    finally:
        try:
            await asyncio.shield(in_flight.drain())
        finally:
            in_flight.close()
