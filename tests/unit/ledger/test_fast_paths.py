"""The fast money checks, period names, ids and delta JSON answer exactly as the originals.

Each ``reference_*`` below is the original definition, copied verbatim; the fast one must give
the same result, or raise the same exception, for every input.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import deltas
from ledger.chain import ChainLink
from ledger.entries import (
    ENTRY_NAMESPACE,
    JournalEntry,
    JournalLine,
    SourceRef,
    credit_line,
    debit_line,
)
from ledger.idempotency import ProcessedRecord
from ledger.ids import uuid5_text
from ledger.money import CENT, MONEY_SCALE, fits_precision, is_money, money
from ledger.periods import month_of, month_period, quarter_of, quarter_period
from ledger.reducers import ALERT_NAMESPACE
from ledger.rules import Posting
from ledger.validation import Context as ValidationContext
from ledger.validation import _uuid_fault

_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
_MAGNITUDE_LIMIT = Decimal(10) ** 16


def reference_money(value):
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"money must be Decimal, int or str, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {value!r}") from exc
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"amount must be finite, got {value!r}")
    try:
        return number.quantize(CENT, context=_CONTEXT)
    except InvalidOperation as exc:
        raise ValueError(f"amount too large to represent: {value!r}") from exc


def reference_fits_precision(amount):
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    if exponent < -MONEY_SCALE:
        digits = amount.as_tuple().digits
        excess_places = -MONEY_SCALE - exponent
        if any(digits[-excess_places:]):
            return False
    return abs(amount) < _MAGNITUDE_LIMIT


def reference_is_money(amount):
    return amount.is_finite() and amount.as_tuple().exponent == -MONEY_SCALE


def outcome(function, value):
    try:
        result = function(value)
    except Exception as exc:
        return ("error", type(exc), str(exc))
    # A Decimal's value and its exact spelling (exponent, sign of zero) must both agree.
    return ("value", result, str(result), type(result))


class Money(Decimal):
    pass


decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(places=2, allow_nan=False, allow_infinity=False),
    st.integers(-(10**70), 10**70).map(lambda unscaled: Decimal(unscaled).scaleb(-2)),
    st.integers(-(10**20), 10**20).map(lambda unscaled: Decimal(unscaled).scaleb(-3)),
    st.sampled_from(
        [Decimal("sNaN"), Decimal("-0.00"), Decimal("9999999999999999.99"), Money("1.50")]
    ),
)


@settings(max_examples=1000, deadline=None)
@given(decimals)
def test_the_money_checks_answer_as_the_originals(amount):
    assert outcome(money, amount) == outcome(reference_money, amount)
    assert outcome(is_money, amount) == outcome(reference_is_money, amount)
    assert outcome(fits_precision, amount) == outcome(reference_fits_precision, amount)


class Text(str):
    pass


@settings(max_examples=500)
@given(
    st.one_of(
        st.integers(),
        st.text(max_size=12),
        st.floats(),
        st.booleans(),
        decimals.map(str),  # what a table row's JSON holds
        decimals.map(lambda amount: f" {amount}\n"),
        decimals.map(Text),
    )
)
def test_money_of_other_types_answers_as_before(value):
    assert outcome(money, value) == outcome(reference_money, value)


@given(st.dates())
def test_period_names_are_the_periods_texts(day: date):
    assert month_of(day) == str(month_period(day))
    assert quarter_of(day) == str(quarter_period(day))


@settings(max_examples=300)
@given(st.sampled_from([ENTRY_NAMESPACE, ALERT_NAMESPACE, uuid.NAMESPACE_DNS]), st.text())
def test_uuid5_text_is_uuid5_as_text(namespace, name):
    assert outcome(lambda text: uuid5_text(namespace, text), name) == outcome(
        lambda text: str(uuid.uuid5(namespace, text)), name
    )


def reference_uuid_fault(field, value):
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return f"{field} {value!r} is not a UUID"
    if str(parsed) != value:
        return f"{field} {value!r} is not in canonical lower-case UUID form"
    if parsed.int == 0:
        return f"{field} is the nil UUID, which a producer sends by mistake, never as an id"
    return None


ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda value: str(value).upper()),
    st.uuids().map(lambda value: value.hex),
    st.uuids().map(lambda value: "{" + str(value) + "}"),
    st.uuids().map(lambda value: "urn:uuid:" + str(value)),
    st.sampled_from(["00000000-0000-0000-0000-000000000000", "", "not-a-uuid"]),
    st.text(alphabet="0123456789abcdefABCDEF-{}", max_size=40),
)


@settings(max_examples=500)
@given(ids)
def test_an_event_id_is_judged_as_before(value):
    assert outcome(lambda text: _uuid_fault("event_id", text), value) == outcome(
        lambda text: reference_uuid_fault("event_id", text), value
    )


def reference_encode(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [reference_encode(item) for item in value]
    return value


@given(
    st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(max_size=5),
            st.decimals(),
            st.dates(),
            st.datetimes(),
            st.sampled_from([Money("2.50")]),
        ),
        lambda children: st.lists(children, max_size=3).map(tuple),
        max_leaves=8,
    )
)
def test_delta_values_are_encoded_as_before(value):
    assert outcome(deltas._encode, value) == outcome(reference_encode, value)


# --- frozen dataclasses with their constructors written out ("Constructors", ledger/entries.py)

WRITTEN_OUT_CONSTRUCTORS: tuple[tuple[type, tuple[Any, ...]], ...] = (
    (SourceRef, ("e", "t", "hr.events", 1, 2)),
    (JournalLine, ("6000", Decimal("1.00"), Decimal("0.00"), (("d", "x"),))),
    (
        JournalEntry,
        (
            "id",
            SourceRef("e", "t", "hr.events", 1, 2),
            "v1",
            date(2024, 3, 5),
            "2024-03",
            "2024-Q1",
            "USD",
            (debit_line("6000", Decimal("1.00")), credit_line("2000", Decimal("1.00"))),
            "other",
            "2024-04",
            ChainLink(0, 1, "a" * 64, "b" * 64),
        ),
    ),
    (deltas.PeriodPosting, ("2024-03", (("6000", Decimal("1.00"), Decimal("0.00")),))),
    (Posting, (None, (deltas.PeriodLate("2024-03"),))),
    (ValidationContext, ("hr.events", datetime(2024, 3, 5, tzinfo=UTC), "the chart", False)),
    (
        ProcessedRecord,
        (
            "f",
            SourceRef("e", "t", "hr.events", 1, 2),
            3,
            {"deltas": []},
            "c",
            (("t", 1, 2, 3),),
            "r",
        ),
    ),
)


@pytest.mark.parametrize(("cls", "values"), WRITTEN_OUT_CONSTRUCTORS)
def test_a_written_out_constructor_takes_and_sets_the_fields(
    cls: Any, values: tuple[Any, ...]
) -> None:
    declared = dataclasses.fields(cls)
    parameters = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in declared]
    for parameter, declared_field in zip(parameters, declared, strict=True):
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert declared_field.default_factory is dataclasses.MISSING
        expected = (
            inspect.Parameter.empty
            if declared_field.default is dataclasses.MISSING
            else declared_field.default
        )
        assert parameter.default == expected
    built = cls(*values)
    assert tuple(getattr(built, f.name) for f in declared) == values
    assert set(vars(built)) == {f.name for f in declared}
    assert dataclasses.replace(built) == built
    if cls is not ProcessedRecord:  # its posting is a dict: hashed neither before nor now
        assert hash(built) == hash(dataclasses.replace(built))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(declared[0].name, None)


class MoneySubclass(Decimal):
    pass


@pytest.mark.parametrize(
    "posting",
    [
        deltas.PeriodPosting("2024-03", (("6000", Decimal("1.00"), Decimal("0.00")),)),
        deltas.PeriodPosting("2024-Q1", ()),
        deltas.PeriodPosting("2024-03", [("6000", Decimal("-1.00"), Decimal("2.50"))]),  # type: ignore[arg-type]
        deltas.PeriodPosting("2024-03", (["6000", Decimal("1.00"), Decimal("0.00")],)),  # type: ignore[arg-type]
        deltas.PeriodPosting("2024-03", ((6000, Decimal("1.00"), Decimal("0.00")),)),  # type: ignore[arg-type]
        deltas.PeriodPosting("2024-03", (("6000", MoneySubclass("1.00"), Decimal("0.00")),)),
    ],
)
def test_a_period_posting_is_encoded_as_the_general_walk_encodes_it(posting) -> None:
    general = {"type": "PeriodPosting", "period": posting.period}
    general["lines"] = reference_encode(posting.lines)
    assert deltas.to_json_dict(posting) == general
