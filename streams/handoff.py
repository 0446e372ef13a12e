"""By-event-id records handed from the ingest agent to the posting agent inside one worker.

The posting stage must read each by-event-id partition in its offset order: that order decides
which of two events sharing an id came first, and a record's (partition, offset) is the
position its deltas are made idempotent by (docs/design.md, "Idempotency"). So a record could
only be posted after the broker gave it an offset, and the posting agent learnt of it by
fetching it back: a fetch wait, the hand-over from faust's consumer thread and a pass through
faust's stream, on the hot path of every event (hop 2 of "Latency").

When the ingest agent's outputs are delivered, their delivery results carry what the fetch
would bring: the partition and offset the broker gave each by-event-id record, beside its key,
value and headers, which the worker itself sent. ``Handoff`` passes them to the posting agent
(``take_ready(side=...)``) at once. The posting agent processes a handed record only if it is
the very next record of its partition, after the last one it processed in this assignment
(``claim``); a consumed record it has processed that way already is skipped and acknowledged
in its turn (``streams.inflight.InFlight`` completes batches in order, so that acknowledgement
comes after the handed batch's own deliveries). Every record is still processed exactly once,
in offset order, with the same bytes: the outputs are those of the fetched path, and nothing
is committed that was not consumed, processed and delivered. A handed record that is not the
next one (another worker's record came in between, a partition not assigned here, a rebalance
in progress, the hand-over queue full) is dropped: the record comes by fetch as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

# Handed records waiting for the posting agent, at most (more are dropped: they come by fetch).
HANDOFF_QUEUE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class HandedMessage:
    """What the posting stage reads of a by-event-id record, from its delivery result."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class HandedEvent:
    """A handed record in a posting batch, beside faust's events (it is never acknowledged to
    faust: the consumed copy of the same record is)."""

    message: HandedMessage


def is_handed(event: Any) -> bool:
    return isinstance(event, HandedEvent)


class Handoff:
    """The ingest agent's delivered by-event-id records, for the posting agent of the same
    worker, and which records the posting agent has processed (see the module docstring)."""

    def __init__(
        self, app: Any, topic: str, counter: Any = None, limit: int = HANDOFF_QUEUE_MAX
    ) -> None:
        """``counter``: a prometheus counter labelled by outcome (posted: a handed record
        processed; skipped: its consumed copy; refused: a handed record not next in its
        partition, to come by fetch; dropped: the queue was full)."""
        self._app = app
        self._counts = (
            {name: counter.labels(name) for name in ("posted", "skipped", "refused", "dropped")}
            if counter is not None
            else {}
        )
        self._topic = topic  # the by-event-id topic's full name
        self._limit = limit
        self._items: deque[HandedEvent] = deque()
        self.ready = asyncio.Event()
        # partition -> the next offset the posting agent is to process there, since the
        # first record it consumed from that partition in the current assignment.
        self._next: dict[int, int] = {}

    def _count(self, outcome: str) -> None:
        child = self._counts.get(outcome)
        if child is not None:
            child.inc()

    def offer(self, delivered: Iterable[tuple[Any, Any]]) -> None:
        """``delivered``: (send, record metadata) of by-event-id records on the broker, in the
        order they were sent."""
        if self._app.rebalancing:
            return
        added = False
        for send, metadata in delivered:
            if len(self._items) >= self._limit:
                self._count("dropped")
                continue
            self._items.append(
                HandedEvent(
                    HandedMessage(
                        topic=self._topic,
                        partition=metadata.partition,
                        offset=metadata.offset,
                        key=send.key,
                        value=send.value,
                        headers=list(send.headers),
                    )
                )
            )
            added = True
        if added:
            self.ready.set()

    def take(self, max_: int) -> list[HandedEvent]:
        """At most ``max_`` handed records, oldest first, that ``claim`` will accept when the
        posting agent processes them in this order next; the others are dropped here, since
        they would be refused (in a backlog the posting agent reads its partitions behind the
        ingest agent, so what is handed over is ahead of it: it comes by fetch)."""
        items = self._items
        expected: dict[int, int] = {}
        taken: list[HandedEvent] = []
        rebalancing = self._app.rebalancing
        while items and len(taken) < max_:
            event = items.popleft()
            message = event.message
            partition = message.partition
            next_offset = expected.get(partition, self._next.get(partition))
            if rebalancing or next_offset is None or message.offset != next_offset:
                self._count("refused")
                continue
            expected[partition] = next_offset + 1
            taken.append(event)
        if not items:
            self.ready.clear()
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def claim(self, event: Any) -> bool:
        """Whether the posting agent is to process ``event`` now (a handed or a consumed
        record); called once per record, in the order the agent processes them."""
        message = event.message
        partition = message.partition
        offset = message.offset
        expected = self._next.get(partition)
        if is_handed(event):
            if expected is None or offset != expected or self._app.rebalancing:
                self._count("refused")
                return False
            self._count("posted")
        elif expected is not None and offset < expected:
            self._count("skipped")
            return False  # processed already, handed over
        self._next[partition] = offset + 1
        return True

    def forget(self) -> None:
        """A rebalance: start again from the records consumed after it."""
        self._next.clear()
        self._items.clear()
        self.ready.clear()

    def install(self) -> None:
        """Forget everything at each revocation (partitions may move, and positions with them)."""

        @self._app.on_partitions_revoked.connect  # type: ignore[untyped-decorator]
        async def forget_on_revoke(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
            self.forget()
