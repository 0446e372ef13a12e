"""JSON events as written in the specification, converted to Avro record dicts.

Timestamps are ISO-8601 text with a zone ("2024-03-15T10:00:00Z") or epoch milliseconds; dates are
"YYYY-MM-DD"; amounts are JSON numbers or strings. Numbers are parsed straight from the JSON text
into `Decimal` (`parse_float=Decimal`), so no binary float ever holds money. The conversion is
driven by the Avro schema of the event type: unknown fields, missing required fields and values of
the wrong kind are errors naming the field.
"""

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from errors import FinError
from schemas.catalog import SchemaCatalog
from schemas.catalog import key_for as _contract_key_for

MILLISECONDS_PER_SECOND = 1000
MICROSECONDS_PER_MILLISECOND = 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class JsonEventError(FinError):
    """A JSON event cannot become an Avro record: the message names the field."""


def parse_json_event(text: str | bytes) -> Any:
    """JSON text to Python values with every non-integer number as an exact Decimal."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:  # json.JSONDecodeError and our NaN refusal
        raise JsonEventError(f"not valid JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number FIN accepts")


def record_from_json(event: Any, catalog: SchemaCatalog) -> dict[str, Any]:
    """The Avro record dict of a JSON event (already parsed with `parse_json_event`)."""
    if not isinstance(event, Mapping):
        raise JsonEventError(f"an event must be a JSON object, got {type(event).__name__}")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in catalog.by_event_type:
        known = ", ".join(sorted(catalog.by_event_type))
        raise JsonEventError(f"event_type: {event_type!r} is not one of {known}")
    if "event_id" not in event:
        # A producer must choose the id: it is the idempotency key of its retries.
        raise JsonEventError("event_id: missing (the producer chooses it; a retry reuses it)")
    entry = catalog.by_event_type[event_type]
    named = entry.parsed.get("__named_schemas", {})
    record = _convert(event, entry.parsed, named, "")
    assert isinstance(record, dict)
    return record


def key_for(record: Mapping[str, Any], fullname: str | None = None) -> str:
    """The Kafka key of a record: its business entity id (design.md contract table)."""
    return _contract_key_for(record, fullname)


def _convert(value: Any, schema: Any, named: Mapping[str, Any], path: str) -> Any:
    if isinstance(schema, list):
        return _convert_union(value, schema, named, path)
    if isinstance(schema, str) and schema in named:
        return _convert(value, named[schema], named, path)
    if isinstance(schema, str):
        return _convert_primitive(value, schema, path)
    logical_type = schema.get("logicalType")
    if logical_type == "decimal":
        return _money(value, int(schema.get("scale", 0)), path)
    if logical_type == "date":
        return _date(value, path)
    if logical_type == "timestamp-millis":
        return _timestamp(value, path)
    kind = schema["type"]
    if kind == "record":
        return _convert_record(value, schema, named, path)
    if kind == "array":
        if not isinstance(value, list):
            raise JsonEventError(f"{path}: expected a JSON array")
        return [
            _convert(item, schema["items"], named, f"{path}[{index}]")
            for index, item in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise JsonEventError(f"{path}: expected a JSON object")
        return {
            str(key): _convert(item, schema["values"], named, f"{path}.{key}")
            for key, item in value.items()
        }
    return _convert_primitive(value, str(kind), path)


def _convert_record(
    value: Any, schema: Mapping[str, Any], named: Mapping[str, Any], path: str
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise JsonEventError(f"{path or 'event'}: expected a JSON object")
    names = [field["name"] for field in schema["fields"]]
    unknown = sorted(str(key) for key in value if key not in names)
    if unknown:
        raise JsonEventError(f"{path or 'event'}: unknown field(s) {', '.join(unknown)}")
    record: dict[str, Any] = {}
    for field in schema["fields"]:
        name = field["name"]
        field_path = f"{path}.{name}" if path else name
        if name in value:
            record[name] = _convert(value[name], field["type"], named, field_path)
        elif "default" in field:
            # A copy: a list default must not be shared between records.
            record[name] = json.loads(json.dumps(field["default"]))
        else:
            raise JsonEventError(f"{field_path}: missing")
    return record


def _convert_union(value: Any, branches: list[Any], named: Mapping[str, Any], path: str) -> Any:
    if value is None:
        if "null" in branches:
            return None
        raise JsonEventError(f"{path}: must not be null")
    problems = []
    for branch in branches:
        if branch == "null":
            continue
        try:
            return _convert(value, branch, named, path)
        except JsonEventError as exc:
            problems.append(str(exc))
    raise JsonEventError("; ".join(problems) or f"{path}: no branch accepts the value")


def _convert_primitive(value: Any, kind: str, path: str) -> Any:
    if kind == "string":
        if isinstance(value, str):
            return value
        raise JsonEventError(f"{path}: expected text, got {_json_kind(value)}")
    if kind in ("int", "long"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise JsonEventError(f"{path}: expected a whole number, got {_json_kind(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise JsonEventError(f"{path}: expected true or false, got {_json_kind(value)}")
    if kind == "null":
        if value is None:
            return None
        raise JsonEventError(f"{path}: expected null, got {_json_kind(value)}")
    raise JsonEventError(f"{path}: Avro type {kind} has no JSON form here")


def _money(value: Any, scale: int, path: str) -> Decimal:
    """An exact Decimal with `scale` places; more places than that is an error, not rounding."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise JsonEventError(f"{path}: expected a number, got {_json_kind(value)}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise JsonEventError(f"{path}: {value!r} is not a number") from exc
    if not amount.is_finite():
        raise JsonEventError(f"{path}: {value!r} is not a finite number")
    try:
        quantized = amount.quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation as exc:
        raise JsonEventError(f"{path}: {value} has too many digits") from exc
    if quantized != amount:
        raise JsonEventError(f"{path}: {value} has more than {scale} decimal places")
    return quantized


def _date(value: Any, path: str) -> dt.date:
    if not isinstance(value, str):
        raise JsonEventError(f'{path}: expected a date as "YYYY-MM-DD", got {_json_kind(value)}')
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise JsonEventError(f'{path}: {value!r} is not a date "YYYY-MM-DD"') from exc


def _timestamp(value: Any, path: str) -> dt.datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return EPOCH + dt.timedelta(milliseconds=value)
        except OverflowError as exc:
            raise JsonEventError(f"{path}: {value} milliseconds is out of range") from exc
    if not isinstance(value, str):
        raise JsonEventError(f"{path}: expected ISO-8601 text, got {_json_kind(value)}")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise JsonEventError(f"{path}: {value!r} is not an ISO-8601 timestamp") from exc
    if moment.utcoffset() is None:
        # A naive time is ambiguous by hours, enough to move an entry to another period.
        raise JsonEventError(f"{path}: {value!r} has no time zone (add Z or an offset)")
    moment = moment.astimezone(dt.UTC)
    # Avro timestamp-millis keeps milliseconds; drop the rest here so a round trip is exact.
    return moment.replace(
        microsecond=moment.microsecond - moment.microsecond % MICROSECONDS_PER_MILLISECOND
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
