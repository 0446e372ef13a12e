from decimal import Decimal

import pytest

from ledger.money import MONEY_PRECISION, MONEY_SCALE, fits_precision, format_money, money


def test_money_quantizes_to_cents_rounding_half_even():
    assert money(Decimal("1.005")) == Decimal("1.00")
    assert money(Decimal("1.015")) == Decimal("1.02")
    assert money("125000") == Decimal("125000.00")
    assert money(7) == Decimal("7.00")
    assert money(" 15750.5 ").as_tuple().exponent == -2


def test_money_refuses_a_float():
    with pytest.raises(TypeError):
        money(125000.00)  # type: ignore[arg-type]


def test_money_refuses_a_bool_although_it_is_an_int():
    with pytest.raises(TypeError):
        money(True)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "sNaN", "abc", "", "1,00"])
def test_money_refuses_non_finite_and_unparsable_values(text):
    with pytest.raises(ValueError):
        money(text)


def test_money_refuses_a_non_finite_decimal():
    with pytest.raises(ValueError):
        money(Decimal("NaN"))


def test_the_avro_type_is_decimal_18_2():
    assert (MONEY_PRECISION, MONEY_SCALE) == (18, 2)


@pytest.mark.parametrize(
    ("amount", "fits"),
    [
        ("125000.00", True),
        ("9999999999999999.99", True),
        ("-9999999999999999.99", True),
        ("10000000000000000.00", False),
        ("1.005", False),
        ("1.500", True),
        ("1E+3", True),
        ("1E+16", False),
        ("NaN", False),
        ("Infinity", False),
    ],
)
def test_fits_precision_judges_the_digits_not_a_rounded_value(amount, fits):
    assert fits_precision(Decimal(amount)) is fits


def test_format_money_gives_plain_text_with_two_places():
    assert format_money(Decimal("125000")) == "125000.00"
    assert format_money(Decimal("1E+3")) == "1000.00"
    assert format_money(Decimal("-5.5")) == "-5.50"
