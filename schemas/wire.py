"""Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro payload."""

import struct

from errors import FinError

MAGIC_BYTE = 0
HEADER_SIZE_BYTES = 5
SCHEMA_ID_MAX = 2**31 - 1

_HEADER = struct.Struct(">BI")


class WireFormatError(FinError):
    """A Kafka value is not in the Confluent wire format (absent, too short, or bad magic byte)."""


def frame(schema_id: int, payload: bytes) -> bytes:
    """Prefix an Avro payload with the magic byte and the registry's schema id."""
    assert 0 <= schema_id <= SCHEMA_ID_MAX, f"schema id out of range: {schema_id}"
    return _HEADER.pack(MAGIC_BYTE, schema_id) + payload


def unframe(value: bytes | None) -> tuple[int, bytes]:
    """Split a wire-format value into (schema id, Avro payload); raise WireFormatError otherwise."""
    if value is None:
        raise WireFormatError("value is absent (tombstone)")
    if len(value) < HEADER_SIZE_BYTES:
        raise WireFormatError(f"value has {len(value)} bytes, the header alone needs 5")
    magic = value[0]
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"magic byte is {magic}, expected {MAGIC_BYTE}")
    schema_id = int.from_bytes(value[1:HEADER_SIZE_BYTES], "big")
    return schema_id, bytes(value[HEADER_SIZE_BYTES:])


def schema_id_of(value: bytes | None) -> int | None:
    """The schema id of a wire-format value, or None when it is not one (``unframe`` says why);
    the payload is not copied."""
    if value is None or len(value) < HEADER_SIZE_BYTES or value[0] != MAGIC_BYTE:
        return None
    return int.from_bytes(value[1:HEADER_SIZE_BYTES], "big")
