"""The group consumer's fetch requests wait a little for data instead of returning at once.

faust-streaming 0.15.3 builds its aiokafka consumer (``AIOKafkaConsumerThread.
_create_worker_consumer``) with aiokafka's ``fetch_min_bytes=1`` and ``fetch_max_wait_ms=1500``:
the broker answers a fetch as soon as one byte is there. A FIN worker reads topics it writes
itself (by-event-id, the deltas topics), so under any steady load there is always a byte: the
fetcher sends its next request the moment the last one was consumed, and every answer carries
a handful of records. Each round costs the same whatever it carries: a request naming all
~50 assigned partitions built and parsed in Python, the hand-over between faust's consumer
thread and the event loop, and a small batch through every agent (take, seal, flush, send,
acknowledge). Measured on one worker at 927 events/s (half its drain rate): ~40-60 rounds a
second and ~1,000 µs of CPU per event, against ~520 µs in a drain, which runs the same code in
batches of 500. The worker was saturated at half its capacity, and its latency was queueing.

``install(max_wait_ms, min_bytes)`` makes the broker hold a fetch until ``min_bytes`` are there
or ``max_wait_ms`` has passed: rounds come at most every ``max_wait_ms`` at low and moderate
load, each with what arrived meanwhile; under a backlog the bytes are there and nothing
waits. A record waits at most ``max_wait_ms`` more per hop (docs/design.md, "Latency").

Only the worker's group consumer is changed: the bulk recovery reader, the entries index and
the master-data reader build their own consumers. ``REPLACED`` lists what this wraps;
``tests/unit/streams/faust_patches/test_fetch_wait.py`` checks the wrapped method and the
aiokafka attributes it sets are still what they were.
"""

from __future__ import annotations

import functools
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

REPLACED: tuple[tuple[type, str], ...] = ((AIOKafkaConsumerThread, "_create_worker_consumer"),)
READ: tuple[tuple[type, str], ...] = ()

# The aiokafka consumer's own settings, read by its fetcher when the consumer starts
# (aiokafka 0.14: ``AIOKafkaConsumer.start`` builds the ``Fetcher`` from them).
CONSUMER_ATTRIBUTES = ("_fetch_max_wait_ms", "_fetch_min_bytes")

_ORIGINAL = AIOKafkaConsumerThread._create_worker_consumer


def install(*, max_wait_ms: int, min_bytes: int) -> None:
    """Make every worker consumer faust creates from now on wait up to ``max_wait_ms`` for
    ``min_bytes`` (``max_wait_ms`` 0: faust's own settings)."""
    if max_wait_ms <= 0:
        AIOKafkaConsumerThread._create_worker_consumer = _ORIGINAL  # type: ignore[method-assign]
        return

    @functools.wraps(_ORIGINAL)
    def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = _ORIGINAL(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        consumer._fetch_min_bytes = min_bytes
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
