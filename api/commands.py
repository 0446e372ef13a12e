"""Commands: a REST request becomes one Avro record on ``fin.commands``, nothing else.

A command endpoint never writes a table. It parses the request into the record of the event
contract (docs/design.md), validates it with ``ledger.validation`` exactly as the ingest agent
will, so a client learns about a rejection at once and under the same name, and publishes it,
keyed by the entity it is about, in the Confluent wire format. 202 means Kafka has the record
(acks=all); its effects appear in the tables once the worker has processed it.

Idempotency: the record's ``event_id`` is the client's ``Idempotency-Key`` when it sends one
(a UUID); without one, a payment's id comes from its natural key (``natural_command_id``: the
vendor or customer and the ``payment_id``), so the same payment sent twice has one id; any
other command gets a new uuid4. A retry must produce the *same* record for the posting agent to
see a duplicate instead of an ``event_id_conflict``, but a command's timestamp is "now". So each
worker remembers, for a day and for a bounded number of keys, the record it built for a key
(given or natural) and re-publishes those very bytes on a retry; a key reused for a different
request is refused with 409. A retry that lands on another worker (or after a restart) is a new
record with the same id: the posting agent refuses it as ``event_id_conflict`` — never a second
payment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import accumulate
from typing import Any, Final

import orjson
from faust.types import RecordMetadata, TopicT

from api import params
from api.http import JSON_DEPTH_MAX, BadParameterError, to_jsonable
from errors import FinError
from ledger.chart import ChartOfAccounts
from ledger.contract import CUSTOMER_PAYMENT_RECEIVED, VENDOR_PAYMENT_MADE
from ledger.events import DEFAULT_CURRENCY
from ledger.money import money
from ledger.rejections import Rejection
from ledger.validation import validate
from schemas.catalog import key_for
from schemas.codec import Encoder, RecordInvalidError
from settings import COMMANDS_TOPIC

COMMAND_SOURCE: Final = "fin-api"
IDEMPOTENCY_KEYS_MAX: Final = 10_000
IDEMPOTENCY_TTL_S: Final = 24 * 3600.0
PUBLISH_TIMEOUT_S: Final = 15.0

# A JSON string, escapes included; an unterminated one runs to the end (so no quote is tried
# twice and the scan stays linear). What is left outside strings holds the brackets that nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _body_fields(
    body: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    """Refuse unknown fields (a typo such as ``ammount`` must not be silently ignored) and
    missing required ones, naming the field."""
    for name in body:
        if name not in required and name not in optional:
            allowed = ", ".join((*required, *optional))
            raise BadParameterError(name, f"is not a field of this command (fields: {allowed})")
    for name in required:
        if name not in body:
            raise BadParameterError(name, "is required")


def budget_set_data(
    department: str, category: str, period: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    _body_fields(body, ("amount",))
    return {
        "department_id": department,
        "category": category,
        "period": period,
        "amount": params.money_text(body["amount"], "amount"),
    }


def department_changed_data(
    department: str, action: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """A department registered (``name`` optional), renamed (``name`` required) or retired;
    ``requested_by`` (who) and ``reason`` (why) go into the audit trail."""
    required = ("name", "requested_by") if action == "RENAME" else ("requested_by",)
    optional = ("reason",) if action == "RENAME" else ("name", "reason")
    if action == "RETIRE":
        optional = ("reason",)
    _body_fields(body, required, optional)
    texts = {}
    for name in ("name", "requested_by", "reason"):
        value = body.get(name, "")
        if not isinstance(value, str):
            raise BadParameterError(name, "must be text")
        texts[name] = value
    if not texts["requested_by"].strip():
        raise BadParameterError("requested_by", "must name who asks for the change")
    return {
        "department_id": params.entity_id(department, "dept"),
        "action": action,
        **texts,
    }


def month_text(period: str) -> str:
    """A month such as 2024-03 (the unit that is closed), or BadParameterError."""
    text = params.period(period)
    if "Q" in text:
        raise BadParameterError(
            "period", f"{text!r}: close or re-open a month; a quarter closes with its last month"
        )
    return text


def period_changed_data(period: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A month closed or re-opened, with who (``requested_by``) and why (``reason``)."""
    _body_fields(body, ("requested_by",), ("reason",))
    texts = {}
    for name in ("requested_by", "reason"):
        value = body.get(name, "")
        if not isinstance(value, str):
            raise BadParameterError(name, "must be text")
        texts[name] = value
    if not texts["requested_by"].strip():
        raise BadParameterError("requested_by", "must name who closes or re-opens the period")
    return {"period": month_text(period), "action": action, **texts}


