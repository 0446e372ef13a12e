"""FIN's murmur2 partitioner gives every key the partition aiokafka's would."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.partitioner import murmur2, partition_for


def test_murmur2_equals_aiokafkas_for_keys_of_every_length_and_byte() -> None:
    rng = random.Random(7)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"\xff\xfe\xfd\xfc\xfb"]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(80))) for _ in range(3000)]
    keys += [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(3000)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_partition_for_equals_aiokafkas_default_partitioner() -> None:
    rng = random.Random(11)
    for partitions in (1, 2, 3, 4, 7, 12, 60):
        numbers = list(range(partitions))
        for _ in range(500):
            key = f"VEN-{rng.randrange(10_000):04d}|{uuid.UUID(int=rng.getrandbits(128))}".encode()
            assert partition_for(key, partitions) == DefaultPartitioner()(key, numbers, numbers)


def test_known_value_from_kafkas_own_test_vectors() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2: "21" -> -973932308 as a signed int.
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
