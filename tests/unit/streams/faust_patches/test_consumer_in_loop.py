"""faust's consumer service on the worker's own loop (streams/faust_patches/consumer_in_loop.py)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
from collections.abc import Iterator

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import QueueServiceThread, ServiceThread

from streams.faust_patches import consumer_in_loop

# What InLoopWorker and InLoop stand in for, as reviewed (mode-streaming, with faust 0.15.3).
REVIEWED_SOURCE = {
    "_serve": "67809eae09573ac7",
    "start": "f11841038a033a05",
    "stop": "32d026539c3665b2",
    "_gather_remaining_tasks": "6f65b92dd1012485",
    "_start_thread": "a06373478446fb61",
}


def test_modes_service_thread_is_the_reviewed_one() -> None:
    for name, digest in REVIEWED_SOURCE.items():
        source = inspect.getsource(getattr(ServiceThread, name))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
            f"mode's ServiceThread.{name} changed: review streams/faust_patches/consumer_in_loop.py"
        )


@pytest.fixture(autouse=True)
def faust_as_it_was() -> Iterator[None]:
    yield
    consumer_in_loop.install(False)


def test_install_switches_faust_between_its_thread_and_the_loop() -> None:
    original = consumer_in_loop._ORIGINAL  # faust's own, whatever an earlier test installed
    assert original.__module__ == faust_aiokafka.__name__
    consumer_in_loop.install(True)
    assert consumer_in_loop.installed()
    assert faust_aiokafka.Consumer._new_consumer_thread is not original
    consumer_in_loop.install(False)
    assert not consumer_in_loop.installed()
    assert faust_aiokafka.Consumer._new_consumer_thread is original


class Echo(consumer_in_loop.InLoop, QueueServiceThread):
    """A mode service thread like faust's consumer: calls reach it through its method queue."""

    seen_threads: list[int]

    async def on_start(self) -> None:
        self.seen_threads = []

    async def echo(self, value: int) -> int:
        self.seen_threads.append(threading.get_ident())
        return value * 2


def test_a_queue_service_thread_runs_on_the_callers_loop_and_thread() -> None:
    async def scenario() -> tuple[list[int], list[int], bool]:
        loop = asyncio.get_running_loop()
        service = Echo(loop=loop, thread_loop=loop, Worker=consumer_in_loop.IN_LOOP_WORKER)
        await service.start()
        results = [await service.call_thread(service.echo, n) for n in (1, 2, 3)]
        alive = service._thread is not None and service._thread.is_alive()
        await service.stop()
        return results, service.seen_threads, alive

    results, threads, alive = asyncio.run(scenario())
    assert results == [2, 4, 6]
    assert set(threads) == {threading.get_ident()}  # no second thread
    assert alive  # it ran as a task of the loop until stopped


def test_stopping_it_leaves_the_loops_other_tasks_alone() -> None:
    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        bystander = loop.create_task(asyncio.sleep(30))
        service = Echo(loop=loop, thread_loop=loop, Worker=consumer_in_loop.IN_LOOP_WORKER)
        await service.start()
        await service.stop()
        await asyncio.sleep(0)
        survived = not bystander.cancelled() and not bystander.done()
        bystander.cancel()
        return survived

    assert asyncio.run(scenario())
