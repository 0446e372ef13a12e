"""The Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro payload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.wire import WireFormatError, frame, unframe


@pytest.mark.parametrize(
    ("schema_id", "payload", "expected"),
    [
        (1, b"", b"\x00\x00\x00\x00\x01"),
        (258, b"\x02a", b"\x00\x00\x00\x01\x02\x02a"),
        (2**31 - 1, b"x", b"\x00\x7f\xff\xff\xffx"),
    ],
)
def test_frame_prefixes_the_magic_byte_and_the_big_endian_id(schema_id, payload, expected):
    assert frame(schema_id, payload) == expected


@given(st.integers(0, 2**31 - 1), st.binary(max_size=64))
def test_unframe_inverts_frame(schema_id, payload):
    assert unframe(frame(schema_id, payload)) == (schema_id, payload)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (None, "absent"),
        (b"", "0 bytes"),
        (b"\x00\x00\x00\x01", "4 bytes"),
        (b"\x01\x00\x00\x00\x01payload", "magic byte is 1"),
        (b'{"json": true}', "magic byte is 123"),
    ],
    ids=["a tombstone", "nothing", "a short header", "a bad magic byte", "JSON text"],
)
def test_unframe_names_what_is_wrong_with_a_value(value, complaint):
    with pytest.raises(WireFormatError, match=complaint):
        unframe(value)
