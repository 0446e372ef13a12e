"""Money is a ``Decimal`` with two places, made in one place: :func:`money`.

A float never enters: binary floating point cannot represent most cent amounts, so accepting one
would silently move money. ``bool`` is refused too because ``True`` is an ``int`` in Python and
would otherwise become 1.00.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

MONEY_PRECISION = 18
MONEY_SCALE = 2
CENT = Decimal(1).scaleb(-MONEY_SCALE)
ZERO = Decimal("0.00")

# Largest magnitude an Avro decimal(18, 2) holds is 10**16 - 0.01; digits beyond that are lost.
_INTEGER_DIGITS_MAX = MONEY_PRECISION - MONEY_SCALE
MAGNITUDE_LIMIT = Decimal(10) ** _INTEGER_DIGITS_MAX

# A private context wide enough to quantize any value that fits the Avro type (and far beyond),
# so the result never depends on the caller's thread-local decimal context.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
# A two-place value quantizes without InvalidOperation when it has at most 60 digits, i.e. when
# its most significant digit is below 10**58.
_QUANTIZABLE_ADJUSTED_MAX = _CONTEXT.prec - MONEY_SCALE


def money(value: Decimal | int | str) -> Decimal:
    """Return ``value`` as a Decimal rounded half-even to 0.01.

    Raises ``TypeError`` for a float, a bool or any other type, and ``ValueError`` for NaN,
    infinity, unparsable text, or a magnitude too large to quantize.
    """
    kind = type(value)
    number: Decimal
    if kind is Decimal and isinstance(value, Decimal):  # the exact types first; isinstance
        number = value  # narrows for the type checker
    elif kind is str and isinstance(value, str):
        number = _parsed(value)
    else:
        if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
            raise TypeError(f"money must be Decimal, int or str, not {type(value).__name__}")
        number = _parsed(value) if isinstance(value, str) else Decimal(value)
    if number.same_quantum(CENT) and number.adjusted() < _QUANTIZABLE_ADJUSTED_MAX:
        # Already two places (every decoded decimal(18, 2), every amount money() made, every
        # amount of a table row's JSON): the quantize below would return these very digits, so
        # skip it and its checks. A posting asks this of the same amounts several times, and
        # reading a table row asks it of every amount in the row.
        return number
    if not number.is_finite():
        raise ValueError(f"amount must be finite, got {value!r}")
    try:
        return number.quantize(CENT, context=_CONTEXT)
    except InvalidOperation as exc:
        raise ValueError(f"amount too large to represent: {value!r}") from exc


def _parsed(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {text!r}") from exc


def fits_precision(amount: Decimal) -> bool:
    """True when ``amount`` is exactly representable as decimal(18, 2).

    Checked on the digits, not by rounding: 1.005 does not fit (a third decimal place would be
    lost), while 1.500 does (the trailing zero carries no value).
    """
    if type(amount) is Decimal and amount.same_quantum(CENT):
        # Exactly two places (the usual case): no third place to look at, only the magnitude.
        # same_quantum is quiet and allocates nothing; as_tuple builds two tuples.
        return abs(amount) < MAGNITUDE_LIMIT
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals always have an integer exponent
    if exponent < -MONEY_SCALE:
        digits = amount.as_tuple().digits
        excess_places = -MONEY_SCALE - exponent
        if any(digits[-excess_places:]):
            return False
    return abs(amount) < MAGNITUDE_LIMIT


def is_money(amount: Decimal) -> bool:
    """True when ``amount`` is already in the canonical form :func:`money` produces."""
    if type(amount) is Decimal:
        # Same exponent as 0.01, which no NaN or infinity has: the test below without building
        # the digit tuple (several times per event in entries and deltas).
        return amount.same_quantum(CENT)
    return amount.is_finite() and amount.as_tuple().exponent == -MONEY_SCALE


def format_money(amount: Decimal) -> str:
    """Plain text with exactly two places and no exponent, e.g. ``125000.00``."""
    return f"{money(amount):f}"
