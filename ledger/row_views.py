"""The read views over a row (``GET`` answers): budget, vendor and credit status, the trial
balance and an account's balance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal
from typing import Final

from ledger.chart import BudgetCategory
from ledger.money import ZERO
from ledger.rows import (
    BudgetLevel,
    BudgetRow,
    CreditLevel,
    CustomerRow,
    OpenItem,
    Payment,
    PeriodRow,
    VendorRow,
    budget_level,
    credit_level,
)

UTILISATION_PLACES = Decimal("0.0001")
DEFAULT_CREDIT_NEAR_RATIO = Decimal("0.90")
_RATIO_CONTEXT = Context(prec=40)


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    budget: Decimal | None
    actual: Decimal
    available: Decimal | None
    utilisation: Decimal | None
    status: BudgetLevel
    fits: bool | None


def budget_status(
    row: BudgetRow | None, amount_query: Decimal | None, *, category: BudgetCategory
) -> BudgetStatus:
    """Budget, actual, what is left, and whether ``amount_query`` more would stay within it.

    "Fits" means the status would not become exceeded (actual + query <= stop x budget); it is
    None when no budget is set, because there is nothing to fit into.
    """
    current = row if row is not None else BudgetRow()
    budget = current.amount
    actual = current.actual
    if budget is None:
        return BudgetStatus(None, actual, None, None, "no_budget", None)
    # A zero budget has no meaningful ratio; its status alone says whether anything was spent.
    utilisation = (
        _RATIO_CONTEXT.divide(actual, budget).quantize(UTILISATION_PLACES) if budget > 0 else None
    )
    fits = None
    if amount_query is not None:
        fits = actual + amount_query <= category.stop * budget
    return BudgetStatus(
        budget=budget,
        actual=actual,
        available=budget - actual,
        utilisation=utilisation,
        status=budget_level(budget, actual, category),
        fits=fits,
    )


@dataclass(frozen=True)
class Aging:
    """Open amounts by days past due; ``current`` is not yet due."""

    current: Decimal = ZERO
    days_1_30: Decimal = ZERO
    days_31_60: Decimal = ZERO
    days_61_90: Decimal = ZERO
    days_over_90: Decimal = ZERO


@dataclass(frozen=True)
class VendorStatus:
    open: Decimal
    overdue: Decimal
    paid: Decimal
    aging: Aging
    last_payment: Payment | None
    open_items: int


_AGING_BUCKETS: tuple[tuple[int, str], ...] = (
    (0, "current"),
    (30, "days_1_30"),
    (60, "days_31_60"),
    (90, "days_61_90"),
)


# A vendor's item settled in full leaves its row once it fell due more than this many days
# before the latest business date the row has seen: the last bucket's lower bound, so such an
# item is in ``days_over_90`` for any date the row's figures are asked for from then on.
SETTLED_AFTER_DAYS: Final = _AGING_BUCKETS[-1][0]


def _bucket(days_past_due: int) -> str:
    for upper, name in _AGING_BUCKETS:
        if days_past_due <= upper:
            return name
    return "days_over_90"


def vendor_status(row: VendorRow | None, as_of: date) -> VendorStatus:
    """Open, overdue and aged payables as of ``as_of``.

    Payments are not tied to items, so ``paid_total`` is allocated first-in first-out: oldest
    due date first, which is how a vendor applies an unreferenced payment. A negative item (a
    reversal whose receipt has left the row, or not arrived yet) is a credit and is allocated
    like a payment. Any overpayment is a credit with the vendor: ``open`` goes negative and no
    bucket holds it.

    Settled items are no longer in the row (``VendorRow``): what paid them is taken off the
    payments first, and an amount re-opened since (payments now short of ``settled_total``)
    is aged at ``settled_due``. For any ``as_of`` on or after the row's ``latest_date`` the
    figures equal those of the same row with every item kept (every settled item is in the
    last bucket then, and FIFO allocation fills buckets in due-date order); ``open_items``
    counts a re-opened settled amount as one item.
    """
    current = row if row is not None else VendorRow()
    credits = ZERO
    positive: list[tuple[str, OpenItem]] = []
    for item_id, item in current.items.items():
        if item.amount < 0:
            credits -= item.amount
        else:
            positive.append((item_id, item))
    remaining_payment = current.paid_total + credits - current.settled_total
    buckets: dict[str, Decimal] = {}
    overdue = ZERO
    open_items = 0
    if remaining_payment < 0 and current.settled_total > 0 and current.settled_due is not None:
        # Settled amounts re-opened by a reversal (at most what was settled).
        reopened = min(-remaining_payment, current.settled_total)
        remaining_payment += reopened
        open_items += 1
        days_past_due = (as_of - current.settled_due).days
        buckets[_bucket(days_past_due)] = reopened
        if days_past_due > 0:
            overdue += reopened
    positive.sort(key=lambda pair: (pair[1].due_date, pair[1].business_date, pair[0]))
    for _, item in positive:
        covered = min(max(remaining_payment, ZERO), item.amount)
        remaining_payment -= covered
        unpaid = item.amount - covered
        if unpaid == 0:
            continue
        open_items += 1
        days_past_due = (as_of - item.due_date).days
        name = _bucket(days_past_due)
        buckets[name] = buckets.get(name, ZERO) + unpaid
        if days_past_due > 0:
            overdue += unpaid
    return VendorStatus(
        open=current.invoiced - current.paid_total,
        overdue=overdue,
        paid=current.paid_total,
        aging=Aging(**buckets),
        last_payment=current.last_payment,
        open_items=open_items,
    )


@dataclass(frozen=True)
class CreditStatus:
    limit: Decimal | None
    exposure: Decimal
    available: Decimal | None
    status: CreditLevel


def credit_status(
    row: CustomerRow | None, *, near_ratio: Decimal = DEFAULT_CREDIT_NEAR_RATIO
) -> CreditStatus:
    """Limit, exposure and headroom; pass ``chart.credit_near_ratio`` as ``near_ratio``."""
    current = row if row is not None else CustomerRow()
    limit = current.credit_limit
    return CreditStatus(
        limit=limit,
        exposure=current.exposure,
        available=None if limit is None else limit - current.exposure,
        status=credit_level(limit, current.exposure, near_ratio),
    )


@dataclass(frozen=True)
class TrialBalanceLine:
    account: str
    debit: Decimal
    credit: Decimal
    balance: Decimal
    """Debit-normal: positive for a net debit, negative for a net credit."""


@dataclass(frozen=True)
class TrialBalance:
    # Plain fields, no properties, so dataclasses.asdict() gives the whole view.
    lines: tuple[TrialBalanceLine, ...]
    total_debit: Decimal
    total_credit: Decimal
    entry_count: int
    balanced: bool


def trial_balance(row: PeriodRow | None) -> TrialBalance:
    current = row if row is not None else PeriodRow()
    lines = tuple(
        TrialBalanceLine(account, debit, credit, debit - credit)
        for account, (debit, credit) in sorted(current.accounts.items())
    )
    total_debit = sum((line.debit for line in lines), ZERO)
    total_credit = sum((line.credit for line in lines), ZERO)
    return TrialBalance(
        lines=lines,
        total_debit=total_debit,
        total_credit=total_credit,
        entry_count=current.entry_count,
        balanced=total_debit == total_credit,
    )


@dataclass(frozen=True)
class AccountBalance:
    debit: Decimal
    credit: Decimal
    balance: Decimal
    """Debit-normal: positive for a net debit, negative for a net credit."""


def account_balance(row: PeriodRow | None, account: str) -> AccountBalance | None:
    """One account's turnover and balance in a period row; None if it has no postings there."""
    if row is None or account not in row.accounts:
        return None
    debit, credit = row.accounts[account]
    return AccountBalance(debit=debit, credit=credit, balance=debit - credit)
