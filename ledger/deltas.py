"""State deltas: what one posting changes in one table row.

A delta names its table (``table``) and the row it changes (``key``, the key of the delta topic
and of the table, so the reducer agent is co-partitioned with the table it writes). Deltas carry
signed amounts: a reversal applies the negated delta, which is why amounts may be negative here
while validated events only carry positive ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from errors import FinError
from ledger.contract import (
    BUDGETS_TABLE,
    CUSTOMERS_TABLE,
    DELTA_TABLES,
    PERIODS_TABLE,
    PRODUCTS_TABLE,
    PROJECTS_TABLE,
    VENDORS_TABLE,
    budget_key,
)
from ledger.money import CENT, is_money, money

BUDGETS = BUDGETS_TABLE
CUSTOMERS = CUSTOMERS_TABLE
VENDORS = VENDORS_TABLE
PERIODS = PERIODS_TABLE
PROJECTS = PROJECTS_TABLE
PRODUCTS = PRODUCTS_TABLE
TABLES: tuple[str, ...] = DELTA_TABLES


class NotReversibleError(FinError):
    """A posting or delta cannot be negated (a command that *sets* a value, or no entry);
    the posting agent reports ``compensation_target_not_reversible``."""


def _is_money_value(amount: object) -> bool:
    if type(amount) is Decimal:
        return amount.same_quantum(CENT)  # is_money of an exact Decimal, without the call
    return isinstance(amount, Decimal) and is_money(amount)


def _require_money(owner: str, **amounts: Decimal) -> None:
    for name, amount in amounts.items():
        if not _is_money_value(amount):
            raise ValueError(f"{owner}.{name} must be a 2-place Decimal, got {amount!r}")


@dataclass(frozen=True)
class BudgetActual:
    """Spending booked against a department's budget category in one period."""

    table: ClassVar[str] = BUDGETS

    department_id: str
    category: str
    period: str
    amount: Decimal

    def __post_init__(self) -> None:
        _require_money("BudgetActual", amount=self.amount)

    @property
    def key(self) -> str:
        return budget_key(self.department_id, self.category, self.period)


@dataclass(frozen=True)
class BudgetSet:
    """Replaces the budget amount of a department, category and period."""

    table: ClassVar[str] = BUDGETS

    department_id: str
    category: str
    period: str
    amount: Decimal

    def __post_init__(self) -> None:
        _require_money("BudgetSet", amount=self.amount)

    @property
    def key(self) -> str:
        return budget_key(self.department_id, self.category, self.period)


@dataclass(frozen=True)
class CustomerExposure:
    """Change of a customer's open receivable: + for a sale, - for a payment.

    ``payment_id`` and ``business_date`` are set for a payment, so the row can show the last one.
    """

    table: ClassVar[str] = CUSTOMERS

    customer_id: str
    amount: Decimal
    payment_id: str | None = None
    business_date: date | None = None

    def __post_init__(self) -> None:
        _require_money("CustomerExposure", amount=self.amount)

    @property
    def key(self) -> str:
        return self.customer_id


@dataclass(frozen=True)
class CreditLimitSet:
    """Replaces a customer's credit limit."""

    table: ClassVar[str] = CUSTOMERS

    customer_id: str
    credit_limit: Decimal

    def __post_init__(self) -> None:
        _require_money("CreditLimitSet", credit_limit=self.credit_limit)

    @property
    def key(self) -> str:
        return self.customer_id


@dataclass(frozen=True)
class VendorInvoice:
    """An open payable item. ``item_id`` is the goods receipt's event id (unique per receipt,
    also when one purchase order is delivered in parts); ``document_id`` is the order."""

    table: ClassVar[str] = VENDORS

    vendor_id: str
    item_id: str
    amount: Decimal
    business_date: date
    due_date: date
    document_id: str = ""

    def __post_init__(self) -> None:
        _require_money("VendorInvoice", amount=self.amount)

    @property
    def key(self) -> str:
        return self.vendor_id


