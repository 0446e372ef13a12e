"""What the registry accepts as an Avro schema, and the canonical text that identifies it."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from registry.avro_schema import SCHEMA_BYTES_MAX, parse_avro, parse_stored
from registry.errors import InvalidSchemaError, SchemaTooLargeError


def record(*fields: Mapping[str, object]) -> str:
    return json.dumps({"type": "record", "name": "R", "namespace": "fin.test", "fields": fields})


def test_whitespace_and_key_order_do_not_change_the_canonical_text():
    compact = '{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}'
    spread = '{ "fields": [ {"type": "string", "name": "a"} ],\n "name": "R", "type": "record" }'
    assert parse_avro(compact).canonical == parse_avro(spread).canonical


@pytest.mark.parametrize(
    "changed",
    [
        record({"name": "a", "type": "string", "default": "x"}),
        record({"name": "a", "type": "string", "doc": "the a"}),
        record({"name": "a", "type": {"type": "string", "logicalType": "uuid"}}),
        record({"name": "b", "type": "string"}),
    ],
    ids=["default", "doc", "logical type", "field name"],
)
def test_defaults_docs_logical_types_and_names_change_the_canonical_text(changed):
    assert (
        parse_avro(changed).canonical
        != parse_avro(record({"name": "a", "type": "string"})).canonical
    )


def test_canonical_text_parses_back_to_itself():
    text = record(
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
        },
        {"name": "when", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
    )
    canonical = parse_avro(text).canonical
    assert parse_avro(canonical).canonical == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "double", "default": NaN}', "NaN"),
        ('{"type": "record", "name": "R"}', "fields"),
        ('{"type": "recrod", "name": "R", "fields": []}', "recrod"),
        ('{"type": "record", "name": "1R", "fields": []}', "1R"),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "Duplicate symbol"),
        ('["int", "int"]', "already in Union"),
        ('{"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 5}', "scale"),
        ('{"type": "int", "logicalType": "timestamp-millis"}', "timestamp-millis"),
        (record({"name": "n", "type": "int", "default": "seven"}), "field 'n'"),
        (record({"name": "n", "type": "int", "default": 2**40}), "field 'n'"),
        (record({"name": "n", "type": ["null", "int"], "default": "x"}), "field 'n'"),
        (
            record(
                {
                    "name": "e",
                    "type": {"type": "enum", "name": "E", "symbols": ["A"]},
                    "default": "B",
                }
            ),
            "field 'e'",
        ),
        (
            record(
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}, "default": "abc"}
            ),
            "field 'f'",
        ),
        (
            record({"name": "l", "type": {"type": "array", "items": "long"}, "default": [1, "2"]}),
            "array item",
        ),
    ],
)
def test_invalid_schemas_are_refused_with_42201_and_the_reason(text, reason):
    with pytest.raises(InvalidSchemaError) as caught:
        parse_avro(text)
    assert caught.value.error_code == 42201
    assert caught.value.http_status == 422
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        '"string"',
        record({"name": "n", "type": ["null", "int"], "default": None}),
        # Avro 1.12 (AVRO-3649): a union default may match any branch.
        record({"name": "n", "type": ["null", "int"], "default": 3}),
        record({"name": "b", "type": "bytes", "default": "\u00ff\u0000"}),
        record({"name": "d", "type": "double", "default": 1}),
        # Unknown logical types are allowed by the specification and kept.
        record({"name": "s", "type": {"type": "string", "logicalType": "iban"}}),
        record(
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [
                        {"name": "x", "type": "int"},
                        {"name": "y", "type": "int", "default": 0},
                    ],
                },
                "default": {"x": 1},
            }
        ),
    ],
)
def test_valid_schemas_are_accepted(text):
    parse_avro(text)


def test_unknown_logical_type_is_kept_in_the_canonical_text():
    canonical = parse_avro(
        record({"name": "s", "type": {"type": "string", "logicalType": "iban"}})
    ).canonical
    assert '"logicalType":"iban"' in canonical


def test_a_schema_over_one_mebibyte_is_refused_with_42209():
    fields = [
        {"name": f"field_{index}", "type": "string", "doc": "x" * 1000} for index in range(1100)
    ]
    text = record(*fields)
    assert len(text.encode()) > SCHEMA_BYTES_MAX
    with pytest.raises(SchemaTooLargeError) as caught:
        parse_avro(text)
    assert caught.value.error_code == 42209


def test_deeply_nested_json_is_refused_not_crashing():
    with pytest.raises(InvalidSchemaError):
        parse_avro("[" * 100_000 + "]" * 100_000)


def test_stored_schemas_are_parsed_leniently():
    lax = record({"name": "n", "type": "int", "default": "seven"})
    parsed = parse_stored(lax)
    assert parsed is not None
    assert parse_stored("{broken") is None
