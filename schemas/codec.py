"""Strict Avro decoding to named rejections, and strict encoding, in the Confluent wire format.

The record dict shape on both paths ("the record"): decimals are `Decimal`, dates are
`datetime.date`, `timestamp-millis` values are timezone-aware UTC `datetime`s, uuid fields stay
`str` (so `ledger.validation` can name a malformed id `event_id_invalid` instead of the decoder
failing it), every optional field is present after decoding (defaults filled by schema resolution).
"""

import datetime as dt
import io
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import fastavro
from fastavro.validation import validate

from errors import FinError
from ledger.rejections import Reason, Rejection
from schemas.catalog import SchemaCatalog, SchemaEntry, contract_for_record
from schemas.fast_writer import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, fast_writer
from schemas.registry import SchemaNotFound
from schemas.wire import WireFormatError, frame, unframe

SCHEMA_CACHE_SIZE_MAX = 10_000
UNKNOWN_ID_CACHE_SIZE_MAX = 1_000
UNKNOWN_ID_TTL_SECONDS = 30.0

Schema = Any  # a fastavro parsed schema node: str, list (union) or dict


class RecordInvalidError(FinError):
    """A record dict does not fit its Avro schema and cannot be encoded."""


@dataclass(frozen=True)
class Decoded:
    """A value that passed every decoding check, read into FIN's own (reader) schema."""

    event_type: str  # the record's event_type; the record fullname for non-event records
    record: dict[str, Any]
    schema_id: int
    fullname: str


@dataclass(frozen=True)
class _WriterSchema:
    """A writer schema as fetched once per id: parsed, or why it cannot be used."""

    fullname: str | None
    parsed: Schema | None
    problem: str | None
    # Floats in fields our reader lacks are skipped by schema resolution; a writer schema with
    # any float gets a second, writer-only read so a NaN anywhere is still refused.
    has_floats: bool = False
    # Set when this writer schema is FIN's own reader schema (decided once per id, see
    # `_TrustedCheck`): the value is read without schema resolution and only the checks that can
    # still fail run.
    trusted: "_TrustedCheck | None" = None


def _rejection(code: str, detail: str) -> Rejection:
    return Rejection(Reason(code), detail)


