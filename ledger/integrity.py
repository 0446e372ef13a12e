"""Integrity checks (ARCHITECTURE.md, invariants 2 and 3) as data.

Each check is a plain function returning a list of ``IntegrityError`` values (empty when the
invariant holds); ``CHECKS`` lists the ones that run over a ``LedgerSnapshot``. They report, they
never repair: a failure means a bug, and an operator must see it rather than have it hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import uuid5

from ledger.chart import ChartOfAccounts
from ledger.money import ZERO
from ledger.periods import months_in, parse_period
from ledger.reducers import (
    ALERT_NAMESPACE,
    Alert,
    CustomerRow,
    PeriodRow,
    VendorRow,
    trial_balance,
)

TRIAL_BALANCE = "trial_balance"
AR_CONTROL = "ar_control"
AP_CONTROL = "ap_control"
QUARTER_MATCHES_MONTHS = "quarter_matches_months"
CLOSED_PERIOD_UNCHANGED = "closed_period_unchanged"
OUTCOME_COUNTS = "outcome_counts"


@dataclass(frozen=True)
class IntegrityError:
    """A broken invariant (a value, not an exception): which check, and what it saw."""

    check: str
    detail: str


@dataclass(frozen=True)
class OutcomeCounts:
    events_in: int
    postings: int
    rejections: int
    duplicates: int


def check_trial_balance(period: str, row: PeriodRow) -> list[IntegrityError]:
    balance = trial_balance(row)
    if balance.balanced:
        return []
    return [
        IntegrityError(
            TRIAL_BALANCE,
            f"period {period}: debits {balance.total_debit} != credits {balance.total_credit}",
        )
    ]


def check_ar_control(
    exposures: Mapping[str, Decimal], ar_balance: Decimal, *, account: str = "AR"
) -> list[IntegrityError]:
    """Customer exposures add up to the AR control account's debit balance."""
    total = sum(exposures.values(), ZERO)
    if total == ar_balance:
        return []
    return [
        IntegrityError(
            AR_CONTROL,
            f"customer exposures sum to {total} but account {account} balance is {ar_balance}",
        )
    ]


def check_ap_control(
    vendor_open: Mapping[str, Decimal], ap_balance: Decimal, *, account: str = "AP"
) -> list[IntegrityError]:
    """Vendors' open payables add up to the AP control account's credit balance."""
    total = sum(vendor_open.values(), ZERO)
    if total == ap_balance:
        return []
    return [
        IntegrityError(
            AP_CONTROL,
            f"vendor open payables sum to {total} but account {account} balance is {ap_balance}",
        )
    ]


def check_outcome_counts(counts: OutcomeCounts) -> list[IntegrityError]:
    """Invariant 3: every input event has exactly one outcome."""
    outcomes = counts.postings + counts.rejections + counts.duplicates
    if outcomes == counts.events_in:
        return []
    return [
        IntegrityError(
            OUTCOME_COUNTS,
            f"events in {counts.events_in} != postings {counts.postings} + rejections "
            f"{counts.rejections} + duplicates {counts.duplicates} = {outcomes}",
        )
    ]


def check_quarter_matches_months(
    quarter: str, quarter_row: PeriodRow, month_rows: Mapping[str, PeriodRow]
) -> list[IntegrityError]:
    """A quarter row's turnover equals the sum of its months' (both are fed by every entry)."""
    expected: dict[str, tuple[Decimal, Decimal]] = {}
    for month in months_in(parse_period(quarter)):
        row = month_rows.get(str(month))
        if row is None:
            continue
        for account, (debit, credit) in row.accounts.items():
            debit_total, credit_total = expected.get(account, (ZERO, ZERO))
            expected[account] = (debit_total + debit, credit_total + credit)
    if expected == dict(quarter_row.accounts):
        return []
    differing = sorted(
        account
        for account in set(expected) | set(quarter_row.accounts)
        if expected.get(account) != quarter_row.accounts.get(account)
    )
    return [
        IntegrityError(
            QUARTER_MATCHES_MONTHS,
            f"quarter {quarter} differs from its months on accounts {', '.join(differing)}",
        )
    ]