@dataclass(frozen=True)
class VendorPayment:
    table: ClassVar[str] = VENDORS

    vendor_id: str
    payment_id: str
    amount: Decimal
    business_date: date

    def __post_init__(self) -> None:
        _require_money("VendorPayment", amount=self.amount)

    @property
    def key(self) -> str:
        return self.vendor_id


PeriodLine = tuple[str, Decimal, Decimal]


@dataclass(frozen=True, init=False)
class PeriodPosting:
    """One entry's lines (account, debit, credit) for a month or a quarter row."""

    table: ClassVar[str] = PERIODS

    period: str
    lines: tuple[PeriodLine, ...]

    def __init__(self, period: str, lines: tuple[PeriodLine, ...]) -> None:
        # Written out (two per entry): see "Constructors" in ledger/entries.py.
        fields = self.__dict__
        fields["period"] = period
        fields["lines"] = lines
        self.__post_init__()

    def __post_init__(self) -> None:
        for account, debit, credit in self.lines:
            if not (_is_money_value(debit) and _is_money_value(credit)):
                # The owner's name is built only for the error: this runs for every line of
                # every entry, twice (month and quarter row).
                _require_money(f"PeriodPosting[{account}]", debit=debit, credit=credit)

    @property
    def key(self) -> str:
        return self.period


@dataclass(frozen=True)
class PeriodClosed:
    """A month or quarter closed (its totals kept as they are now) or re-opened (issue 16)."""

    table: ClassVar[str] = PERIODS

    period: str
    closed: bool

    @property
    def key(self) -> str:
        return self.period


@dataclass(frozen=True)
class PeriodLate:
    """An entry dated in this (closed) month was booked in a later one: counted here, the
    month's totals untouched."""

    table: ClassVar[str] = PERIODS

    period: str

    @property
    def key(self) -> str:
        return self.period


@dataclass(frozen=True)
class ProjectTime:
    table: ClassVar[str] = PROJECTS

    project_id: str
    hours: Decimal
    billable_amount: Decimal

    def __post_init__(self) -> None:
        _require_money("ProjectTime", hours=self.hours, billable_amount=self.billable_amount)

    @property
    def key(self) -> str:
        return self.project_id


@dataclass(frozen=True)
class ProductionCost:
    table: ClassVar[str] = PRODUCTS

    product_code: str
    quantity: int
    cost: Decimal

    def __post_init__(self) -> None:
        _require_money("ProductionCost", cost=self.cost)

    @property
    def key(self) -> str:
        return self.product_code


Delta = (
    BudgetActual
    | BudgetSet
    | CustomerExposure
    | CreditLimitSet
    | VendorInvoice
    | VendorPayment
    | PeriodPosting
    | PeriodClosed
    | PeriodLate
    | ProjectTime
    | ProductionCost
)

DELTA_CLASSES: Mapping[str, type[Delta]] = {
    cls.__name__: cls
    for cls in (
        BudgetActual,
        BudgetSet,
        CustomerExposure,
        CreditLimitSet,
        VendorInvoice,
        VendorPayment,
        PeriodPosting,
        PeriodClosed,
        PeriodLate,
        ProjectTime,
        ProductionCost,
    )
}


def is_negatable(delta: Delta) -> bool:
    # A "set" replaces a value; its inverse would need the value it replaced, which the delta
    # does not know, so sets are corrected by another set, never by a reversal.
    return not isinstance(delta, BudgetSet | CreditLimitSet | PeriodClosed | PeriodLate)


