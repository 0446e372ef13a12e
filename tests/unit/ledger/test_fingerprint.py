"""The fast fingerprint (type dispatch + orjson) is, for every input, the one first defined.

Fingerprints are persisted in the ``processed`` table: a single changed character would turn
every replayed event into ``event_id_conflict``. ``reference_fingerprint`` below is the original
definition, copied verbatim; the fast one must return the same text or raise the same error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.events import to_json_record
from ledger.idempotency import fingerprint


def reference_to_json_record(record: Any) -> Any:
    if isinstance(record, Mapping):
        encoded: dict[str, Any] = {}
        for key, value in record.items():
            if not isinstance(key, str):
                raise TypeError(f"record keys must be text, got {key!r}")
            encoded[key] = reference_to_json_record(value)
        return encoded
    if isinstance(record, list | tuple):
        return [reference_to_json_record(item) for item in record]
    if isinstance(record, Decimal):
        return str(record)
    if isinstance(record, datetime):
        if record.tzinfo is None:
            raise TypeError(f"timestamp without time zone: {record.isoformat()}")
        return record.astimezone(UTC).isoformat()
    if isinstance(record, date):
        return record.isoformat()
    if isinstance(record, UUID):
        return str(record)
    if record is None or isinstance(record, str | int):
        return record
    raise TypeError(f"{type(record).__name__} has no place in a decoded FIN record: {record!r}")


def reference_fingerprint(record: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        reference_to_json_record(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def outcome(function, record):
    try:
        return ("value", function(record))
    except Exception as exc:
        return ("error", type(exc), str(exc))


class Colour(StrEnum):
    RED = "red"


def test_orjson_writes_every_code_point_as_json_dumps_does():
    text = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
    form = {"text": text, text[:3000]: [text[::-1], 0, -(2**63), 2**64 - 1, True, None]}
    expected = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert orjson.dumps(form, option=orjson.OPT_SORT_KEYS) == expected.encode("utf-8")


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too: orjson refuses those, the original path answers
    st.text(),  # lone surrogates included: both paths fail on them the same way
    st.decimals(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(
        timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5, minutes=-30))])
    ),
    st.uuids(),
    st.floats(),
    st.binary(max_size=4),
    st.sampled_from([Colour.RED, (1, "a"), MappingProxyType({"k": Decimal("1.00")})]),
)
records = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), children, max_size=5),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), records, max_size=6))
def test_any_record_gets_the_original_fingerprint_or_error(record):
    assert outcome(fingerprint, record) == outcome(reference_fingerprint, record)
    assert outcome(to_json_record, record) == outcome(reference_to_json_record, record)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 3, 15, 12, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 3, 15, 12, 0),
        2**64,
        -(2**63) - 1,
        "\ud800",
        1.5,
        Decimal("-0.00"),
        Decimal("1E+3"),
        Colour.RED,
        {3: "int key"},
        {Colour.RED: "str subclass key"},
    ],
)
def test_the_edge_cases_answer_as_before(value):
    record = {"data": {"value": value}}
    assert outcome(fingerprint, record) == outcome(reference_fingerprint, record)