class Decoder:
    """Decodes wire-format values; asks the registry only for schema ids it has not seen."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        fetch_schema: Callable[[int], str],
        cache_size_max: int = SCHEMA_CACHE_SIZE_MAX,
        unknown_id_ttl_seconds: float = UNKNOWN_ID_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert cache_size_max > 0
        self._catalog = catalog
        self._fetch_schema = fetch_schema
        self._cache_size_max = cache_size_max
        self._schemas: OrderedDict[int, _WriterSchema] = OrderedDict()
        # A 404 is remembered briefly so a burst of garbage does not hammer the registry,
        # but not forever: a registry being restored may learn the id a moment later.
        self._unknown_id_ttl_seconds = unknown_id_ttl_seconds
        self._unknown_ids: OrderedDict[int, float] = OrderedDict()
        self._clock = clock
        # Reader schemas as writer schemas are parsed (uuid kept as text), so that a writer
        # identical to ours is read without the cost of schema resolution.
        self._readers: dict[str, Schema] = {
            entry.fullname: fastavro.parse_schema(_without_uuid_logical_type(entry.schema_json))
            for entry in catalog.entries
        }
        self.registry_fetches = 0

    def decode(self, topic: str, value: bytes | None) -> Decoded | Rejection:
        """Decode one Kafka value read from `topic`; RegistryUnavailableError propagates."""
        try:
            schema_id, payload = unframe(value)
        except WireFormatError as exc:
            return _rejection("wire_format_invalid", str(exc))
        writer = self._writer_schema(schema_id)
        if writer is None:
            return _rejection("schema_unknown", f"the registry has no schema with id {schema_id}")
        allowed = self._catalog.allowed_fullnames(topic)
        if writer.parsed is None or writer.fullname not in allowed:
            what = writer.problem or f"record {writer.fullname}"
            return _rejection(
                "schema_subject_mismatch",
                f"schema id {schema_id} ({what}) is not allowed on topic {topic}; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}",
            )
        entry = self._catalog.by_fullname[writer.fullname]
        if writer.has_floats:
            problem = _non_finite_float(payload, writer.parsed)
            if problem is not None:
                return _rejection("payload_undecodable", f"{entry.fullname}: {problem}")
        if writer.trusted is not None:
            return _read_payload(schema_id, payload, writer.parsed, None, entry, writer.trusted)
        return _read_payload(
            schema_id, payload, writer.parsed, self._readers[entry.fullname], entry
        )

    def _writer_schema(self, schema_id: int) -> _WriterSchema | None:
        cached = self._schemas.get(schema_id)
        if cached is not None:
            self._schemas.move_to_end(schema_id)
            return cached
        if self._recently_unknown(schema_id):
            return None
        self.registry_fetches += 1
        try:
            schema_text = self._fetch_schema(schema_id)
        except SchemaNotFound:
            self._remember_unknown(schema_id)
            return None
        writer = self._with_trust(_parse_writer_schema(schema_text))
        self._schemas[schema_id] = writer
        if len(self._schemas) > self._cache_size_max:
            self._schemas.popitem(last=False)
        return writer

    def _with_trust(self, writer: _WriterSchema) -> _WriterSchema:
        """`writer`, marked trusted when it is (parsed) exactly the reader schema of its record.

        Decided here, once per schema id, rather than by fastavro on every read: fastavro itself
        drops the reader schema when the two compare equal, but pays for a deep comparison of
        the parsed schemas each time to find out.
        """
        reader = self._readers.get(writer.fullname or "")
        if reader is None or writer.parsed != reader:
            return writer
        return replace(writer, trusted=_TrustedCheck(reader))

    def _recently_unknown(self, schema_id: int) -> bool:
        seen_at = self._unknown_ids.get(schema_id)
        if seen_at is None:
            return False
        if self._clock() - seen_at < self._unknown_id_ttl_seconds:
            return True
        del self._unknown_ids[schema_id]
        return False

    def _remember_unknown(self, schema_id: int) -> None:
        self._unknown_ids[schema_id] = self._clock()
        self._unknown_ids.move_to_end(schema_id)
        if len(self._unknown_ids) > UNKNOWN_ID_CACHE_SIZE_MAX:
            self._unknown_ids.popitem(last=False)


def _parse_writer_schema(schema_text: str) -> _WriterSchema:
    try:
        schema_json = json.loads(schema_text)
    except ValueError:
        return _WriterSchema(None, None, "not an Avro schema: not JSON")
    try:
        parsed = fastavro.parse_schema(_without_uuid_logical_type(schema_json))
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        return _WriterSchema(None, None, f"not a valid Avro schema: {exc}")
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return _WriterSchema(None, parsed, "not a record schema")
    return _WriterSchema(str(parsed["name"]), parsed, None, _has_floats(schema_json))


def _has_floats(schema_json: Any) -> bool:
    if isinstance(schema_json, str):
        return schema_json in ("float", "double")
    if isinstance(schema_json, list):
        return any(_has_floats(branch) for branch in schema_json)
    if isinstance(schema_json, dict):
        return any(
            _has_floats(schema_json.get(name)) for name in ("type", "items", "values")
        ) or any(_has_floats(field.get("type")) for field in schema_json.get("fields", ()))
    return False


def _without_uuid_logical_type(schema_json: Any) -> Any:
    """Drop `logicalType: uuid` so fastavro keeps uuid fields as text instead of parsing them.

    fastavro applies logical types from the writer's schema and raises on a malformed uuid,
    which would turn `event_id_invalid` (a validation reason) into `payload_undecodable`.
    """
    if isinstance(schema_json, list):
        return [_without_uuid_logical_type(branch) for branch in schema_json]
    if not isinstance(schema_json, Mapping):
        return schema_json
    result = {key: _without_uuid_logical_type(value) for key, value in schema_json.items()}
    if result.get("type") == "string" and result.get("logicalType") == "uuid":
        del result["logicalType"]
    return result


def _non_finite_float(payload: bytes, writer: Schema) -> str | None:
    """Where the writer-only reading of `payload` holds a NaN or an infinity, if anywhere.

    A payload this reading cannot decode is left to the resolved read, which names it.
    """
    try:
        everything = fastavro.schemaless_reader(io.BytesIO(payload), writer, None)
    except Exception:
        return None
    return _find_non_finite(everything, "")


def _find_non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'value'}: {value} is not finite"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _read_payload(
    schema_id: int,
    payload: bytes,
    writer: Schema,
    reader: Schema | None,
    entry: SchemaEntry,
    trusted: "_TrustedCheck | None" = None,
) -> Decoded | Rejection:
    """Read `payload`; with `trusted` (the writer is the reader schema) `reader` is None."""
    buffer = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(buffer, writer, reader)
    except Exception as exc:
        # The one place untrusted bytes meet the Avro reader: EOFError, UnicodeDecodeError,
        # IndexError (bad union branch), OverflowError (date out of range),
        # SchemaResolutionError and others all mean the same thing for us.
        return _rejection(
            "payload_undecodable", f"{entry.fullname}: {type(exc).__name__}: {exc}"[:500]
        )
    if buffer.tell() != len(payload):
        return _rejection(
            "payload_undecodable",
            f"{entry.fullname}: {len(payload) - buffer.tell()} trailing byte(s) after the record",
        )
    problem = trusted(record) if trusted is not None else nonconformity(record, reader)
    if problem is not None:
        return _rejection("payload_undecodable", f"{entry.fullname}: {problem}")
    assert isinstance(record, dict)
    event_type = str(record["event_type"]) if entry.contract.has_envelope else entry.fullname
    return Decoded(event_type, record, schema_id, entry.fullname)


# What fastavro yields for these, read with FIN's own schema as the writer's, always passes
# `nonconformity`: text, bytes and None for the primitives; for the logical types a Decimal (its
# context traps overflow, so never an infinity or NaN), a date, a UTC-aware datetime, or an
# exception. Everything else (int and long ranges, float finiteness, booleans, enums, fixed,
# other logical types) is checked as before.
_TRUSTED_PRIMITIVES = frozenset({"null", "string", "bytes"})
_TRUSTED_LOGICAL_TYPES = frozenset({"decimal", "date", "timestamp-millis"})

# (field name, checks of the nested record's fields, or else the field's schema for a full
# `_nonconformity` walk), in field order.
_FieldCheck = tuple[str, "tuple[_FieldCheck, ...] | None", Schema]


class _TrustedCheck:
    """`nonconformity(record, reader)`, for records read with the reader schema as the writer's.

    Such a record has exactly the reader's fields, in order, of the Python types fastavro maps
    them to; only the fields whose schema can still yield a problem are walked, with the same
    function, path and order as the full walk, so the first problem found and its text are the
    same. For FIN's schemas that is nothing, or one int field.
    """

    def __init__(self, reader: Mapping[str, Any]) -> None:
        self._named: Mapping[str, Any] = reader.get("__named_schemas", {})
        self._fields = _field_checks(reader, self._named, frozenset())

    def __call__(self, record: Any) -> str | None:
        if not self._fields:
            return None
        return _check_fields(record, self._fields, self._named, "")


def _field_checks(
    record_schema: Mapping[str, Any], named: Mapping[str, Any], visiting: frozenset[str]
) -> tuple[_FieldCheck, ...]:
    visiting = visiting | {str(record_schema.get("name", ""))}
    checks: list[_FieldCheck] = []
    for field in record_schema["fields"]:
        field_schema = field["type"]
        if not _may_fail(field_schema, named, visiting):
            continue
        resolved = named.get(field_schema) if isinstance(field_schema, str) else field_schema
        if (
            isinstance(resolved, dict)
            and resolved.get("type") == "record"
            and "logicalType" not in resolved
            and str(resolved.get("name", "")) not in visiting  # recursive: walked in full
        ):
            checks.append((field["name"], _field_checks(resolved, named, visiting), field_schema))
        else:
            checks.append((field["name"], None, field_schema))
    return tuple(checks)


def _may_fail(schema: Schema, named: Mapping[str, Any], visiting: frozenset[str]) -> bool:
    """Whether a value fastavro reads for `schema` (writer = reader) can fail `nonconformity`."""
    if isinstance(schema, list):
        return any(_may_fail(branch, named, visiting) for branch in schema)
    if isinstance(schema, str):
        if schema in named:
            # A recursive type is walked in full rather than reasoned about.
            return schema in visiting or _may_fail(named[schema], named, visiting | {schema})
        return schema not in _TRUSTED_PRIMITIVES
    logical_type = schema.get("logicalType")
    if logical_type is not None:
        return logical_type not in _TRUSTED_LOGICAL_TYPES
    kind = schema["type"]
    if kind == "record":
        inner = visiting | {str(schema.get("name", ""))}
        return any(_may_fail(field["type"], named, inner) for field in schema["fields"])
    if kind == "array":
        return _may_fail(schema["items"], named, visiting)
    if kind == "map":
        return _may_fail(schema["values"], named, visiting)
    return kind not in _TRUSTED_PRIMITIVES


def _check_fields(
    record: Any, checks: tuple[_FieldCheck, ...], named: Mapping[str, Any], path: str
) -> str | None:
    for name, nested, field_schema in checks:
        field_path = f"{path}.{name}" if path else name
        value = record[name]
        if nested is not None:
            problem = _check_fields(value, nested, named, field_path)
        else:
            problem = _nonconformity(value, field_schema, named, field_path, False)
        if problem is not None:
            return problem
    return None


def nonconformity(value: Any, schema: Schema, *, for_writing: bool = False) -> str | None:
    """Why `value` is not a record dict of FIN's shape for `schema` (a parsed schema), or None.

    Checks what fastavro does not: Python types behind logical types (a writer that declared
    plain `bytes` where we expect a decimal yields bytes, not a Decimal), finite floats and
    decimals, aware datetimes, no unknown record keys. With `for_writing`, uuid fields must be
    well-formed and optional fields may be absent (the default is written).
    """
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _nonconformity(value, schema, named, "", for_writing)


def _nonconformity(
    value: Any, schema: Schema, named: Mapping[str, Any], path: str, for_writing: bool
) -> str | None:
    if isinstance(schema, list):
        for branch in schema:
            if _nonconformity(value, branch, named, path, for_writing) is None:
                return None
        return f"{path or 'value'}: {type(value).__name__} fits no branch of the union"
    if isinstance(schema, str) and schema in named:
        return _nonconformity(value, named[schema], named, path, for_writing)
    if isinstance(schema, str):
        return _primitive_problem(value, schema, path)
    logical_type = schema.get("logicalType")
    if logical_type is not None:
        return _logical_problem(value, schema, str(logical_type), path, for_writing)
    kind = schema["type"]
    if kind == "record":
        return _record_problem(value, schema, named, path, for_writing)
    if kind == "array":
        if not isinstance(value, list):
            return f"{path}: {type(value).__name__} is not a list"
        for index, item in enumerate(value):
            problem = _nonconformity(item, schema["items"], named, f"{path}[{index}]", for_writing)
            if problem is not None:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return f"{path}: {type(value).__name__} is not a dict"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: map key {key!r} is not str"
            problem = _nonconformity(item, schema["values"], named, f"{path}[{key}]", for_writing)
            if problem is not None:
                return problem
        return None
    if kind == "enum":
        return None if value in schema["symbols"] else f"{path}: {value!r} is not a symbol"
    if kind == "fixed":
        fits = isinstance(value, bytes) and len(value) == schema["size"]
        return None if fits else f"{path}: not {schema['size']} bytes"
    return _primitive_problem(value, str(kind), path)


def _record_problem(
    value: Any, schema: Mapping[str, Any], named: Mapping[str, Any], path: str, for_writing: bool
) -> str | None:
    if not isinstance(value, dict):
        return f"{path or 'record'}: {type(value).__name__} is not a dict"
    field_names = {field["name"] for field in schema["fields"]}
    unknown = sorted(str(key) for key in value if key not in field_names)
    if unknown:
        return f"{path or 'record'}: unknown field(s) {', '.join(unknown)}"
    for field in schema["fields"]:
        name = field["name"]
        field_path = f"{path}.{name}" if path else name
        if name not in value:
            if for_writing and "default" in field:
                continue
            return f"{field_path}: missing"
        problem = _nonconformity(value[name], field["type"], named, field_path, for_writing)
        if problem is not None:
            return problem
    return None


def _primitive_problem(value: Any, kind: str, path: str) -> str | None:
    if kind in ("int", "long"):
        low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
        fits = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if fits else f"{path}: {value!r} is not an Avro {kind}"
    if kind in ("float", "double"):
        if not isinstance(value, float):
            return f"{path}: {type(value).__name__} is not a float"
        return None if math.isfinite(value) else f"{path}: {value!r} is not a finite number"
    expected: dict[str, type | tuple[type, ...]] = {
        "null": type(None),
        "boolean": bool,
        "string": str,
        "bytes": bytes,
    }
    python_type = expected.get(kind)
    if python_type is None:
        return f"{path}: unsupported Avro type {kind}"
    if isinstance(value, python_type):
        return None
    return f"{path}: {type(value).__name__} is not an Avro {kind}"


def _logical_problem(
    value: Any, schema: Mapping[str, Any], logical_type: str, path: str, for_writing: bool
) -> str | None:
    if logical_type == "decimal":
        if not isinstance(value, Decimal):
            return f"{path}: {type(value).__name__} is not a Decimal"
        return None if value.is_finite() else f"{path}: {value} is not a finite Decimal"
    if logical_type == "date":
        # datetime is a subclass of date; a datetime here is a type confusion.
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return None
        return f"{path}: {type(value).__name__} is not a date"
    if logical_type == "timestamp-millis":
        if isinstance(value, dt.datetime) and value.utcoffset() is not None:
            return None
        return f"{path}: {value!r} is not a timezone-aware datetime"
    if logical_type == "uuid":
        if not isinstance(value, str):
            return f"{path}: {type(value).__name__} is not str"
        if for_writing and not _is_uuid(value):
            return f"{path}: {value!r} is not a uuid"
        return None
    return _primitive_problem(value, str(schema["type"]), path)


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


class Encoder:
    """Encodes record dicts in the wire format; one schema id lookup per subject, then cached."""

    def __init__(self, catalog: SchemaCatalog, schema_id_for: Callable[[str], int]) -> None:
        self._catalog = catalog
        self._schema_id_for = schema_id_for
        self._ids: dict[str, int] = {}

    def encode(self, record: Mapping[str, Any], fullname: str | None = None) -> bytes:
        """Wire-format bytes of `record`, found by its event_type (or by `fullname`)."""
        try:
            entry = self._catalog.by_fullname[contract_for_record(record, fullname).fullname]
        except KeyError as exc:
            raise RecordInvalidError(str(exc)) from exc
        payload = encode_payload(record, entry)
        return frame(self._schema_id(entry.subject), payload)

    def _schema_id(self, subject: str) -> int:
        schema_id = self._ids.get(subject)
        if schema_id is None:
            schema_id = self._schema_id_for(subject)
            self._ids[subject] = schema_id
        return schema_id


def encode_payload(record: Mapping[str, Any], entry: SchemaEntry) -> bytes:
    """The bare Avro body of `record` under `entry`'s schema, after strict validation."""
    payload = fast_writer(entry.parsed)(record)
    if payload is not None:
        return payload
    problem = nonconformity(dict(record), entry.parsed, for_writing=True)
    if problem is not None:
        raise RecordInvalidError(f"{entry.fullname}: {problem}")
    buffer = io.BytesIO()
    try:
        validate(record, entry.parsed, raise_errors=True)
        fastavro.schemaless_writer(buffer, entry.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, OverflowError) as exc:
        # fastavro's ValidationError is a ValueError: decimal scale or precision, ranges.
        raise RecordInvalidError(f"{entry.fullname}: {exc}") from exc
    return buffer.getvalue()
