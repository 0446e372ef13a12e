"""Parsing an Avro schema as the registry accepts it, and its canonical text.

A schema is accepted when Apache Avro's own parser accepts it, plus three checks the Python parser
leaves out: a known logical type used wrongly (a decimal whose scale exceeds its precision, a
timestamp on an int) is an error rather than a warning, every field default must match the field's
type, and the text is at most `SCHEMA_BYTES_MAX` bytes.

The canonical text is the parsed schema written back as compact JSON with sorted keys: whitespace
and key order do not matter, everything else (docs, defaults, aliases, logical types, custom
properties) does. Two texts with the same canonical text are the same schema and share one id.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import avro.errors
import avro.name
import avro.schema

from registry.errors import InvalidSchemaError, SchemaTooLargeError

SCHEMA_BYTES_MAX = 1024 * 1024
SCHEMA_TYPE_AVRO = "AVRO"
SUPPORTED_SCHEMA_TYPES = (SCHEMA_TYPE_AVRO,)

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
BYTE_CODE_POINT_MAX = 255


@dataclass(frozen=True)
class AvroSchema:
    """A parsed, validated Avro schema and the canonical text that identifies it."""

    canonical: str
    parsed: avro.schema.Schema


def parse_avro(text: str) -> AvroSchema:
    """Parse and validate `text`; raise `InvalidSchemaError` with the parser's message."""
    size_bytes = len(text.encode("utf-8"))
    if size_bytes > SCHEMA_BYTES_MAX:
        raise SchemaTooLargeError(
            f"Schema is {size_bytes} bytes; the limit is {SCHEMA_BYTES_MAX} bytes"
        )
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON: {_shorten(str(exc))}") from exc
    parsed = _parse_document(document)
    problem = _first_default_problem(parsed, set())
    if problem is not None:
        raise InvalidSchemaError(f"Invalid schema: {problem}")
    return AvroSchema(canonical=canonical_text(parsed), parsed=parsed)


def canonical_text(parsed: avro.schema.Schema) -> str:
    """The identity of a schema: its JSON form, compact, keys sorted, non-ASCII kept."""
    return json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON and Avro's Java parser do not.
    raise ValueError(f"{name} is not valid JSON")


def _parse_document(document: object) -> avro.schema.Schema:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = avro.schema.make_avsc_object(
                document,
                avro.name.Names(validate_names=True),
                validate_enum_symbols=True,
                validate_names=True,
            )
        except (avro.errors.AvroException, ValueError, TypeError, KeyError, RecursionError) as exc:
            raise InvalidSchemaError(f"Invalid schema: {_shorten(str(exc))}") from exc
    for warning in caught:
        message = str(warning.message)
        # The parser warns in two cases: a logical type it does not know (allowed by the Avro
        # specification: the annotation is kept and the underlying type is used) and a known
        # logical type used wrongly, which for money would silently turn a decimal into bytes.
        if issubclass(warning.category, avro.errors.IgnoredLogicalType) and not message.startswith(
            "Unknown "
        ):
            raise InvalidSchemaError(f"Invalid schema: {message}")
    return parsed


def _shorten(message: str, length_max: int = 500) -> str:
    return message if len(message) <= length_max else message[:length_max] + "..."


def _first_default_problem(schema: avro.schema.Schema, seen: set[int]) -> str | None:
    """The first field default in `schema` that does not match its field's type, described."""
    if id(schema) in seen:
        return None
    seen.add(id(schema))
    if isinstance(schema, avro.schema.RecordSchema):
        for field in schema.fields:
            if field.has_default:
                problem = _default_problem(field.type, field.default)
                if problem is not None:
                    return (
                        f"invalid default for field '{field.name}' of record "
                        f"'{schema.fullname}': {problem}"
                    )
            problem = _first_default_problem(field.type, seen)
            if problem is not None:
                return problem
        return None
    if isinstance(schema, avro.schema.ArraySchema):
        return _first_default_problem(schema.items, seen)
    if isinstance(schema, avro.schema.MapSchema):
        return _first_default_problem(schema.values, seen)
    if isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            problem = _first_default_problem(branch, seen)
            if problem is not None:
                return problem
    return None


def _default_problem(schema: avro.schema.Schema, value: object) -> str | None:
    """Why the JSON `value` is not a valid default for `schema`, or None when it is."""
    expected = _type_label(schema)
    got = _shorten(json.dumps(value, ensure_ascii=False), 80)
    mismatch = f"expected {expected}, got {got}"
    avro_type = schema.type
    if isinstance(schema, avro.schema.UnionSchema):
        # Avro 1.12 (AVRO-3649): a union's default may match any of its branches.
        if any(_default_problem(branch, value) is None for branch in schema.schemas):
            return None
        return mismatch
    if avro_type == "null":
        return None if value is None else mismatch
    if avro_type == "boolean":
        return None if isinstance(value, bool) else mismatch
    if avro_type in ("int", "long"):
        low, high = (INT_MIN, INT_MAX) if avro_type == "int" else (LONG_MIN, LONG_MAX)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return mismatch
    if avro_type in ("float", "double"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return None if math.isfinite(value) else mismatch
        return mismatch
    if avro_type == "string":
        return None if isinstance(value, str) else mismatch
    if avro_type == "bytes":
        return None if _is_byte_string(value) else mismatch
    if isinstance(schema, avro.schema.FixedSchema):
        if _is_byte_string(value) and isinstance(value, str) and len(value) == schema.size:
            return None
        return mismatch
    if isinstance(schema, avro.schema.EnumSchema):
        return None if isinstance(value, str) and value in schema.symbols else mismatch
    if isinstance(schema, avro.schema.ArraySchema):
        if not isinstance(value, list):
            return mismatch
        for item in value:
            problem = _default_problem(schema.items, item)
            if problem is not None:
                return f"in array item: {problem}"
        return None
    if isinstance(schema, avro.schema.MapSchema):
        if not isinstance(value, dict):
            return mismatch
        for key, item in value.items():
            problem = _default_problem(schema.values, item)
            if problem is not None:
                return f"in map value '{key}': {problem}"
        return None
    if isinstance(schema, avro.schema.RecordSchema):
        return _record_default_problem(schema, value, mismatch)
    return f"unsupported type {expected}"


def _record_default_problem(
    schema: avro.schema.RecordSchema, value: object, mismatch: str
) -> str | None:
    if not isinstance(value, dict):
        return mismatch
    for field in schema.fields:
        if field.name in value:
            problem = _default_problem(field.type, value[field.name])
            if problem is not None:
                return f"in field '{field.name}': {problem}"
        elif not field.has_default:
            return f"field '{field.name}' of '{schema.fullname}' is missing and has no default"
    return None


def _is_byte_string(value: object) -> bool:
    # Bytes and fixed defaults are JSON strings whose code points 0-255 stand for the bytes.
    return isinstance(value, str) and all(ord(char) <= BYTE_CODE_POINT_MAX for char in value)


def _type_label(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{schema.type} '{schema.fullname}'"
    return str(schema.type)


def parse_stored(text: str) -> AvroSchema | None:
    """Parse a schema read back from the `_schemas` topic, leniently; None if Avro rejects it.

    Stored schemas were validated when they were registered, possibly by an older or laxer
    registry, so only Avro's own parser is asked here and its warnings are ignored.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError, RecursionError):
        return None
    return AvroSchema(canonical=canonical_text(parsed), parsed=parsed)