# --- over a snapshot -----------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSnapshot:
    """Rows read from the tables at one moment (period rows keyed by period text)."""

    periods: Mapping[str, PeriodRow] = field(default_factory=dict)
    customers: Mapping[str, CustomerRow] = field(default_factory=dict)
    vendors: Mapping[str, VendorRow] = field(default_factory=dict)
    counts: OutcomeCounts | None = None


def month_rows(periods: Mapping[str, PeriodRow]) -> dict[str, PeriodRow]:
    # Every entry is in one month row and one quarter row; summing months only counts it once.
    return {text: row for text, row in periods.items() if parse_period(text).kind == "month"}


def balance_over_months(periods: Mapping[str, PeriodRow], account: str) -> Decimal:
    """Debit-normal balance of ``account`` over all month rows."""
    balance = ZERO
    for row in month_rows(periods).values():
        debit, credit = row.accounts.get(account, (ZERO, ZERO))
        balance += debit - credit
    return balance


def _trial_balances(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    found: list[IntegrityError] = []
    for period, row in sorted(snapshot.periods.items()):
        found.extend(check_trial_balance(period, row))
    return found


def _ar_control(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    exposures = {customer: row.exposure for customer, row in snapshot.customers.items()}
    balance = balance_over_months(snapshot.periods, chart.ar_control_account)
    return check_ar_control(exposures, balance, account=chart.ar_control_account)


def _ap_control(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    open_payables = {
        vendor: row.invoiced - row.paid_total for vendor, row in snapshot.vendors.items()
    }
    # AP is a liability: its balance is credit-normal, the negation of the debit-normal one.
    balance = -balance_over_months(snapshot.periods, chart.ap_control_account)
    return check_ap_control(open_payables, balance, account=chart.ap_control_account)


def _quarters(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    months = month_rows(snapshot.periods)
    found: list[IntegrityError] = []
    for period, row in sorted(snapshot.periods.items()):
        if parse_period(period).kind == "quarter":
            found.extend(check_quarter_matches_months(period, row, months))
    return found


def check_closed_period(period: str, row: PeriodRow) -> list[IntegrityError]:
    """A closed period's totals are the ones it had when it was closed (issue 16)."""
    if not row.closed or row.closed_totals is None:
        return []
    differing = sorted(
        account
        for account in set(row.closed_totals) | set(row.accounts)
        if row.closed_totals.get(account) != row.accounts.get(account)
    )
    if not differing:
        return []
    return [
        IntegrityError(
            CLOSED_PERIOD_UNCHANGED,
            f"closed period {period} changed since it was closed on accounts "
            f"{', '.join(differing)}",
        )
    ]


def _closed_periods(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    found: list[IntegrityError] = []
    for period, row in sorted(snapshot.periods.items()):
        found.extend(check_closed_period(period, row))
    return found


def _outcomes(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    return [] if snapshot.counts is None else check_outcome_counts(snapshot.counts)


SnapshotCheck = Callable[[LedgerSnapshot, ChartOfAccounts], list[IntegrityError]]

CHECKS: tuple[SnapshotCheck, ...] = (
    _trial_balances,
    _quarters,
    _ar_control,
    _ap_control,
    _outcomes,
    _closed_periods,
)


def run_checks(snapshot: LedgerSnapshot, chart: ChartOfAccounts) -> list[IntegrityError]:
    found: list[IntegrityError] = []
    for check in CHECKS:
        found.extend(check(snapshot, chart))
    return found


def integrity_alert(error: IntegrityError) -> Alert:
    """The ``integrity_failure`` alert for an error; the same error always has the same id."""
    return Alert(
        alert_id=str(uuid5(ALERT_NAMESPACE, f"integrity:{error.check}:{error.detail}")),
        alert_type="integrity_failure",
        severity="critical",
        subject=error.check,
        period=None,
        amount=None,
        limit=None,
        detail=error.detail,
        source_event_id=None,
    )
