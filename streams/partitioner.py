"""Kafka's default partitioner (murmur2 of the key), fast enough to call per record.

aiokafka's ``DefaultPartitioner`` hashes the key byte by byte in pure Python: 23 µs per keyed
record measured here, ~2.5 keyed records per input event. This computes the same murmur2 (Kafka's
``Utils.murmur2``) a 4-byte word at a time, so FIN can pass the partition to the producer itself.
It must agree with aiokafka's and Java's partitioner exactly (the by-event-id routing and the
co-partitioning of deltas with their tables depend on it): a unit test compares them on many keys.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (a non-negative 32-bit value, like aiokafka's)."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for word in struct.unpack_from(f"<{words}I", data):
        k = (word * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & ~3
    extra = length - tail
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``
    (partitions numbered 0..n-1, as Kafka numbers them)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
