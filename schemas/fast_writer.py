"""The fast Avro writer: one pass over a record FIN built itself, into fastavro's bytes.

The strict path walks a record three times (nonconformity, fastavro's validate, fastavro's
writer), and fastavro's writer alone costs about 20 µs for a journal entry. A record FIN built
itself (a journal entry, an alert, an event) is valid in the overwhelming majority of cases, so
a writer compiled once per schema checks and writes it in one pass, from exact Python types and
bounds, into the bytes fastavro would write (Avro's binary encoding is fixed by the spec; the
decimal and timestamp arithmetic below is fastavro's, and tests compare both writers on every
FIN schema). It may give up on a valid record (a Mapping that is not a dict, an optional field
left out, a uuid in a non-canonical spelling, a float field, a union it does not know): the
strict path then decides, refuses and words its errors exactly as before. It must never write
a record either strict check would refuse.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Context, Decimal, InvalidOperation, Overflow
from typing import Any

from errors import FinError

Schema = Any  # a fastavro parsed schema node: str, list (union) or dict
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class _NotSure(FinError):  # noqa: N818 - a signal inside the fast writer, never raised out of it
    """The fast writer cannot vouch for this value; the strict path decides."""


_Write = Callable[[Any, bytearray], None]
_FastWriter = Callable[[Any], "bytes | None"]
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# Exact for any Decimal the writer accepts (at most `precision` digits), whatever the thread's
# decimal context is; overflow raises, which gives up.
_SCALE_CONTEXT = Context(prec=60, traps=[InvalidOperation, Overflow])
# parsed schema id -> (the schema, kept so its id cannot be reused; its writer)
_FAST_WRITERS: dict[int, tuple[Schema, _FastWriter]] = {}
_FAST_WRITERS_MAX = 1024


def fast_writer(parsed: Schema) -> _FastWriter:
    cached = _FAST_WRITERS.get(id(parsed))
    if cached is not None and cached[0] is parsed:
        return cached[1]
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    write = _compile_writer(parsed, named, frozenset())

    def fast_writer(record: Any) -> bytes | None:
        out = bytearray()
        try:
            write(record, out)
        except Exception:  # _NotSure, or e.g. a lone surrogate that cannot be UTF-8
            return None
        return bytes(out)

    if len(_FAST_WRITERS) >= _FAST_WRITERS_MAX:
        # A worker has a dozen schemas; only a caller parsing schemas over and over gets here.
        _FAST_WRITERS.clear()
    _FAST_WRITERS[id(parsed)] = (parsed, fast_writer)
    return fast_writer


def _varint(number: int) -> bytes:
    """Avro's zigzag varint of a long (the caller checked the range)."""
    zigzag = (number << 1) ^ (number >> 63)
    if zigzag < 0x80:
        return _SMALL_VARINTS[zigzag]
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((zigzag,)) for zigzag in range(0x80))
_LENGTHS = tuple(_varint(length) for length in range(64))  # the prefix of short text


def _write_null(value: Any, out: bytearray) -> None:
    if value is not None:
        raise _NotSure


def _write_boolean(value: Any, out: bytearray) -> None:
    if type(value) is not bool:
        raise _NotSure
    out += b"\x01" if value else b"\x00"


def _write_int(value: Any, out: bytearray) -> None:
    if type(value) is not int or not INT_MIN <= value <= INT_MAX:
        raise _NotSure
    out += _varint(value)


def _write_long(value: Any, out: bytearray) -> None:
    if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
        raise _NotSure
    out += _varint(value)


def _write_bytes(value: Any, out: bytearray) -> None:
    if type(value) is not bytes:
        raise _NotSure
    length = len(value)
    out += _LENGTHS[length] if length < 64 else _varint(length)
    out += value


def _write_string(value: Any, out: bytearray) -> None:
    if type(value) is not str:
        raise _NotSure
    encoded = value.encode()
    length = len(encoded)
    out += _LENGTHS[length] if length < 64 else _varint(length)
    out += encoded


def _write_uuid(value: Any, out: bytearray) -> None:
    if type(value) is not str or _CANONICAL_UUID.fullmatch(value) is None:
        raise _NotSure
    out += _LENGTHS[36]
    out += value.encode()


def _write_date(value: Any, out: bytearray) -> None:
    if type(value) is not dt.date:
        raise _NotSure
    out += _varint(value.toordinal() - _EPOCH_ORDINAL)


