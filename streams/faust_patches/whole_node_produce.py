"""Produce requests that take every waiting batch of the broker they go to.

aiokafka 0.14's producer keeps one batch per partition, each lingering ``linger_ms`` from its
first record, and its sender drains a batch only once that batch's own linger has run out
(``MessageAccumulator.drain_by_nodes``). A FIN worker writes to ~40 partitions at moments a
few milliseconds apart (a batch's by-event-id records, then its journal entries and deltas,
then its changelog rows; another agent's records meanwhile), so the lingers run out one after
the other and nearly every one makes its own produce request: at 100 events/s one worker sent
~355 produce requests a second (3.6 per event; cProfile call counts), each built and its answer
parsed in Python on the event loop (~130-260 us each). Kafka's Java producer drains differently:
once any batch for a broker is ready, the request to that broker takes the first batch of
every partition it leads, lingering or not.

``install()`` gives aiokafka that rule: before the original drain, each lingering batch whose
partition's leader has a ready batch too is marked ready (its linger set to 0). A batch never
goes later than before, only some go earlier; a partition's batches keep their order (only the
first of each partition's queue is drained, as before), and the idempotent producer's
sequence numbers are assigned as each batch is drained, as before. ``uninstall()`` puts the
original back (``FIN_WHOLE_NODE_PRODUCE=0``).

``REPLACED`` and ``READ`` list the aiokafka internals this relies on;
``tests/unit/streams/faust_patches/test_whole_node_produce.py`` pins their source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch

REPLACED: tuple[tuple[type, str], ...] = ((MessageAccumulator, "drain_by_nodes"),)
READ: tuple[tuple[type, str], ...] = (
    (MessageAccumulator, "_batches"),
    (MessageAccumulator, "_cluster"),
    (MessageBatch, "remaining_linger"),
    (MessageBatch, "_linger_time"),
)

_ORIGINAL: Callable[..., Any] = MessageAccumulator.drain_by_nodes


def ready_with_their_node(accumulator: Any, ignore_nodes: Any, muted: Any) -> int:
    """Mark ready the first batch of every partition whose leader has a ready batch; how many
    lingering batches were marked."""
    cluster = accumulator._cluster
    ready_nodes: set[int] = set()
    lingering: list[tuple[int, Any]] = []
    for tp, queue in accumulator._batches.items():
        if tp in muted or not queue:
            continue
        leader = cluster.leader_for_partition(tp)
        if leader is None or leader == -1 or (ignore_nodes and leader in ignore_nodes):
            continue
        first = queue[0]
        if first.remaining_linger():
            lingering.append((leader, first))
        else:
            ready_nodes.add(leader)
    marked = 0
    for leader, batch in lingering:
        if leader in ready_nodes:
            batch._linger_time = 0
            marked += 1
    return marked


@functools.wraps(_ORIGINAL)
def drain_by_nodes(
    self: MessageAccumulator, ignore_nodes: Any, muted_partitions: Any = frozenset()
) -> Any:
    ready_with_their_node(self, ignore_nodes, muted_partitions)
    return _ORIGINAL(self, ignore_nodes, muted_partitions)


def install() -> None:
    MessageAccumulator.drain_by_nodes = drain_by_nodes  # type: ignore[method-assign]


def uninstall() -> None:
    MessageAccumulator.drain_by_nodes = _ORIGINAL  # type: ignore[method-assign]


def installed() -> bool:
    return MessageAccumulator.drain_by_nodes is drain_by_nodes
