"""take_ready: batches of what is ready, over the faust stream internals it relies on.

The behaviour is checked against a stand-in stream that does what faust's Stream does for
``take_events`` (a passive reader feeding each record through the stream's processors with
``current_event`` set); a separate test fails when the installed faust lacks any of those
internals, which is when the stand-in stops being faithful."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer as FaustConsumer

from streams.take import STREAM_INTERNALS, behind, partition_lag, take_ready


@dataclass
class FakeEvent:
    value: int


@dataclass
class FakeChannel:
    queue: asyncio.Queue[FakeEvent] = field(default_factory=asyncio.Queue)

    def __aiter__(self) -> FakeChannel:
        return self


class FakeStream:
    """The parts of faust's Stream that take_ready uses, with faust's semantics."""

    def __init__(self) -> None:
        self.channel = FakeChannel()
        self._processors: list[Callable[[Any], Awaitable[Any]]] = []
        self.current_event: FakeEvent | None = None
        self.enable_acks = True
        self.should_stop = False
        self.acked: list[int] = []
        self._reader: asyncio.Task[None] | None = None

    def add_processor(self, processor: Callable[[Any], Awaitable[Any]]) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: FakeChannel) -> None:
        async def read() -> None:
            while True:
                event = await channel.queue.get()
                self.current_event = event
                for processor in list(self._processors):
                    await processor(event.value)

        self._reader = asyncio.ensure_future(read())

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.should_stop

    async def wait_first(self, *events: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def ack(self, event: FakeEvent) -> None:
        self.acked.append(event.value)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


def values_of(batch: Any) -> list[int]:
    return [event.value for event in batch]


async def _collect(
    stream: FakeStream,
    max_: int,
    linger_s: float,
    gap_s: float,
    until: int,
    behind_records: int = 0,
    lag: Callable[[Any], int | None] | None = None,
) -> list[list[int]]:
    batches: list[list[int]] = []
    taken = take_ready(stream, max_, linger_s, gap_s, behind_records, lag)  # type: ignore[arg-type]
    async for batch in taken:
        batches.append(values_of(batch))
        if sum(map(len, batches)) >= until:
            break
    return batches


def test_records_already_waiting_form_one_batch_of_at_most_max() -> None:
    async def scenario() -> list[list[int]]:
        stream = FakeStream()
        for value in range(7):
            stream.channel.queue.put_nowait(FakeEvent(value))
        try:
            return await asyncio.wait_for(_collect(stream, 3, 0.0, 0.001, 7), 5)
        finally:
            stream.close()

    batches = asyncio.run(scenario())
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_lone_record_is_taken_without_waiting_out_the_linger() -> None:
    async def scenario() -> tuple[list[list[int]], float]:
        stream = FakeStream()
        loop = asyncio.get_running_loop()
        stream.channel.queue.put_nowait(FakeEvent(1))
        started = loop.time()
        try:
            batches = await asyncio.wait_for(_collect(stream, 100, 2.0, 0.01, 1), 5)
        finally:
            stream.close()
        return batches, loop.time() - started

    batches, took = asyncio.run(scenario())
    assert batches == [[1]]
    # A quiet gap (10 ms) ends the batch long before the 2 s linger would.
    assert took < 1.0


def burst_batches(behind_records: int = 0, lag: int | None = None) -> list[list[int]]:
    """Five records 2 ms apart, taken with a 1 s linger and a 50 ms gap (and ``behind_records``,
    each record with ``lag`` records after it on the broker): the batches they make."""

    async def scenario() -> list[list[int]]:
        stream = FakeStream()

        async def burst() -> None:
            for value in range(5):
                stream.channel.queue.put_nowait(FakeEvent(value))
                await asyncio.sleep(0.002)

        feeder = asyncio.ensure_future(burst())
        try:
            collected = _collect(stream, 100, 1.0, 0.05, 5, behind_records, lambda _: lag)
            return await asyncio.wait_for(collected, 5)
        finally:
            feeder.cancel()
            stream.close()

    return asyncio.run(scenario())


def test_records_arriving_in_a_burst_are_gathered_while_they_keep_coming() -> None:
    assert burst_batches() == [[0, 1, 2, 3, 4]]


def test_a_record_is_behind_when_at_least_behind_records_follow_it() -> None:
    event: Any = FakeEvent(0)

    def lag_of(records: int | None) -> Any:
        return lambda _: records

    assert behind(event, 100, lag_of(100))
    assert not behind(event, 100, lag_of(99))
    assert behind(event, 100, lag_of(None))  # no highwater known: treated as behind
    assert behind(event, 0, lag_of(0))  # 0: always

    def revoked(_: Any) -> int:
        raise AssertionError("partition not assigned")  # what aiokafka's highwater does

    assert behind(event, 100, revoked)


def test_the_lag_is_the_records_after_this_one_by_the_consumers_last_highwater() -> None:
    highwaters = {("t", 0): 110, ("t", 1): None}

    class Consumer:
        def highwater(self, tp: tuple[str, int]) -> int | None:
            return highwaters[tp]

    class Message:
        def __init__(self, partition: int, offset: int) -> None:
            self.tp, self.offset = ("t", partition), offset

    stream: Any = type("S", (), {"app": type("A", (), {"consumer": Consumer()})()})()
    lag = partition_lag(stream)
    # Offsets 0..109 are on the broker: 100 follow offset 9, none follow 109.
    assert lag(type("E", (), {"message": Message(0, 9)})()) == 100  # type: ignore[arg-type]
    assert lag(type("E", (), {"message": Message(0, 109)})()) == 0  # type: ignore[arg-type]
    assert lag(type("E", (), {"message": Message(1, 5)})()) is None  # type: ignore[arg-type]
    # faust's consumer still answers highwater(tp) (what partition_lag calls).
    assert callable(getattr(FaustConsumer, "highwater", None))


def test_a_worker_behind_gathers_a_batch_one_that_keeps_up_sends_records_on() -> None:
    # 500 records behind (a backlog): the linger gathers the burst into one batch.
    assert burst_batches(100, lag=500) == [[0, 1, 2, 3, 4]]
    # Keeping up: each batch is what was ready, the first record alone.
    caught_up = burst_batches(100, lag=3)
    assert caught_up[0] == [0]
    assert [value for batch in caught_up for value in batch] == [0, 1, 2, 3, 4]


def test_nothing_is_acknowledged_by_take_ready_and_acks_are_restored() -> None:
    async def scenario() -> FakeStream:
        stream = FakeStream()
        for value in range(4):
            stream.channel.queue.put_nowait(FakeEvent(value))
        try:
            await asyncio.wait_for(_collect(stream, 2, 0.0, 0.001, 4), 5)
        finally:
            stream.close()
        return stream

    stream = asyncio.run(scenario())
    # The caller acknowledges once a batch's outputs are delivered (streams/batched.py).
    assert stream.acked == []
    assert stream.enable_acks is True
    assert stream._processors == []


def test_the_buffer_does_not_grow_while_a_batch_is_handed_out() -> None:
    async def scenario() -> list[list[int]]:
        stream = FakeStream()
        batches: list[list[int]] = []
        stream.channel.queue.put_nowait(FakeEvent(0))
        try:
            async for batch in take_ready(stream, 10, 0.0, 0.001):  # type: ignore[arg-type]
                batches.append(values_of(batch))
                if len(batches) == 1:
                    # Records arriving while the caller works on a batch wait for the next one.
                    for value in (1, 2):
                        stream.channel.queue.put_nowait(FakeEvent(value))
                    await asyncio.sleep(0.05)
                if sum(map(len, batches)) >= 3:
                    break
        finally:
            stream.close()
        return batches

    batches = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert batches[0] == [0]
    assert [value for batch in batches[1:] for value in batch] == [1, 2]


@pytest.mark.parametrize("name", STREAM_INTERNALS)
def test_the_installed_faust_stream_still_has_what_take_ready_uses(name: str) -> None:
    app = faust.App("test-take-internals", broker="memory://", store="memory://")
    stream = app.channel().stream()
    assert hasattr(stream, name), f"faust.Stream no longer has {name}: review streams/take.py"
