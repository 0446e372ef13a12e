"""Rows larger than one changelog record: split into chunk records, a small header written last.

A table row goes to its changelog as one record, and a changelog topic takes records up to its
``max.message.bytes`` (the broker's default 1 MiB, which FIN's changelogs keep). A row can grow
past that: a vendor whose receipts are not paid keeps every one as an open item (~110 bytes
each), ~9,000 of them fill a megabyte. The broker would refuse that row's record, the batch's
delivery would fail, the worker would stop without committing and every restart would replay
the same batch into the same refusal: a stopped hub.

So a row over ``limit`` bytes is written as records of its own chunks, then a header under the
row's own key naming them. RocksDB holds exactly what the changelog holds (the header under the
key, each chunk under its chunk key), so restoring a table from its changelog needs nothing
special: faust writes every record as it comes, and a reader assembles the row from the header.

Why it is safe under crashes and compaction:
- each write's chunks get a fresh random generation in their keys, so a chunk record is never
  overwritten: the chunks of the header the changelog holds last stay whole whatever a later,
  crashed write sent (its chunks carry another generation; with a header that never arrived,
  they are garbage that no header names);
- the header comes after its chunks in the same partition, from one producer, so a header in
  the log implies its chunks before it, and log compaction keeps the order;
- the chunks of the row's previous version are deleted (tombstones) only after the new header;
- the header carries the whole row's length and CRC-32, checked at every assembly: a row that
  does not add up is never used (``CorruptRowError``).

A row at or under ``limit`` is one plain record, as before; if it was chunked before, the old
chunks are deleted after it. Internal keys (chunks) start with ``INTERNAL_KEY_PREFIX`` and are
never rows: ``is_row_key`` tells a table's readers which keys to skip.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from errors import FinError

INTERNAL_KEY_PREFIX = b"\x00fin-"
CHUNK_KEY_PREFIX = INTERNAL_KEY_PREFIX + b"chunk\x00"
HEADER_MARKER = INTERNAL_KEY_PREFIX + b"chunked\x00"
# The default largest record a row is written as: a quarter of the changelog topics' 1 MiB
# limit, as PACK_BYTES_MAX (tables/store.py), so a produce request never nears it.
DEFAULT_CHUNK_BYTES = 256 * 1024
GENERATION_BYTES = 8
# generation, chunk count, row length, CRC-32 of the row
_HEADER = struct.Struct(">8sIQI")
_INDEX = struct.Struct(">I")

Get = Callable[[bytes], "bytes | None"]


class CorruptRowError(FinError):
    """A chunked row's header names chunks that are missing or do not add up to its length
    and checksum."""


@dataclass(frozen=True)
class Header:
    generation: bytes
    count: int
    length: int
    crc: int

    def encode(self) -> bytes:
        return HEADER_MARKER + _HEADER.pack(self.generation, self.count, self.length, self.crc)

    def chunk_keys(self, key: bytes) -> Iterator[bytes]:
        for index in range(self.count):
            yield chunk_key(key, self.generation, index)


def is_row_key(key: object) -> bool:
    """True for a row's key; False for a chunk's (and anything that is not bytes)."""
    return isinstance(key, bytes) and not key.startswith(INTERNAL_KEY_PREFIX)


def chunk_key(key: bytes, generation: bytes, index: int) -> bytes:
    return CHUNK_KEY_PREFIX + generation + _INDEX.pack(index) + key


def header_of(value: bytes | None) -> Header | None:
    """The header ``value`` is, or None for a plain row (or no row)."""
    if value is None or not value.startswith(HEADER_MARKER):
        return None
    body = value[len(HEADER_MARKER) :]
    if len(body) != _HEADER.size:
        raise CorruptRowError(f"a chunked row's header is {len(body)} bytes, not {_HEADER.size}")
    generation, count, length, crc = _HEADER.unpack(body)
    return Header(generation, count, length, crc)


def assemble(key: bytes, value: bytes | None, get: Get) -> bytes | None:
    """The row stored as ``value`` under ``key``: ``value`` itself, or, for a header, its chunks
    joined (``get`` reads a key from the same partition)."""
    header = header_of(value)
    if header is None:
        return value
    parts: list[bytes] = []
    for index, name in enumerate(header.chunk_keys(key)):
        part = get(name)
        if part is None:
            raise CorruptRowError(
                f"row {key!r}: chunk {index} of {header.count} "
                f"(generation {header.generation.hex()}) is missing"
            )
        parts.append(part)
    row = b"".join(parts)
    if len(row) != header.length or zlib.crc32(row) != header.crc:
        raise CorruptRowError(
            f"row {key!r}: its chunks (generation {header.generation.hex()}) add up to "
            f"{len(row)} bytes with CRC {zlib.crc32(row):08x}, the header says "
            f"{header.length} bytes with CRC {header.crc:08x}"
        )
    return row


def records(
    key: bytes, row: bytes, previous: bytes | None, limit: int
) -> list[tuple[bytes, bytes | None]]:
    """The changelog records (key, value; None deletes) that write ``row`` under ``key``, in
    the order they must be written, given the ``previous`` value stored under ``key``: the
    chunks, then the header (or the plain row), then the previous version's chunks deleted."""
    old = header_of(previous)
    if len(row) <= limit:
        written: list[tuple[bytes, bytes | None]] = [(key, row)]
    else:
        generation = os.urandom(GENERATION_BYTES)
        while old is not None and generation == old.generation:
            generation = os.urandom(GENERATION_BYTES)
        written = [
            (chunk_key(key, generation, index), row[at : at + limit])
            for index, at in enumerate(range(0, len(row), limit))
        ]
        header = Header(generation, len(written), len(row), zlib.crc32(row))
        written.append((key, header.encode()))
    if old is not None:
        written.extend((name, None) for name in old.chunk_keys(key))
    return written