def _write_timestamp_millis(value: Any, out: bytearray) -> None:
    if type(value) is not dt.datetime or value.utcoffset() is None:
        raise _NotSure
    delta = value - _EPOCH  # any aware datetime (years 1..9999) is a long in milliseconds
    out += _varint((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)


def _decimal_writer(precision: int, scale: int) -> _Write:
    # A value with exactly `scale` places (every money amount FIN builds) has at most
    # `precision` digits exactly when its magnitude is below 10**(precision - scale): checked
    # that way, without building the digit tuple.
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def write_decimal(value: Any, out: bytearray) -> None:
        # Accepted exactly when fastavro's decimal preparation would not raise (too many digits,
        # too many places) and nonconformity sees a finite Decimal.
        if type(value) is not Decimal:
            raise _NotSure
        # same_quantum is False for NaN and infinities against a finite quantum.
        if not (value.same_quantum(quantum) and -limit < value < limit):
            _, digits, exponent = value.as_tuple()
            if not isinstance(exponent, int) or exponent < -scale or len(digits) > precision:
                raise _NotSure
        unscaled = int(value.scaleb(scale, _SCALE_CONTEXT))  # exact: at most `precision` digits
        # fastavro's length: from the magnitude, one spare bit for the sign (-0 writes as 0).
        payload = unscaled.to_bytes((abs(unscaled).bit_length() + 8) // 8, "big", signed=True)
        out += _LENGTHS[len(payload)]
        out += payload

    return write_decimal


_PRIMITIVE_WRITERS: Mapping[str, _Write] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_int,
    "long": _write_long,
    "string": _write_string,
    "bytes": _write_bytes,
}


def _give_up(value: Any, out: bytearray) -> None:
    raise _NotSure


def _compile_writer(schema: Schema, named: Mapping[str, Any], visiting: frozenset[str]) -> _Write:
    if isinstance(schema, list):
        return _union_writer(schema, named, visiting)
    if isinstance(schema, str):
        if schema in named:
            if schema in visiting:
                return _give_up  # a recursive type: left to the strict path
            return _compile_writer(named[schema], named, visiting | {schema})
        return _PRIMITIVE_WRITERS.get(schema, _give_up)
    kind = schema["type"]
    logical_type = schema.get("logicalType")
    if logical_type is not None:
        if logical_type == "decimal" and kind == "bytes":
            return _decimal_writer(int(schema["precision"]), int(schema.get("scale", 0)))
        if logical_type == "date" and kind == "int":
            return _write_date
        if logical_type == "timestamp-millis" and kind == "long":
            return _write_timestamp_millis
        if logical_type == "uuid" and kind == "string":
            return _write_uuid
        return _give_up
    if kind == "record":
        return _record_writer(schema, named, visiting | {str(schema["name"])})
    if kind == "array":
        return _array_writer(_compile_writer(schema["items"], named, visiting))
    if kind == "map":
        return _map_writer(_compile_writer(schema["values"], named, visiting))
    if kind == "enum":
        return _enum_writer(schema["symbols"])
    return _PRIMITIVE_WRITERS.get(kind, _give_up)  # float, double, fixed: the strict path


def _union_writer(
    branches: list[Any], named: Mapping[str, Any], visiting: frozenset[str]
) -> _Write:
    # Only null and one other type: fastavro writes the first branch that validates, and None
    # validates against null alone while nothing the other writer accepts is None, so the branch
    # chosen here is fastavro's. Other unions (several records, float and double, ...) follow
    # fastavro's rules of preference, which this writer does not copy.
    if len(branches) != 2 or "null" not in branches or branches[0] == branches[1]:
        return _give_up
    null_index = branches.index("null")
    other = branches[1 - null_index]
    if isinstance(other, list):
        return _give_up
    write_other = _compile_writer(other, named, visiting)
    if write_other is _write_null:
        return _give_up
    null_tag, other_tag = _varint(null_index), _varint(1 - null_index)

    def write_union(value: Any, out: bytearray) -> None:
        if value is None:
            out += null_tag
        else:
            out += other_tag
            write_other(value, out)

    return write_union


def _record_writer(
    schema: Mapping[str, Any], named: Mapping[str, Any], visiting: frozenset[str]
) -> _Write:
    fields = tuple(
        (str(field["name"]), _compile_writer(field["type"], named, visiting))
        for field in schema["fields"]
    )
    count = len(fields)

    def write_record(value: Any, out: bytearray) -> None:
        # Every field present and no other key: nothing unknown, no default to fill in (a
        # missing one raises KeyError, which gives up too).
        if type(value) is not dict or len(value) != count:
            raise _NotSure
        for name, write in fields:
            write(value[name], out)

    return write_record


def _array_writer(write_item: _Write) -> _Write:
    def write_array(value: Any, out: bytearray) -> None:
        if type(value) is not list:
            raise _NotSure
        if value:  # one block of all items, then the empty block that ends the array
            out += _varint(len(value))
            for item in value:
                write_item(item, out)
        out += b"\x00"

    return write_array


def _map_writer(write_value: _Write) -> _Write:
    def write_map(value: Any, out: bytearray) -> None:
        if type(value) is not dict:
            raise _NotSure
        if value:
            out += _varint(len(value))
            for key, item in value.items():
                _write_string(key, out)
                write_value(item, out)
        out += b"\x00"

    return write_map


def _enum_writer(symbols: list[str]) -> _Write:
    indexes: dict[str, bytes] = {}
    for index, symbol in enumerate(symbols):
        indexes.setdefault(symbol, _varint(index))  # fastavro writes the first position

    def write_enum(value: Any, out: bytearray) -> None:
        if type(value) is not str or value not in indexes:
            raise _NotSure
        out += indexes[value]

    return write_enum
