"""What FIN's plain (group-less) topic readers share: the topic's partitions and a retry loop.

The entries index (``tables.entries_index``) and the master-data reader
(``streams.master_data``) each follow a whole topic with their own aiokafka consumer, outside
faust's group. Both need the topic's partitions before assigning them, and both restart their
reading after a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

RETRY_DELAY_S = 5.0


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, what: str
) -> list[TopicPartition]:
    """Every partition of ``topic``, once the cluster has it (``what`` names the reader in the
    log line written while waiting)."""
    while True:
        # A consumer with no subscription keeps no metadata of its own (partitions_for_topic
        # answers None): read the cluster's, as the consumer's topics() does.
        cluster = await consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(topic)
        if numbers:
            return [TopicPartition(topic, number) for number in sorted(numbers)]
        log.info("%s: waiting for topic %s", what, topic)
        await asyncio.sleep(1.0)


async def read_forever(read: Callable[[], Awaitable[None]], topic: str, what: str) -> None:
    """Run ``read`` again ``RETRY_DELAY_S`` after each failure, until cancelled."""
    while True:
        try:
            await read()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reading %s failed; again in %.0f s", what, topic, RETRY_DELAY_S)
            await asyncio.sleep(RETRY_DELAY_S)
