"""Every event schema (schemas/*.avsc) against its dataclass (ledger/event_types.py): the same
data fields under the record's names, compatible types and the same defaults, so the Avro file and
the class, the one Python source of an event's fields, cannot drift apart."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.event_fields import ENVELOPE_FIELDS, REQUIRED, DataField, Layout, item_type
from ledger.events import EVENT_CLASSES
from schemas.catalog import CONTRACT_BY_EVENT_TYPE
from tests.unit.schemas.fixtures import catalog

# Where the dataclass knowingly differs from the schema: (event type, field) -> the class's default.
# The schema requires a compensation's reason; a JSON record without one has always read as "".
KNOWN_DEFAULT_DIFFERENCES: Mapping[tuple[str, str], Any] = {
    ("fin.compensation.requested", "reason"): "",
}

# Avro types (a name, or the logical type) and the Python type a decoded value has.
PYTHON_TYPES: Mapping[str, Any] = {
    "string": str,
    "uuid": str,
    "int": int,
    "long": int,
    "decimal": Decimal,
    "date": date,
    "timestamp-millis": datetime,
}


def schema_fields(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {item["name"]: item for item in record["fields"]}


def data_record(event_type: str) -> Mapping[str, Any]:
    data: Mapping[str, Any] = schema_fields(catalog().by_event_type[event_type].schema_json)[
        "data"
    ]["type"]
    assert data["type"] == "record"
    return data


def python_type(avro_type: Any) -> Any:
    """The Python type a dataclass declares for a decoded value of ``avro_type`` (arrays of
    records are compared field by field instead)."""
    if isinstance(avro_type, list):
        assert len(avro_type) == 2 and avro_type[0] == "null", f"unexpected union {avro_type}"
        return python_type(avro_type[1]) | None
    if isinstance(avro_type, str):
        return PYTHON_TYPES[avro_type]
    return PYTHON_TYPES[avro_type.get("logicalType", avro_type["type"])]


def python_default(avro_field: Mapping[str, Any]) -> Any:
    if "default" not in avro_field:
        return REQUIRED
    default = avro_field["default"]
    return tuple(default) if isinstance(default, list) else default  # an array reads as a tuple


def assert_record_matches(record: Mapping[str, Any], layout: Layout, where: str) -> None:
    declared = {item.wire: item for item in layout.fields}
    in_schema = schema_fields(record)
    assert sorted(declared) == sorted(in_schema), f"{where}: data fields differ"
    # A class declares its own fields in the schema's order; those a base class adds (a dated
    # event's currency and business_date) keep the schema's order among themselves.
    own = inspect.get_annotations(layout.cls)
    for group in (
        [item.wire for item in layout.fields if item.name in own],
        [item.wire for item in layout.fields if item.name not in own],
    ):
        assert group == [name for name in in_schema if name in group], f"{where}: field order"
    for name, avro_field in in_schema.items():
        assert_field_matches(avro_field, declared[name], f"{where}.{name}")


def assert_field_matches(avro_field: Mapping[str, Any], item: DataField, where: str) -> None:
    avro_type = avro_field["type"]
    if isinstance(avro_type, Mapping) and avro_type["type"] == "array":
        assert item.nested is not None, f"{where}: an array of records is tuple[record, ...]"
        assert item_type(item.hint) is item.nested.cls
        assert_record_matches(avro_type["items"], item.nested, f"{where}[]")
    else:
        assert item.hint == python_type(avro_type), f"{where}: {item.hint} for {avro_type}"
        logical = avro_type.get("logicalType") if isinstance(avro_type, Mapping) else None
        # A uuid reads from fastavro's UUID; every decimal is checked as an amount.
        assert item.role.identifier == (logical == "uuid"), f"{where}: uuid"
        assert item.role.amount == (logical == "decimal"), f"{where}: amount"
    assert item.default == python_default(avro_field), f"{where}: default"


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_the_event_schema_and_the_dataclass_declare_the_same_data_fields(event_type: str) -> None:
    layout = EVENT_CLASSES[event_type].layout
    known = {
        name: default
        for (known_type, name), default in KNOWN_DEFAULT_DIFFERENCES.items()
        if known_type == event_type
    }
    record = dict(data_record(event_type))
    record["fields"] = [
        {**item, "default": known[item["name"]]} if item["name"] in known else item
        for item in record["fields"]
    ]
    assert_record_matches(record, layout, event_type)


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_the_envelope_of_the_schema_is_the_dataclass_envelope(event_type: str) -> None:
    cls = EVENT_CLASSES[event_type]
    envelope = {item.name: item for item in fields(cls) if item.name in ENVELOPE_FIELDS}
    in_schema = schema_fields(catalog().by_event_type[event_type].schema_json)
    assert set(in_schema) == {*ENVELOPE_FIELDS, "event_type", "data"}
    hints = typing.get_type_hints(cls)
    for name, item in envelope.items():
        assert hints[name] == python_type(in_schema[name]["type"]), name
        default = REQUIRED if item.default is MISSING else item.default
        assert default == python_default(in_schema[name]), name


def test_every_event_type_of_the_contract_has_its_class() -> None:
    assert set(EVENT_CLASSES) == set(CONTRACT_BY_EVENT_TYPE)


def test_every_known_difference_is_still_one() -> None:
    for (event_type, name), default in KNOWN_DEFAULT_DIFFERENCES.items():
        in_schema = schema_fields(data_record(event_type))[name]
        declared = {item.wire: item for item in EVENT_CLASSES[event_type].layout.fields}[name]
        assert "default" not in in_schema and declared.default == default, (event_type, name)
