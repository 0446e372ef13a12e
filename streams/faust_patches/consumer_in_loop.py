"""faust's Kafka consumer on the worker's own event loop (``FIN_CONSUMER_IN_LOOP``, the default).

faust-streaming 0.15.3 runs its aiokafka consumer in a thread of its own
(``AIOKafkaConsumerThread``, a mode ``QueueServiceThread``) with a second event loop. Every
fetch hand-over, commit and position query crosses between the two loops through mode's method
queue (``call_soon_threadsafe``, a self-pipe wake-up, a future resolved on the other side), and
the two threads share one GIL: at half load the consumer thread's fetch handling waits for the
GIL while an agent's batch holds it, and forces a switch in the middle of the next
(docs/design.md, "Latency": a census of the loop at 1,000 events/s).

Installed, the consumer "thread" is built with the worker's own loop as its ``thread_loop`` and
started as a task on that loop instead of an OS thread (``InLoopWorker``). mode's thread-safe
calls still work (they are also safe within one thread); what changes is that no second thread
and no second loop exist, and that the service, when it stops, leaves the loop's other tasks
alone (``InLoop``: mode would cancel every task left on "its" loop). Measured at 1,000 events/s
(four alternating pairs): p99 139 / 250 / 214 / 280 -> 72 / 92 / 140 / 218 ms, CPU per event
~5 % lower; drains ~4 % faster; the fault suite passes with it. ``FIN_CONSUMER_IN_LOOP=0`` (and
the classic runtime, by default) keep faust's thread. ``tests/unit/streams/faust_patches/``
checks the mode and faust internals this relies on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import ServiceThread, WorkerThread

log = logging.getLogger(__name__)

REPLACED: tuple[tuple[type, str], ...] = ((faust_aiokafka.Consumer, "_new_consumer_thread"),)
"""What ``install`` replaces (checked by tests/unit/streams/faust_patches/)."""
READ: tuple[tuple[type, str], ...] = (
    (ServiceThread, "_serve"),
    (ServiceThread, "_gather_remaining_tasks"),
    (ServiceThread, "set_shutdown"),
    (ServiceThread, "parent_loop"),
    (WorkerThread, "stop"),
)
"""mode internals the in-loop worker stands in for (checked the same way)."""

_ORIGINAL = faust_aiokafka.Consumer._new_consumer_thread


class InLoopWorker:
    """Stands in for mode's ``WorkerThread``: runs the service's ``_serve`` as a task on the
    parent loop (which is also the service's ``thread_loop``)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = self.service.parent_loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.service._serve()
        except asyncio.CancelledError:
            raise
        except Exception:
            # As mode's thread does when _serve raises: the parent's shutdown wait must end.
            self.service.set_shutdown()
            log.exception("faust consumer (in loop) stopped with an error")

    def stop(self) -> None:
        """mode joins the thread here; the task ends by itself once the service stopped."""

    def is_alive(self) -> bool:
        return self.task is not None and not self.task.done()


# mode types its ``Worker`` argument as a ``WorkerThread`` class; this one only quacks like it.
IN_LOOP_WORKER = cast("type[WorkerThread]", InLoopWorker)


class InLoop:
    """Mixed into a mode ``ServiceThread`` run by ``InLoopWorker``. At its end mode cancels
    every task left on the thread's loop (a driver's own tasks, in a thread of their own): here
    that loop is the worker's, and its other tasks are not this service's to cancel."""

    async def _gather_remaining_tasks(self) -> None:
        return None


class InLoopConsumerThread(InLoop, faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer service, to be run on the worker's loop."""


def _new_consumer_thread_in_loop(self: Any) -> Any:
    return InLoopConsumerThread(
        self, loop=self.loop, beacon=self.beacon, thread_loop=self.loop, Worker=IN_LOOP_WORKER
    )


def install(enabled: bool) -> None:
    """Build faust's consumer on the worker's loop (``enabled``) or in its thread (faust's)."""
    if enabled:
        faust_aiokafka.Consumer._new_consumer_thread = _new_consumer_thread_in_loop  # type: ignore[method-assign]
    else:
        faust_aiokafka.Consumer._new_consumer_thread = _ORIGINAL  # type: ignore[method-assign]


def installed() -> bool:
    return faust_aiokafka.Consumer._new_consumer_thread is _new_consumer_thread_in_loop
