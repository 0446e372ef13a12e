"""The JSON form of a decoded record (what the event-id fingerprint is computed on), the
record's envelope (``envelope``, also what the demo and the tests build records with) and an
event's decoded-Avro record again (``to_record``, the inverse of ``ledger.events.parse_event``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.event_fields import Layout
from ledger.event_types import Event

# --- JSON form of a decoded record ---------------------------------------------------------


def to_json_record(record: Any) -> Any:
    """The JSON-safe form of a decoded record: Decimal as its text, dates as ISO text, the
    timestamp as ISO text in UTC, UUIDs as text; ``parse_event`` reads this form back.

    ``ledger.idempotency.fingerprint`` is computed on this form, so the fingerprint is the same
    before and after a JSON round trip (``fin.internal.by-event-id`` carries Avro bytes, not
    this form).
    Floats and bytes are refused: neither belongs in a decoded FIN record.
    """
    # A decoded record holds only these exact types; dispatching on the type is several times
    # faster than the chain of isinstance checks (Mapping is an ABC) of the general rules, which
    # still decide everything else (subclasses, other mappings, what is refused) the same way.
    kind = type(record)
    if kind is dict:
        return _dict_to_json(record)
    if kind is str or kind is int or kind is bool or record is None:
        return record
    if kind is Decimal:
        return str(record)
    if kind is datetime:
        return _timestamp_to_json(record)
    if kind is date:
        return record.isoformat()
    if kind is list or kind is tuple:
        return [to_json_record(item) for item in record]
    return _to_json_record_general(record)


def _dict_to_json(record: dict[Any, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for key, value in record.items():
        if type(key) is not str:
            general: dict[str, Any] = _to_json_record_general(record)  # names the key as before
            return general
        kind = type(value)
        if kind is str or value is None:
            encoded[key] = value
        elif kind is dict:
            encoded[key] = _dict_to_json(value)
        else:
            encoded[key] = to_json_record(value)
    return encoded


def _timestamp_to_json(moment: datetime) -> str:
    if moment.tzinfo is UTC:
        return moment.isoformat()  # what fastavro decodes: already in UTC
    if moment.tzinfo is None:
        raise TypeError(f"timestamp without time zone: {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat()


def _to_json_record_general(record: Any) -> Any:
    if isinstance(record, Mapping):
        encoded: dict[str, Any] = {}
        for key, value in record.items():
            if not isinstance(key, str):
                raise TypeError(f"record keys must be text, got {key!r}")
            encoded[key] = to_json_record(value)
        return encoded
    if isinstance(record, list | tuple):
        return [to_json_record(item) for item in record]
    if isinstance(record, Decimal):
        return str(record)
    if isinstance(record, datetime):
        return _timestamp_to_json(record)
    if isinstance(record, date):
        return record.isoformat()
    if isinstance(record, UUID):
        return str(record)
    if record is None or isinstance(record, str | int):
        # bool is an int and passes unchanged, which JSON represents exactly.
        return record
    raise TypeError(f"{type(record).__name__} has no place in a decoded FIN record: {record!r}")


# --- back to a record ----------------------------------------------------------------------


def envelope(
    event_type: str, event_id: str, timestamp: datetime, data: dict[str, Any], source: str = ""
) -> dict[str, Any]:
    """A decoded record of the event contract: the envelope around ``data``."""
    return {
        "event_type": event_type,
        "event_id": event_id,
        "timestamp": timestamp,
        "source": source,
        "data": data,
    }


def to_record(event: Event) -> dict[str, Any]:
    """The decoded-Avro form of ``event`` (the inverse of :func:`parse_event`).

    Used by producers and tests; values keep their Python types (Decimal, date, datetime).
    """
    return envelope(
        event.event_type, event.event_id, event.timestamp, _data(event, event.layout), event.source
    )


def _data(record: object, layout: Layout) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for item in layout.fields:
        value = getattr(record, item.name)
        if item.nested is not None:
            value = [_data(line, item.nested) for line in value]
        data[item.wire] = value
    return data