def credit_limit_set_data(customer: str, body: Mapping[str, Any]) -> dict[str, Any]:
    _body_fields(body, ("credit_limit",))
    return {
        "customer_id": customer,
        "credit_limit": params.money_text(body["credit_limit"], "credit_limit"),
    }


def vendor_payment_data(vendor: str, body: Mapping[str, Any]) -> dict[str, Any]:
    _body_fields(body, ("payment_id", "amount"), ("business_date",))
    return {
        "vendor_id": vendor,
        "payment_id": params.entity_id(body["payment_id"], "payment_id"),
        "amount": params.money_text(body["amount"], "amount"),
        "currency": DEFAULT_CURRENCY,
        "business_date": params.optional_date(body.get("business_date"), "business_date"),
    }


def customer_payment_data(customer: str, body: Mapping[str, Any]) -> dict[str, Any]:
    _body_fields(body, ("payment_id", "amount"), ("business_date",))
    return {
        "customer_id": customer,
        "payment_id": params.entity_id(body["payment_id"], "payment_id"),
        "amount": params.money_text(body["amount"], "amount"),
        "currency": DEFAULT_CURRENCY,
        "business_date": params.optional_date(body.get("business_date"), "business_date"),
    }


def compensation_data(body: Mapping[str, Any]) -> dict[str, Any]:
    _body_fields(body, ("target_event_id", "reason"))
    target = body["target_event_id"]
    if not isinstance(target, str):
        raise BadParameterError("target_event_id", "must be a string (the event's UUID)")
    # Whether it is a canonical UUID is validation's to say (event_id_invalid).
    return {
        "target_event_id": target,
        "reason": params.bounded_text(body["reason"], "reason", params.REASON_LENGTH_MAX),
    }


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object; numbers with a fraction become ``Decimal``, never float (and an amount
    sent as a number is refused anyway: money travels as text)."""
    if not body.strip():
        raise BadParameterError("body", "a JSON object is required")
    if json_depth(body) > JSON_DEPTH_MAX:
        # Refused before parsing: Python's parser would fail with RecursionError (a 500).
        raise BadParameterError(
            "body", f"JSON nested deeper than {JSON_DEPTH_MAX} levels of arrays and objects"
        )
    try:
        parsed = json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadParameterError("body", f"not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BadParameterError("body", "must be a JSON object")
    return parsed


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body`` (1 for ``{}``), brackets in strings aside.

    Linear in the body's size and with no recursion, so any bytes may be measured; brackets
    that do not match are the parser's business.
    """
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    return max(accumulate(array("b", brackets.translate(_BRACKET_STEPS))), default=0)


def _refuse_constant(name: str) -> Any:
    # json.loads takes NaN and Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not JSON")


