"""Compatibility rules: Avro reader/writer resolution per level, plus the logical-type rule."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from registry.avro_schema import parse_avro
from registry.compatibility import (
    CompatibilityLevel,
    PreviousSchema,
    check_compatibility,
    logical_type_changes,
)
from registry.errors import InvalidCompatibilityLevelError

L = CompatibilityLevel


def record(*fields: Mapping[str, object], name: str = "Payment") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "fin.test", "fields": fields})


def decimal(precision: int = 18, scale: int = 2) -> dict[str, object]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


ID = {"name": "payment_id", "type": "string"}
AMOUNT = {"name": "amount", "type": decimal()}
NOTE_OPTIONAL = {"name": "note", "type": ["null", "string"], "default": None}
CURRENCY_DEFAULT = {"name": "currency", "type": "string", "default": "USD"}
CURRENCY_REQUIRED = {"name": "currency", "type": "string"}

V1 = record(ID, AMOUNT)
V2_OPTIONAL_ADDED = record(ID, AMOUNT, NOTE_OPTIONAL)
V3_TWO_OPTIONAL = record(ID, AMOUNT, NOTE_OPTIONAL, CURRENCY_DEFAULT)
V2_REQUIRED_ADDED = record(ID, AMOUNT, CURRENCY_REQUIRED)
V2_ID_REMOVED = record(AMOUNT)
V2_SCALE_CHANGED = record(ID, {"name": "amount", "type": decimal(18, 3)})
V2_PRECISION_CHANGED = record(ID, {"name": "amount", "type": decimal(20, 2)})
V2_DECIMAL_TO_BYTES = record(ID, {"name": "amount", "type": "bytes"})
TS_MILLIS = record(
    ID, AMOUNT, {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
)
TS_MICROS = record(
    ID, AMOUNT, {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}
)
DATE = record(ID, {"name": "on", "type": {"type": "int", "logicalType": "date"}})
DATE_AS_INT = record(ID, {"name": "on", "type": "int"})
INT_FIELD = record(ID, {"name": "count", "type": "int"})
LONG_FIELD = record(ID, {"name": "count", "type": "long"})


def check(new: str, *previous: str, level: CompatibilityLevel) -> tuple[bool, tuple[str, ...]]:
    history = [
        PreviousSchema(version, parse_avro(text).parsed)
        for version, text in enumerate(previous, start=1)
    ]
    result = check_compatibility(parse_avro(new).parsed, history, level)
    return result.is_compatible, result.messages


# (case, history oldest first, new schema, level, compatible, a word every message must contain)
CASES = [
    (
        "added optional field with default, FULL_TRANSITIVE",
        [V1, V2_OPTIONAL_ADDED],
        V3_TWO_OPTIONAL,
        L.FULL_TRANSITIVE,
        True,
        "",
    ),
    ("added optional field with default, BACKWARD", [V1], V2_OPTIONAL_ADDED, L.BACKWARD, True, ""),
    ("added optional field with default, FORWARD", [V1], V2_OPTIONAL_ADDED, L.FORWARD, True, ""),
    ("added required field, BACKWARD", [V1], V2_REQUIRED_ADDED, L.BACKWARD, False, "currency"),
    ("added required field, FULL", [V1], V2_REQUIRED_ADDED, L.FULL, False, "currency"),
    (
        "added required field, FULL_TRANSITIVE",
        [V1],
        V2_REQUIRED_ADDED,
        L.FULL_TRANSITIVE,
        False,
        "currency",
    ),
    (
        "added required field, FORWARD (old readers ignore it)",
        [V1],
        V2_REQUIRED_ADDED,
        L.FORWARD,
        True,
        "",
    ),
    # Removing a field is BACKWARD-compatible in Avro (the new reader skips it); it is the old
    # reader, without a default for it, that cannot read new data: FORWARD and FULL refuse.
    ("removed field without default, BACKWARD", [V1], V2_ID_REMOVED, L.BACKWARD, True, ""),
    ("removed field without default, FORWARD", [V1], V2_ID_REMOVED, L.FORWARD, False, "payment_id"),
    ("removed field without default, FULL", [V1], V2_ID_REMOVED, L.FULL, False, "payment_id"),
    ("removed field with default, FULL", [V2_OPTIONAL_ADDED], V1, L.FULL, True, ""),
    ("decimal scale change, BACKWARD", [V1], V2_SCALE_CHANGED, L.BACKWARD, False, "decimal(18,3)"),
    ("decimal scale change, FORWARD", [V1], V2_SCALE_CHANGED, L.FORWARD, False, "decimal(18,3)"),
    ("decimal precision change, FULL", [V1], V2_PRECISION_CHANGED, L.FULL, False, "decimal(20,2)"),
    (
        "decimal to plain bytes, BACKWARD",
        [V1],
        V2_DECIMAL_TO_BYTES,
        L.BACKWARD,
        False,
        "no logical type",
    ),
    (
        "timestamp-millis to timestamp-micros, BACKWARD",
        [TS_MILLIS],
        TS_MICROS,
        L.BACKWARD,
        False,
        "timestamp-micros",
    ),
    ("date to plain int, FULL", [DATE], DATE_AS_INT, L.FULL, False, "date"),
    ("plain int to date, FORWARD", [DATE_AS_INT], DATE, L.FORWARD, False, "date"),
    ("decimal scale change under NONE", [V1], V2_SCALE_CHANGED, L.NONE, True, ""),
    ("required field under NONE", [V1], V2_REQUIRED_ADDED, L.NONE, True, ""),
    ("int promoted to long, BACKWARD", [INT_FIELD], LONG_FIELD, L.BACKWARD, True, ""),
    ("int promoted to long, FORWARD", [INT_FIELD], LONG_FIELD, L.FORWARD, False, "long"),
    ("no previous version", [], V2_REQUIRED_ADDED, L.FULL_TRANSITIVE, True, ""),
]


@pytest.mark.parametrize(
    ("history", "new", "level", "compatible", "needle"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compatibility_table(history, new, level, compatible, needle):
    is_compatible, messages = check(new, *history, level=level)
    assert is_compatible is compatible, messages
    if not compatible:
        assert messages
        assert all(needle in message for message in messages), messages
        assert all(message.startswith(level.value) for message in messages)


def test_transitive_levels_check_every_version_plain_levels_only_the_latest():
    v1 = record(ID)
    v2 = record(ID, {"name": "fee", "type": "int", "default": 0})
    v3 = record(ID, {"name": "fee", "type": "int"})  # reads v2 data, not v1 data

    assert check(v3, v1, v2, level=L.BACKWARD) == (True, ())
    compatible, messages = check(v3, v1, v2, level=L.BACKWARD_TRANSITIVE)
    assert not compatible
    assert len(messages) == 1
    assert "version 1" in messages[0]
    assert "'fee'" in messages[0]


def test_forward_transitive_names_each_old_version_that_cannot_read_the_new_schema():
    v1 = record(ID, AMOUNT)
    v2 = record(ID, AMOUNT)
    v3 = record(AMOUNT)
    compatible, messages = check(v3, v1, v2, level=L.FORWARD_TRANSITIVE)
    assert not compatible
    assert [("version 1" in m, "version 2" in m) for m in messages] == [
        (True, False),
        (False, True),
    ]


def test_logical_type_rule_walks_unions_arrays_and_maps():
    def line_items(amount_type: object) -> str:
        line = {
            "type": "record",
            "name": "Line",
            "fields": [{"name": "amount", "type": amount_type}],
        }
        return record(
            ID,
            {"name": "lines", "type": {"type": "array", "items": line}},
            {
                "name": "totals",
                "type": {"type": "map", "values": ["null", amount_type]},
                "default": {},
            },
            {"name": "fee", "type": ["null", amount_type], "default": None},
        )

    old = parse_avro(line_items(decimal(18, 2))).parsed
    new = parse_avro(line_items(decimal(18, 4))).parsed
    changes = logical_type_changes(new=new, old=old)
    assert len(changes) == 3
    assert any("'lines[].amount'" in change for change in changes)
    assert any("'totals{}'" in change for change in changes)
    assert any("'fee'" in change for change in changes)


def test_logical_type_rule_ignores_fields_present_in_only_one_schema():
    old = parse_avro(record(ID, AMOUNT)).parsed
    new = parse_avro(record(ID, {"name": "fee", "type": decimal(10, 4), "default": ""})).parsed
    assert logical_type_changes(new=new, old=old) == []


def test_logical_type_rule_follows_field_aliases():
    old = parse_avro(record(ID, AMOUNT)).parsed
    renamed = {"name": "total", "aliases": ["amount"], "type": decimal(18, 5)}
    new = parse_avro(record(ID, renamed)).parsed
    assert len(logical_type_changes(new=new, old=old)) == 1


def test_decimal_scale_zero_and_absent_scale_are_the_same():
    explicit = record(
        {
            "name": "n",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 0},
        }
    )
    implicit = record(
        {"name": "n", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9}}
    )
    assert check(implicit, explicit, level=L.FULL) == (True, ())


def test_recursive_schemas_terminate():
    linked = json.dumps(
        {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "value", "type": decimal()},
                {"name": "next", "type": ["null", "Node"], "default": None},
            ],
        }
    )
    linked_rescaled = linked.replace('"scale": 2', '"scale": 3')
    assert check(linked, linked, level=L.FULL_TRANSITIVE) == (True, ())
    compatible, messages = check(linked_rescaled, linked, level=L.FULL)
    assert not compatible
    assert any("'value'" in message for message in messages)


def test_enum_symbol_removed_is_refused_backward_with_the_symbol_named():
    def colors(*symbols: str) -> str:
        return record({"name": "c", "type": {"type": "enum", "name": "Color", "symbols": symbols}})

    compatible, messages = check(colors("RED"), colors("RED", "BLUE"), level=L.BACKWARD)
    assert not compatible
    assert "BLUE" in messages[0]


@pytest.mark.parametrize(
    ("raw", "level"),
    [("backward", L.BACKWARD), ("FULL_TRANSITIVE", L.FULL_TRANSITIVE), (" none ", L.NONE)],
)
def test_level_names_are_case_insensitive(raw, level):
    assert CompatibilityLevel.parse(raw) is level


@pytest.mark.parametrize("raw", ["", "SIDEWAYS", None, 3])
def test_unknown_level_is_refused_with_42203(raw):
    with pytest.raises(InvalidCompatibilityLevelError) as caught:
        CompatibilityLevel.parse(raw)
    assert caught.value.error_code == 42203
