"""faust's fetcher loop without two tasks per record when the record's hand-over cannot block.

faust-streaming 0.15.3's ``Consumer._drain_messages`` hands every fetched record to the
conductor with ``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's
``wait_first`` wraps four coroutines in tasks (the callback, the flow's suspension, the
service's stopped and crashed events), waits for the first with ``asyncio.wait`` and cancels
the other three: 43 µs per record measured in a bare loop, on every record of every agent. The
race exists for the rare record whose hand-over blocks (an agent's queue is full, the flow is
suspended for a rebalance, the producer's buffer is full): a suspension of the flow then
abandons that hand-over instead of waiting on it.

``drain_messages`` is faust's loop with one change (``hand_over``): it runs the callback's first
step inline. A callback that completes in that step (the record went straight into the agents'
queues: nearly every record) is done, no task made; one that suspends is finished through the
very same ``wait_first`` race as before, with the flow's suspension, so blocking hand-overs
behave exactly as in faust. Everything else in the loop (read offsets, gaps, commits, the yield
to the event loop every 100 records) is faust's. ``tests/unit/streams/faust_patches/
test_fast_drain.py`` pins the source of faust's loop: an upgrade that changes it fails there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from mode import Service

REPLACED: tuple[tuple[type, str], ...] = ((Consumer, "_drain_messages"),)
"""What ``install`` replaces (checked by tests/unit/streams/faust_patches/)."""
READ: tuple[tuple[type, str], ...] = (
    (Consumer, "callback"),
    (Consumer, "getmany"),
    (Consumer, "_read_offset"),
    (Consumer, "_commit_every"),
    (Consumer, "_n_acked"),
    (Consumer, "_add_gap"),
    (Consumer, "suspend_flow"),
    (Consumer, "wait_first"),
)
"""faust's consumer state the loop reads, as faust's own loop does (checked the same way)."""


class _Rest:
    """The rest of a coroutine whose first step already ran and yielded ``pending``: awaiting
    this yields ``pending`` to the awaiting task and drives the coroutine on from there (what
    ``await`` would have done had the coroutine been awaited from the start)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._steps = coro.__await__()
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        steps, pending = self._steps, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # cancellation included: passed to the coroutine
                try:
                    pending = steps.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = steps.send(sent)
                except StopIteration as done:
                    return done.value


async def hand_over(consumer: Any, coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` (the conductor's callback for one record): inline if it completes without
    suspending, else raced with the flow's suspension as faust's loop does."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return
    except BaseException:
        coro.close()
        raise
    await consumer.wait_first(_Rest(coro, pending), consumer.suspend_flow.wait())


async def drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover (faust's loop)
    """``Consumer._drain_messages`` of faust-streaming 0.15.3 with ``hand_over`` in place of
    the per-record ``wait_first``."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = cast(AsyncIterator[Any], getmany(timeout=1.0))
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await hand_over(self, callback(message))
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value
                        )
            unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


FAUST_DRAIN_MESSAGES = Consumer._drain_messages
"""faust's own loop, as imported (``FIN_FAST_DRAIN=0`` keeps it)."""


def install(*, enabled: bool) -> None:
    """Replace faust's fetcher loop, once per process, if ``enabled``; call it before
    ``delivery_audit.install``, which wraps whatever loop is there."""
    if enabled and Consumer._drain_messages is FAUST_DRAIN_MESSAGES:
        Consumer._drain_messages = drain_messages  # type: ignore[method-assign]