def command_record(
    event_type: str, data: Mapping[str, Any], *, event_id: str, now: datetime
) -> dict[str, Any]:
    """The Avro record dict of a command, as ``schemas.codec`` encodes and decodes it."""
    assert now.tzinfo is not None
    return {
        "event_type": event_type,
        "event_id": event_id,
        # Milliseconds, as Avro timestamp-millis keeps it, so the record validated here is the
        # record the worker decodes.
        "timestamp": now.replace(microsecond=now.microsecond // 1000 * 1000).astimezone(UTC),
        "source": COMMAND_SOURCE,
        "data": dict(data),
    }


def request_digest(event_type: str, data: Mapping[str, Any]) -> str:
    """What a retry must repeat: the command and its data (not the JSON spelling)."""
    canonical = orjson.dumps(
        {"event_type": event_type, "data": to_jsonable(data)}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class PreparedCommand:
    """A validated command, encoded and keyed, ready to publish (or to publish again)."""

    command_id: str
    event_type: str
    digest: str
    key: bytes
    value: bytes


class IdempotencyKeyReusedError(FinError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key} was used for a different request")
        self.key = key


class IdempotencyMemory:
    """Commands built for an Idempotency-Key, bounded in count and age (oldest go first)."""

    def __init__(
        self,
        keys_max: int = IDEMPOTENCY_KEYS_MAX,
        ttl_s: float = IDEMPOTENCY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert keys_max > 0 and ttl_s > 0
        self._keys_max = keys_max
        self._ttl_s = ttl_s
        self._clock = clock
        self._commands: OrderedDict[str, tuple[float, PreparedCommand]] = OrderedDict()

    def recall(self, key: str, digest: str) -> PreparedCommand | None:
        """The command built for ``key``; IdempotencyKeyReusedError if it was another one."""
        self._expire()
        remembered = self._commands.get(key)
        if remembered is None:
            return None
        command = remembered[1]
        if command.digest != digest:
            raise IdempotencyKeyReusedError(key)
        return command

    def remember(self, key: str, command: PreparedCommand) -> None:
        self._commands[key] = (self._clock(), command)
        self._commands.move_to_end(key)
        while len(self._commands) > self._keys_max:
            self._commands.popitem(last=False)

    def _expire(self) -> None:
        oldest_kept = self._clock() - self._ttl_s
        while self._commands:
            first_key, (remembered_at, _) = next(iter(self._commands.items()))
            if remembered_at >= oldest_kept:
                return
            del self._commands[first_key]


class CommandRejectedError(FinError):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.reason}: {rejection.detail}")
        self.rejection = rejection


def prepare(
    event_type: str,
    data: Mapping[str, Any],
    *,
    event_id: str,
    now: datetime,
    chart: ChartOfAccounts,
    encoder: Encoder,
) -> PreparedCommand:
    """Validate and encode; CommandRejectedError with the ledger's named reason if invalid."""
    record = command_record(event_type, data, event_id=event_id, now=now)
    outcome = validate(record, topic=COMMANDS_TOPIC, received_at=now, chart=chart)
    if isinstance(outcome, Rejection):
        raise CommandRejectedError(outcome)
    # Validation has checked every amount fits decimal(18, 2); 1.500 becomes 1.50 exactly,
    # the scale Avro writes.
    record["data"] = {
        name: money(item) if isinstance(item, Decimal) else item
        for name, item in record["data"].items()
    }
    try:
        value = encoder.encode(record)
    except RecordInvalidError as exc:
        # Validation passed but Avro refuses (text that is not UTF-8 encodable, say).
        raise BadParameterError("body", f"cannot be encoded: {exc}") from exc
    return PreparedCommand(
        command_id=event_id,
        event_type=event_type,
        digest=request_digest(event_type, data),
        key=key_for(record).encode("utf-8"),
        value=value,
    )


def new_command_id() -> str:
    return str(uuid.uuid4())


# The namespace of payment ids derived from their natural key (README, "For upstream teams").
# Fixed for good: changing it would make every resend after the change a second payment.
NATURAL_KEY_NAMESPACE: Final = uuid.UUID("8ddcfdc8-b3fc-4817-9d51-8eeb12b5cd3b")
# The field naming the counterparty, per command with a natural key (with ``payment_id``).
NATURAL_KEY_PARTY: Final[Mapping[str, str]] = {
    VENDOR_PAYMENT_MADE: "vendor_id",
    CUSTOMER_PAYMENT_RECEIVED: "customer_id",
}


def natural_command_id(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The event id of a command sent without an Idempotency-Key, if it has a natural key.

    A payment is one per (counterparty, payment_id): uuid5 of ``<event type>/<party
    id>/<payment_id>`` (ids have no ``/``, so no two keys share a name), so the same payment
    sent twice is a duplicate and another payment under the same payment_id is refused.
    """
    party = NATURAL_KEY_PARTY.get(event_type)
    if party is None:
        return None
    name = f"{event_type}/{data[party]}/{data['payment_id']}"
    return str(uuid.uuid5(NATURAL_KEY_NAMESPACE, name))


async def publish(
    topic: TopicT, command: PreparedCommand, timeout_s: float = PUBLISH_TIMEOUT_S
) -> tuple[int, int]:
    """Send and wait until Kafka has the record (the producer uses acks=all); its position.

    TimeoutError (asyncio's) when Kafka does not acknowledge in time.
    """

    async def send_and_wait() -> RecordMetadata:
        # force: a web request is never inside a stream event, but never attach to one anyway.
        pending = await topic.send(key=command.key, value=command.value, force=True)
        return await pending

    metadata = await asyncio.wait_for(send_and_wait(), timeout_s)
    return metadata.partition, metadata.offset
