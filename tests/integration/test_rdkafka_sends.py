"""The librdkafka sends (FIN_LIBRDKAFKA_SENDS) against the real broker: each future resolves
with the partition and offset the broker gave its record, in the order sent per partition, and
a keyed record without a partition lands where FIN's murmur2 (and aiokafka's) puts it."""

from __future__ import annotations

import asyncio
import uuid

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from settings import Settings
from streams.partitioner import partition_for
from streams.rdkafka_sends import Delivered, RdKafkaSends, producer_config
from tests.fixtures import Infra

PARTITIONS = 3


def test_deliveries_name_the_brokers_partition_and_offset(infra: Infra) -> None:
    topic = f"fin-test-rdkafka-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=infra.bootstrap, client_id="fin-rdkafka-test")
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    keys = [f"event-{n}".encode() for n in range(60)]

    async def send_all() -> tuple[list[Delivered], list[Delivered]]:
        settings = Settings(kafka_bootstrap=infra.bootstrap)
        sends = RdKafkaSends(producer_config(settings), asyncio.get_running_loop())
        pinned = [await sends.send(topic, None, f"p{n}".encode(), 1, None, None) for n in range(5)]
        keyed = [
            await sends.send(topic, key, key, None, None, [("fin.test", b"1")]) for key in keys
        ]
        await sends.flush()
        return [f.result() for f in pinned], [f.result() for f in keyed]

    pinned, keyed = asyncio.run(send_all())
    assert [d.partition for d in pinned] == [1] * 5
    assert [d.offset for d in pinned] == sorted(d.offset for d in pinned)
    for key, delivered in zip(keys, keyed, strict=True):
        assert delivered.topic == topic
        assert delivered.partition == partition_for(key, PARTITIONS), key

    consumer = KafkaConsumer(bootstrap_servers=infra.bootstrap, consumer_timeout_ms=10_000)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    found = {}
    for record in consumer:
        found[(record.partition, record.offset)] = (record.key, record.value, record.headers)
        if len(found) == len(keys) + len(pinned):
            break
    consumer.close()
    for key, delivered in zip(keys, keyed, strict=True):
        assert found[(delivered.partition, delivered.offset)] == (key, key, [("fin.test", b"1")])
    for n, delivered in enumerate(pinned):
        assert found[(delivered.partition, delivered.offset)][1] == f"p{n}".encode()