def negate(delta: Delta) -> Delta:
    """The delta that undoes ``delta``; raises ``NotReversibleError`` for a set command."""
    match delta:
        case BudgetActual() | CustomerExposure() | VendorInvoice() | VendorPayment():
            return replace(delta, amount=-delta.amount)
        case PeriodPosting():
            # The reversing entry swaps debit and credit, and the period row records it as
            # posted, so gross turnover grows while every balance returns to where it was.
            swapped = tuple((account, credit, debit) for account, debit, credit in delta.lines)
            return replace(delta, lines=swapped)
        case ProjectTime():
            return replace(delta, hours=-delta.hours, billable_amount=-delta.billable_amount)
        case ProductionCost():
            return replace(delta, quantity=-delta.quantity, cost=-delta.cost)
        case BudgetSet() | CreditLimitSet() | PeriodClosed() | PeriodLate():
            raise NotReversibleError(
                f"{type(delta).__name__} for {delta.key!r} sets a value and cannot be reversed"
            )


# --- JSON ----------------------------------------------------------------------------------

TYPE_TAG = "type"


def _encode(value: Any) -> Any:
    # The exact types deltas hold first (every delta of every posting passes here); anything
    # else, subclasses included, by the general rules below, in their order.
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is Decimal:
        return str(value)
    if kind is date:
        return value.isoformat()
    if kind is tuple:
        return _encode_items(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _encode_items(value: tuple[Any, ...]) -> list[Any]:
    # [_encode(item) for item in value], with the items of a period line (account text, two
    # Decimals) handled in place: a function call per leaf was most of the cost.
    encoded: list[Any] = []
    for item in value:
        kind = type(item)
        if kind is str:
            encoded.append(item)
        elif kind is Decimal:
            encoded.append(str(item))
        elif kind is tuple:
            encoded.append(_encode_items(item))
        else:
            encoded.append(_encode(item))
    return encoded


def _field_names(cls: type[Delta]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        # dataclasses.fields() walks the class's field table on every call; the names of a
        # delta class never change.
        names = _FIELD_NAMES[cls] = tuple(item.name for item in fields(cls))
    return names


_FIELD_NAMES: dict[type[Delta], tuple[str, ...]] = {}


def to_json_dict(delta: Delta) -> dict[str, Any]:
    """JSON-safe dict with a ``type`` tag; Decimals and dates as text."""
    cls = type(delta)
    if cls is PeriodPosting:
        # Two per journal entry: what the general walk below makes of its period and lines
        # (text as it is; each (account, debit, credit) tuple a list, the amounts as text),
        # for the lines FIN builds; any other shape takes the general walk.
        assert isinstance(delta, PeriodPosting)  # narrows for the type checker
        lines: list[list[Any]] = []
        for line in delta.lines:
            if type(line) is not tuple or type(line[0]) is not str:
                break
            lines.append([line[0], str(line[1]), str(line[2])])
        else:
            if type(delta.period) is str and type(delta.lines) is tuple:
                return {TYPE_TAG: "PeriodPosting", "period": delta.period, "lines": lines}
    encoded: dict[str, Any] = {TYPE_TAG: cls.__name__}
    for name in _field_names(cls):
        encoded[name] = _encode(getattr(delta, name))
    return encoded


def _optional_date(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _period_lines(value: Any) -> tuple[PeriodLine, ...]:
    return tuple((str(account), money(debit), money(credit)) for account, debit, credit in value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"not a boolean: {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


# Field names mean the same thing in every delta, so one decoder per name suffices.
_DECODERS: Mapping[str, Callable[[Any], Any]] = {
    "amount": money,
    "credit_limit": money,
    "hours": money,
    "billable_amount": money,
    "cost": money,
    "quantity": _integer,
    "business_date": _optional_date,
    "due_date": date.fromisoformat,
    "payment_id": _optional_text,
    "lines": _period_lines,
    "closed": _boolean,
}


def from_json_dict(encoded: Mapping[str, Any]) -> Delta:
    cls = DELTA_CLASSES.get(encoded.get(TYPE_TAG, ""))
    if cls is None:
        raise ValueError(f"unknown delta type {encoded.get(TYPE_TAG)!r}")
    values = {
        name: _DECODERS.get(name, str)(encoded[name])
        for name in _field_names(cls)
        if name in encoded
    }
    return cls(**values)


# The names the stream code uses; the same functions.
delta_to_json_dict = to_json_dict
delta_from_json_dict = from_json_dict
