"""The parameter patterns published in the OpenAPI document and the parsers agree exactly.

A value matching a documented pattern must never be refused for its shape, and a value that
does not match must never be accepted: that is what lets a client (or a fuzzer) trust the
document. Properties run the real parser plus ledger validation against Hypothesis strings.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from api import params
from api.commands import CommandRejectedError, customer_payment_data, prepare
from api.http import BadParameterError
from ledger.contract import CUSTOMER_PAYMENT_RECEIVED
from ledger.rejections import Reason
from tests.unit.api.fixtures import chart, encoder

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHART = chart()
ENCODER = encoder()
MONEYISH = st.one_of(
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,5})?", fullmatch=True),
    st.text(alphabet="0123456789.-+eE _", max_size=12),
    st.text(max_size=8),
)


def payment_is_accepted(amount: str) -> bool:
    """The whole path of POST /ar/customers/{c}/payments for this amount text."""
    try:
        data = customer_payment_data("CUS-001", {"payment_id": "PAY-1", "amount": amount})
        prepare(
            CUSTOMER_PAYMENT_RECEIVED,
            data,
            event_id="5a3c1e6e-0b1f-4c55-9d7a-000000000042",
            now=NOW,
            chart=CHART,
            encoder=ENCODER,
        )
    except (BadParameterError, CommandRejectedError):
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.from_regex(params.POSITIVE_MONEY_PATTERN, fullmatch=True))
def test_every_amount_matching_the_positive_money_pattern_is_accepted(amount: str) -> None:
    assert payment_is_accepted(amount)


@settings(max_examples=300, deadline=None)
@given(MONEYISH)
@example("0")
@example("0.00")
@example("-0")
@example("1.005")
@example("1.500")
@example("007")
@example("10000000000000000")
@example("9999999999999999.99")
@example("1e3")
@example(" 1")
def test_an_amount_is_accepted_exactly_when_it_matches_the_positive_money_pattern(
    amount: str,
) -> None:
    matches = re.fullmatch(params.POSITIVE_MONEY_PATTERN, amount) is not None

    assert payment_is_accepted(amount) == matches


@settings(max_examples=300, deadline=None)
@given(MONEYISH)
@example("0.000")
@example("-0.00")
def test_a_query_amount_is_accepted_exactly_when_it_matches_the_non_negative_pattern(
    amount: str,
) -> None:
    matches = re.fullmatch(params.NON_NEGATIVE_MONEY_PATTERN, amount) is not None
    try:
        parsed = params.non_negative_money_query(amount, "amount")
    except BadParameterError:
        parsed = None

    assert (parsed is not None) == matches


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.from_regex(r"[0-9]{4}-(Q[0-9]|[0-9]{2})", fullmatch=True),
        st.text(alphabet="0123456789-Q٢", max_size=8),
    )
)
@example("0000-01")
@example("2024-Q1")
@example("٢٠٢٤-Q1")
def test_a_period_is_accepted_exactly_when_it_matches_the_period_pattern(text: str) -> None:
    matches = re.fullmatch(params.PERIOD_PATTERN, text) is not None
    try:
        params.period(text)
        accepted = True
    except BadParameterError as error:
        accepted = False
        assert error.reason is Reason.PERIOD_INVALID or text == ""

    assert accepted == matches


def test_a_period_written_with_other_scripts_digits_is_refused_as_period_invalid() -> None:
    with pytest.raises(BadParameterError) as refused:
        params.period("٢٠٢٤-Q1")

    assert refused.value.reason is Reason.PERIOD_INVALID
    assert refused.value.name == "period"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=140))
@example("CUS-001")
@example("a" * 128)
@example("a" * 129)
@example(".hidden")
@example("../x")
def test_an_entity_id_is_accepted_exactly_when_it_matches_the_entity_pattern(text: str) -> None:
    matches = re.fullmatch(params.ENTITY_ID_PATTERN, text) is not None
    try:
        params.entity_id(text, "customer")
        accepted = True
    except BadParameterError:
        accepted = False

    assert accepted == matches


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("5a3c1e6e-0b1f-4c55-9d7a-000000000001", True),
        ("5A3C1E6E-0B1F-4C55-9D7A-000000000001", False),
        ("{5a3c1e6e-0b1f-4c55-9d7a-000000000001}", False),
        ("5a3c1e6e0b1f4c559d7a000000000001", False),
        (params.NIL_UUID, False),
        ("", False),
    ],
)
def test_only_canonical_non_nil_uuids_are_taken_as_idempotency_keys(
    text: str, accepted: bool
) -> None:
    try:
        params.uuid_text(text, "Idempotency-Key")
        parsed = True
    except BadParameterError as error:
        parsed = False
        assert error.name == "Idempotency-Key"

    assert parsed == accepted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-15", date(2024, 3, 15)),
        ("20240315", None),
        ("2024-02-30", None),
        ("0000-01-01", None),
        ("2024-3-15", None),
        ("٢٠٢٤-03-15", None),
    ],
)
def test_dates_are_accepted_only_as_yyyy_mm_dd(text: str, expected: date | None) -> None:
    try:
        parsed: date | None = params.iso_date(text, "as_of")
    except BadParameterError:
        parsed = None

    assert parsed == expected


@pytest.mark.parametrize("value", [1, 1.5, Decimal("1.5"), None, True, ["1"], {"a": 1}])
def test_an_amount_that_is_not_a_string_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(BadParameterError) as refused:
        params.money_text(value, "credit_limit")

    assert refused.value.name == "credit_limit"


def test_a_query_parameter_given_twice_is_refused() -> None:
    query = MultiDict([("period", "2024-Q1"), ("period", "2024-Q2")])

    with pytest.raises(BadParameterError) as refused:
        params.single_query_value(query, "period")

    assert refused.value.name == "period"
    assert params.single_query_value(MultiDict([("period", "2024-Q1")]), "period") == "2024-Q1"
    assert params.single_query_value(MultiDict(), "period") is None
