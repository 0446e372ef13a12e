"""faust's fetcher loop with the hand-over run inline (streams/faust_patches/fast_drain.py):
a hand-over that completes at once makes no task, one that blocks is raced with the flow's
suspension exactly as faust's ``wait_first`` did, errors reach the loop, and the faust loop it
replaces is pinned by its source."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer
from mode import Service
from mode.utils.locks import Event

from streams.faust_patches import FAUST_VERSION_REVIEWED, fast_drain
from streams.faust_patches.fast_drain import hand_over

# sha256 (first 16 hex digits) of faust-streaming 0.15.3's Consumer._drain_messages, the loop
# ``fast_drain.drain_messages`` copies with one change: when it differs, review the copy.
REVIEWED_DRAIN_SOURCE = "44a2500309e83c63"


class StandInConsumer(Service):
    """What ``hand_over`` uses of faust's consumer: mode's ``wait_first`` and ``suspend_flow``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = Event()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_replaced_loop_is_the_reviewed_faust_loop() -> None:
    assert faust.__version__ == FAUST_VERSION_REVIEWED
    source = inspect.getsource(fast_drain.FAUST_DRAIN_MESSAGES)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == REVIEWED_DRAIN_SOURCE, (
        "faust's Consumer._drain_messages changed: review streams/faust_patches/fast_drain.py"
    )
    # The one call the copy replaces is still the per-record race it was written against.
    assert "await self.wait_first(" in source and "self.suspend_flow.wait()" in source


def test_install_replaces_the_loop_once_and_only_when_enabled() -> None:
    original = Consumer._drain_messages
    try:
        Consumer._drain_messages = fast_drain.FAUST_DRAIN_MESSAGES  # type: ignore[method-assign]
        fast_drain.install(enabled=False)
        assert Consumer._drain_messages is fast_drain.FAUST_DRAIN_MESSAGES
        fast_drain.install(enabled=True)
        assert Consumer._drain_messages is fast_drain.drain_messages
        fast_drain.install(enabled=True)
        assert Consumer._drain_messages is fast_drain.drain_messages
    finally:
        Consumer._drain_messages = original  # type: ignore[method-assign]


def test_a_hand_over_that_completes_at_once_runs_inline_without_a_task() -> None:
    async def scenario() -> tuple[list[int], int]:
        consumer = StandInConsumer()
        delivered: list[int] = []
        lock = asyncio.Lock()  # the conductor takes one per record; a free lock never waits

        async def callback(value: int) -> None:
            async with lock:
                delivered.append(value)

        before = len(asyncio.all_tasks())
        for value in range(5):
            await hand_over(consumer, callback(value))
        return delivered, len(asyncio.all_tasks()) - before

    delivered, tasks_left = run(scenario())
    assert delivered == [0, 1, 2, 3, 4]
    assert tasks_left == 0


def test_a_hand_over_that_blocks_finishes_when_it_is_released() -> None:
    async def scenario() -> list[str]:
        consumer = StandInConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("already queued")
        steps: list[str] = []

        async def callback() -> str:
            steps.append("started")
            await queue.put("record")  # full: blocks until the agent takes one
            steps.append("delivered")
            return "done"

        handing = asyncio.ensure_future(hand_over(consumer, callback()))
        await asyncio.sleep(0.01)
        assert steps == ["started"] and not handing.done()
        assert queue.get_nowait() == "already queued"
        await asyncio.wait_for(handing, 1)
        steps.append(queue.get_nowait())
        return steps

    assert run(scenario()) == ["started", "delivered", "record"]


def test_a_blocked_hand_over_is_abandoned_when_the_flow_is_suspended_as_in_faust() -> None:
    async def scenario() -> tuple[bool, bool]:
        consumer = StandInConsumer()
        never = asyncio.Event()
        cancelled = False

        async def callback() -> None:
            nonlocal cancelled
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled = True
                raise

        handing = asyncio.ensure_future(hand_over(consumer, callback()))
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()  # a rebalance starts
        await asyncio.wait_for(handing, 1)
        await asyncio.sleep(0)  # the abandoned hand-over's cancellation is delivered
        return handing.done(), cancelled

    assert run(scenario()) == (True, True)


@pytest.mark.parametrize("blocks_first", [False, True], ids=["inline", "after-blocking"])
def test_an_error_in_the_hand_over_reaches_the_loop(blocks_first: bool) -> None:
    async def scenario() -> None:
        consumer = StandInConsumer()

        async def callback() -> None:
            if blocks_first:
                await asyncio.sleep(0.001)
            raise ValueError("undecodable")

        await hand_over(consumer, callback())

    with pytest.raises(ValueError, match="undecodable"):
        run(scenario())


def test_a_hand_over_that_yields_to_the_loop_goes_on_after() -> None:
    async def scenario() -> list[int]:
        consumer = StandInConsumer()
        seen: list[int] = []

        async def callback() -> int:
            for step in range(3):
                seen.append(step)
                await asyncio.sleep(0)  # a bare yield (None), not a future
            return 3

        await hand_over(consumer, callback())
        return seen

    assert run(scenario()) == [0, 1, 2]
