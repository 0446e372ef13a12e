"""Named rejection reasons, declared in precedence order (docs/design.md).

When a record has several faults, the earliest reason in this order is the one reported, so the
same record always gets the same reason whichever check happens to run first in the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    # Decoding (schemas/).
    WIRE_FORMAT_INVALID = "wire_format_invalid"
    SCHEMA_UNKNOWN = "schema_unknown"
    SCHEMA_SUBJECT_MISMATCH = "schema_subject_mismatch"
    PAYLOAD_UNDECODABLE = "payload_undecodable"
    # After decoding (ledger.validation).
    EVENT_TYPE_UNKNOWN = "event_type_unknown"
    EVENT_ID_INVALID = "event_id_invalid"
    # An identifier or a free-text field longer than the contract allows (ledger.validation):
    # such a value would end up in table keys, rows and journal lines, each a Kafka record with
    # a size limit, so it is refused at the door with its own name.
    FIELD_TOO_LONG = "field_too_long"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_EXCEEDS_PRECISION = "amount_exceeds_precision"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    PERIOD_INVALID = "period_invalid"
    REFERENCE_UNKNOWN = "reference_unknown"
    # Cross-field check over amounts that each passed the checks above: the payroll
    # department_lines must add up to total_gross_pay. Last of the validation group because it
    # is only meaningful once every line amount and department is individually valid.
    AMOUNT_LINES_MISMATCH = "amount_lines_mismatch"
    # In the posting agent.
    EVENT_ID_CONFLICT = "event_id_conflict"
    COMPENSATION_TARGET_UNKNOWN = "compensation_target_unknown"
    COMPENSATION_TARGET_NOT_REVERSIBLE = "compensation_target_not_reversible"
    # An event dated in a closed period, under closed_period_policy = "reject" (issue 16).
    PERIOD_CLOSED = "period_closed"
    # Anything else that made a stage raise on this record (a defect, or a record the producer
    # refused, e.g. too large to forward): dead-lettered so the stream goes on and nothing is
    # lost silently; the exception's type and message are in the detail.
    PROCESSING_ERROR = "processing_error"

    @property
    def order(self) -> int:
        """Position in the precedence order; lower wins."""
        return _ORDER[self]


_ORDER: dict[Reason, int] = {reason: index for index, reason in enumerate(Reason)}


def order(reason: Reason) -> int:
    """Position of ``reason`` in the precedence order; lower wins."""
    return _ORDER[reason]


def first(reasons: list[Reason]) -> Reason:
    """The reason that takes precedence among several faults of one record."""
    assert reasons, "first() needs at least one reason"
    return min(reasons, key=order)


@dataclass(frozen=True)
class Rejection:
    """A record FIN refuses, with the reason code and a detail naming the field and value."""

    reason: Reason
    detail: str
