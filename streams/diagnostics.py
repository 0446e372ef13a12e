"""What a worker can tell about itself when a partition stops moving.

``kill -USR1 <pid>`` logs where every asyncio task waits and faust's bookkeeping of every
assigned partition; the stall watch (streams.faust_patches.commit_guard) reports with the same
partition view.
faust keeps that bookkeeping in private attributes of its consumer; they are only read here.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

CHAIN_MAX = 40


def describe_partition(consumer: Any, tp: TP) -> str:
    """faust's view of one assigned partition, for logs."""
    acked = consumer._acked.get(tp) or []
    active = consumer._active_partitions or set()
    gaps = sorted((gap.begin, gap.end) for gap in consumer._gap.get(tp, ()))[:3]
    return (
        f"committed {consumer._committed_offset.get(tp)}, "
        f"read offset {consumer._read_offset.get(tp)}, "
        f"acked {len(acked)} ({min(acked) if acked else '-'}..{max(acked) if acked else '-'}, "
        f"{len(set(acked))} distinct), "
        f"{'paused' if tp in consumer._paused_partitions else 'not paused'}, "
        f"{'active' if tp in active else 'NOT ACTIVE'}, "
        f"highwater {consumer.highwater(tp)}, gaps {gaps}"
    )


def dump_partitions(consumer: Any) -> None:
    for tp in sorted(consumer.assignment()):
        log.warning(
            "partition %s[%d]: %s", tp.topic, tp.partition, describe_partition(consumer, tp)
        )


def awaiting_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a task waits: its coroutine and every coroutine it awaits, innermost last."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(chain) < CHAIN_MAX:
        if isinstance(awaited, asyncio.Task):
            awaited = awaited.get_coro()
            continue
        frame = _first_attribute(awaited, ("cr_frame", "ag_frame", "gi_frame"))
        if frame is not None:
            where = f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"
            chain.append(f"{frame.f_code.co_qualname} ({where})")
        awaited = _first_attribute(awaited, ("cr_await", "ag_await", "gi_yieldfrom"))
    return chain


def _first_attribute(obj: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def dump_tasks() -> None:
    tasks = asyncio.all_tasks()
    log.warning("SIGUSR1: %d asyncio tasks", len(tasks))
    for task in tasks:
        log.warning("task %s waits in: %s", task.get_name(), " -> ".join(awaiting_chain(task)))


def dump_on_sigusr1(consumer: Any) -> None:
    """Log tasks and partitions on SIGUSR1 (call from inside the running loop)."""

    def dump() -> None:
        dump_tasks()
        dump_partitions(consumer)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
