"""The shapes of request parameters, as patterns shared by the handlers and the OpenAPI document.

Each pattern here is used twice: by the parser that refuses a malformed parameter with a 400
naming it, and by ``api.openapi`` in the published schema, so a client (or a fuzzer) that
follows the document is never refused for the shape of a value, and one that does not is.
Patterns are written for both Python's ``re`` and ECMA-262 (JSON Schema): plain classes only.

Semantic rules that no pattern can express (a business date within a window around today, a
known department on a command) stay with ``ledger.validation`` and come back as its named
rejections.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from api.http import BadParameterError
from ledger.money import fits_precision
from ledger.periods import parse_period
from ledger.rejections import Reason

ENTITY_ID_LENGTH_MAX: Final = 128
# Ids of customers, vendors, payments...: a letter or digit first, so no id is blank, starts a
# dot segment or needs escaping in a URL path.
ENTITY_ID_PATTERN: Final = rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{ENTITY_ID_LENGTH_MAX - 1}}}$"
UUID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
# A month (2024-03) or a quarter (2024-Q1) of a year 0001..9999, ASCII digits only: the text is
# a table key, and Python's \d would also take other scripts' digits for the same period.
PERIOD_PATTERN: Final = (
    r"^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(?:0[1-9]|1[0-2]|Q[1-4])$"
)
DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Money as decimal text: at most 16 integer digits and 2 significant decimals (Avro
# decimal(18, 2)), no sign, exponent or leading zero; trailing zeros carry no value.
_POSITIVE_MONEY = r"0\.(?:0[1-9]|[1-9][0-9]?)0*|[1-9][0-9]{0,15}(?:\.[0-9]{1,2}0*)?"
POSITIVE_MONEY_PATTERN: Final = rf"^(?:{_POSITIVE_MONEY})$"
NON_NEGATIVE_MONEY_PATTERN: Final = rf"^(?:0(?:\.0+)?|{_POSITIVE_MONEY})$"
# What any amount must look like before ledger validation judges its value: a plain decimal
# numeral. Sign and precision are left to validation, which names amount_must_be_positive and
# amount_exceeds_precision.
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
REASON_LENGTH_MAX: Final = 1000

_ENTITY_ID = re.compile(ENTITY_ID_PATTERN)
_UUID = re.compile(UUID_PATTERN)
_PERIOD = re.compile(PERIOD_PATTERN)
_DATE = re.compile(DATE_PATTERN)
_NON_NEGATIVE_MONEY = re.compile(NON_NEGATIVE_MONEY_PATTERN)


def entity_id(raw: Any, name: str) -> str:
    if not isinstance(raw, str):
        raise BadParameterError(name, f"must be a string, not {_json_kind(raw)}")
    if not _ENTITY_ID.fullmatch(raw):
        raise BadParameterError(
            name,
            f"must be 1 to {ENTITY_ID_LENGTH_MAX} letters, digits or . _ : - starting with a "
            f"letter or digit, got {raw[: ENTITY_ID_LENGTH_MAX + 1]!r}",
        )
    return raw


def uuid_text(raw: Any, name: str, *, nil_allowed: bool = False) -> str:
    """A canonical (lower-case) UUID; the nil UUID only where ``nil_allowed``."""
    if (
        not isinstance(raw, str)
        or not _UUID.fullmatch(raw)
        or (raw == NIL_UUID and not nil_allowed)
    ):
        shown = repr(raw[:40]) if isinstance(raw, str) else _json_kind(raw)
        nil = "" if nil_allowed else " other than the nil UUID"
        raise BadParameterError(
            name,
            f"must be a lower-case UUID{nil} such as 5a3c1e6e-0b1f-4c55-9d7a-000000000001, "
            f"got {shown}",
        )
    return raw


def period(raw: str | None, name: str = "period") -> str:
    if raw is None or raw == "":
        raise BadParameterError(name, "is required, e.g. 2024-Q1 or 2024-03")
    if not _PERIOD.fullmatch(raw):
        raise BadParameterError(
            name,
            f"must be a month (2024-03) or a quarter (2024-Q1), got {raw[:40]!r}",
            Reason.PERIOD_INVALID,
        )
    parse_period(raw)  # the pattern admits only what the ledger parses; assert it stays so
    return raw


def iso_date(raw: str, name: str) -> date:
    if _DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise BadParameterError(name, f"must be a date YYYY-MM-DD, got {raw[:40]!r}")


def optional_date(raw: Any, name: str) -> date | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadParameterError(name, f"must be a date string or null, not {_json_kind(raw)}")
    return iso_date(raw, name)


def money_text(raw: Any, name: str) -> Decimal:
    """An amount sent as decimal text; a JSON number is refused (it may have been a float).

    Negative and over-precise values pass here on purpose: validation names them.
    """
    if not isinstance(raw, str):
        raise BadParameterError(
            name, f'must be a decimal string such as "500000.00", not {_json_kind(raw)}'
        )
    if not _DECIMAL_TEXT.fullmatch(raw):
        raise BadParameterError(
            name, f'must be a plain decimal number such as "500000.00", got {raw[:40]!r}'
        )
    amount = Decimal(raw)
    if amount.is_zero() and amount.is_signed():
        raise BadParameterError(name, f"negative zero is not an amount: {raw!r}")
    return amount


def non_negative_money_query(raw: str | None, name: str) -> Decimal | None:
    """An optional non-negative amount in a query string, e.g. ``amount=25000.00``."""
    if raw is None:
        return None
    if not _NON_NEGATIVE_MONEY.fullmatch(raw):
        raise BadParameterError(
            name,
            "must be a non-negative amount with at most 16 integer digits and 2 decimals, "
            f"e.g. 25000.00; got {raw[:40]!r}",
        )
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:  # the pattern admits only decimals; defensive
        raise BadParameterError(name, f"not a decimal number: {raw[:40]!r}") from exc
    assert fits_precision(amount), raw
    return amount


def bounded_text(raw: Any, name: str, length_max: int) -> str:
    if not isinstance(raw, str):
        raise BadParameterError(name, f"must be a string, not {_json_kind(raw)}")
    if not 1 <= len(raw) <= length_max:
        raise BadParameterError(name, f"must hold 1 to {length_max} characters")
    if not raw.strip():
        raise BadParameterError(name, "must not be blank")
    return raw


def single_query_value(query: Mapping[str, str], name: str) -> str | None:
    """The one value of a query parameter; given twice is ambiguous and refused."""
    getall = getattr(query, "getall", None)
    if getall is not None:
        values = list(getall(name, []))
    else:
        values = [query[name]] if name in query else []
    if len(values) > 1:
        raise BadParameterError(name, "is given more than once")
    return values[0] if values else None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a JSON number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
