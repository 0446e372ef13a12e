"""The fast encoding path writes, refuses and words its refusals exactly as the strict one.

``strict_encode_payload`` is the original ``encode_payload``, copied verbatim: every record of
every FIN schema, valid or spoiled in one place, must get the same bytes or the same error.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import fast_writer
from schemas.catalog import SchemaEntry
from schemas.codec import RecordInvalidError, encode_payload, nonconformity
from tests.unit.schemas.fixtures import any_record, catalog


def strict_encode_payload(record: Any, entry: SchemaEntry) -> bytes:
    problem = nonconformity(dict(record), entry.parsed, for_writing=True)
    if problem is not None:
        raise RecordInvalidError(f"{entry.fullname}: {problem}")
    buffer = io.BytesIO()
    try:
        validate(record, entry.parsed, raise_errors=True)
        fastavro.schemaless_writer(buffer, entry.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecordInvalidError(f"{entry.fullname}: {exc}") from exc
    return buffer.getvalue()


def outcome(function, record, entry):
    try:
        return ("bytes", function(record, entry))
    except Exception as exc:
        return ("error", type(exc), str(exc))


SPOILERS: list[Any] = [
    None,
    True,
    0,
    1.5,
    float("nan"),
    2**31,
    -(2**31) - 1,
    2**63,
    "",
    "text",
    "\ud800",
    b"raw",
    Decimal("1.005"),
    Decimal("12345678901234567.89"),
    Decimal("1E+20"),
    Decimal("5"),
    Decimal("-128.00"),
    Decimal("-0.00"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    dt.date(2024, 2, 29),
    dt.datetime(2024, 2, 29, 12, 0),
    dt.datetime(2024, 2, 29, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
    uuid.UUID("0b6f2b1e-4d0a-4c55-9a57-1f0e6b9d2a01"),
    "0B6F2B1E-4D0A-4C55-9A57-1F0E6B9D2A01",
    "{0b6f2b1e-4d0a-4c55-9a57-1f0e6b9d2a01}",
    "0b6f2b1e4d0a4c559a571f0e6b9d2a01",
    [],
    {},
    ("tuple",),
    MappingProxyType({}),
]


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict key and list index inside `value`."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*path, key))
            found.extend(_containers(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*path, index))
            found.extend(_containers(item, (*path, index)))
    return found


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


@st.composite
def spoiled(draw):
    item, record = draw(any_record())
    record = _copy(record)
    paths = _containers(record)
    action = draw(st.sampled_from(["none", "replace", "delete", "add"]))
    if action != "none" and paths:
        path = draw(st.sampled_from(paths))
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        if action == "replace":
            parent[path[-1]] = draw(st.sampled_from(SPOILERS))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent["unheard_of"] = draw(st.sampled_from(SPOILERS))
        else:
            parent.append(draw(st.sampled_from(SPOILERS)))
    return item, record


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spoiled())
def test_any_record_is_written_or_refused_as_by_the_strict_path(entry_and_record):
    item, record = entry_and_record
    assert outcome(encode_payload, record, item) == outcome(strict_encode_payload, record, item)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_record(), st.sampled_from(SPOILERS))
def test_every_field_spoiled_in_turn_answers_as_before(entry_and_record, spoiler):
    item, valid = entry_and_record
    for path in _containers(valid):
        record = _copy(valid)
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = spoiler
        assert outcome(encode_payload, record, item) == outcome(
            strict_encode_payload, record, item
        ), path


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_record())
def test_a_mapping_that_is_not_a_dict_is_encoded_the_same(entry_and_record):
    item, record = entry_and_record
    proxy = MappingProxyType(record)
    assert outcome(encode_payload, proxy, item) == outcome(strict_encode_payload, proxy, item)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_record())
def test_a_valid_record_of_any_schema_is_written_by_the_fast_writer_as_by_fastavro(pair):
    item, record = pair
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, item.parsed, record)
    assert fast_writer.fast_writer(item.parsed)(record) == buffer.getvalue()


BOUNDARIES = [
    Decimal(unscaled).scaleb(-2)
    for magnitude in (0, 1, 127, 128, 255, 256, 32767, 32768, 2**31, 2**55, 10**18 - 1)
    for unscaled in (magnitude, -magnitude, magnitude - 1, -magnitude - 1)
    if abs(unscaled) < 10**18
]


@pytest.mark.parametrize("amount", [*BOUNDARIES, Decimal("5"), Decimal("-7.1"), Decimal("1E+5")])
def test_amounts_at_byte_boundaries_are_written_as_by_fastavro(amount):
    item = next(entry for entry in catalog().entries if entry.fullname == "fin.alerts.Alert")
    alert = {
        "alert_id": "214d6fd5-4c25-4c4a-a077-d2197dba772f",
        "alert_type": "budget_exceeded",
        "severity": "critical",
        "subject": "ENG-001",
        "period": "2024-Q1",
        "amount": amount,
        "limit": None,
        "detail": "détail ✓",
        "source_event_id": None,
    }
    fast = fast_writer.fast_writer(item.parsed)(alert)
    assert fast is not None
    assert fast == strict_encode_payload(alert, item)
